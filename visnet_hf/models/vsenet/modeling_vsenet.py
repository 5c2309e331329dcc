"""VSENet: a timm backbone projected into the space where a text encoder embedded the class names.

Read top to bottom: output → pretrained base → model → factory → presets.

The model classifies by cosine similarity between its projected visual vector ``z`` and the class
embeddings ``C`` (the semantic head), by a softmax head ``Wv + b`` on the visual vector ``v``, or by
both. Because classes are text, ``set_classes`` swaps the vocabulary of a trained model for names it
never saw (zero-shot) without retraining; ``config.zero_shot_head`` then scores the new names by the
cosine head, by ConSE (the trained-class prediction mapped into the text space), or by both.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from ... import semantics
from ...backbones import create_backbone, resolve_data_config
from ...calibration import apply_offset, calibrated_stacking
from ...registry import register_preset
from ...text_encoders import (
    ClassTexts,
    TextEncoderError,
    class_matrix,
    flatten_prompts,
    get_text_encoder,
    load_text_model,
    load_tokenizer,
    pool,
    tokenize,
)
from ...wordnet import glosses, hierarchy_similarity, synset_ids
from ...zero_shot import Vocabulary, build_vocabulary, conse_logits, vocabulary_from_prompts, vocabulary_texts
from .._base import VisnetPreTrainedModel, eval_mode
from .._factory import build_model
from .configuration_vsenet import VSENetConfig


@dataclass
class VSENetOutput(ModelOutput):
    """What VSENet returns.

    Args:
        loss: the training objective selected by ``config.objective`` (when ``labels`` are given).
        logits: the scores that predict, over the current vocabulary ``config.class_names``.
        semantic_logits: temperature-scaled cosine similarities of ``z`` to every class embedding.
        softmax_logits: ``Wv + b`` over the trained classes (``None`` in a zero-shot vocabulary).
        image_embeds: ``z``, the projected visual vectors, unit-normalised.
        pooler_output: ``v``, the backbone's pooled visual vectors.
        last_hidden_state: the backbone's final feature map (for spatial Soft Tuning constraints).
        loss_terms: each term of ``loss`` on its own, for logging.
        logits_per_image: with text inputs (``input_ids``), ``logits`` by another name, ``(B, texts)``,
            as CLIP's output names them (what ``pipeline("zero-shot-image-classification")`` reads).
        logits_per_text: its transpose, ``(texts, B)``.
        text_embeds: with text inputs, the texts' class embeddings as the model scores them.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    semantic_logits: torch.Tensor | None = None
    softmax_logits: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    loss_terms: dict[str, torch.Tensor] | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None


class VSENetPreTrainedModel(VisnetPreTrainedModel):
    config_class = VSENetConfig
    config: VSENetConfig


class VSENetForImageClassification(VSENetPreTrainedModel):
    """VSENet for image classification over a vocabulary of class names.

    Example:
        >>> import visnet_hf
        >>> model = visnet_hf.create_model("vsenet_resnet18", class_names=["cat", "dog"], text_encoder=PATH)
        >>> model(pixel_values).logits.shape
        torch.Size([B, 2])
    """

    def __init__(self, config: VSENetConfig) -> None:
        super().__init__(config)
        self.backbone = create_backbone(config.backbone, num_classes=0, **(config.backbone_kwargs or {}))
        self._mark_backbone(self.backbone)
        config.num_features = int(self.backbone.num_features)
        if config.data_config is None:
            config.data_config = resolve_data_config(self.backbone)

        self.dropout = nn.Dropout(config.dropout)
        self.projection = _projection(config)
        self.classifier = nn.Linear(config.num_features, len(config.trained_class_names))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))
        self.register_buffer("class_embeddings", torch.zeros(len(config.class_names), config.embedding_dim))
        self.register_buffer("trained_class_embeddings", torch.zeros(len(config.trained_class_names), config.embedding_dim))
        # The mean embedding of the trained vocabulary, subtracted from every class embedding when
        # config.class_centering is set (the direction all names share says nothing about any one).
        self.register_buffer("text_mean", torch.zeros(config.embedding_dim))
        if config.prototype_weight > 0:
            self._add_prototype_buffers()
        self.text_tower = TextTower(config) if config.text_trainable_layers else None
        self.zero_shot_heads = ZeroShotHeads(config) if config.zero_shot_heads else None
        self._text_inputs: dict[str, torch.Tensor] | None = None  # the vocabulary's prompts, tokenized
        self._vocabulary: Vocabulary | None = None  # a view of config.class_names and class_embeddings
        self.post_init()

    # Its heads read only the pooled features, so a frozen backbone's can be computed once.
    accepts_image_features = True

    # -- hooks used by the factory ------------------------------------------------------------

    @classmethod
    def backbone_num_classes(cls, config: VSENetConfig) -> int:
        return 0

    # -- forward ------------------------------------------------------------------------------

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        vocabulary: Vocabulary | None = None,
        objective: str | None = None,
        zero_shot_head: str | None = None,
        calibration: float | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> VSENetOutput | tuple:
        """Scores over a vocabulary: the model's own (``config.class_names``), a given one, or the texts given.

        Args:
            pixel_values: images, as the image processor prepares them.
            labels: class indices; the output then has the loss of the objective.
            image_features: instead of images, the backbone's pooled features (``pooler_output``),
                computed once for a frozen backbone (``data.cache_features``).
            input_ids: tokenized class texts, one per class, as CLIP takes them (and the zero-shot
                pipeline gives them): the image is scored among these texts, read back as class names
                (:func:`visnet_hf.zero_shot.vocabulary_from_prompts`); the output has ``logits_per_image``.
            attention_mask: the texts' attention mask.
            vocabulary: a :class:`~visnet_hf.zero_shot.Vocabulary` to score against for this call only.
            objective: the training objective for this call (a stage's), instead of ``config.objective``.
            zero_shot_head: how new names are scored in this call, instead of ``config.zero_shot_head``.
            calibration: the offset on trained names among new ones in this call, instead of ``config.calibration``.
        """
        if input_ids is not None:
            if vocabulary is not None:
                raise ValueError("Give class texts (input_ids) or a vocabulary, not both.")
            vocabulary = vocabulary_from_prompts(self, self.tokenizer(), input_ids)
        vocabulary = self.vocabulary if vocabulary is None else vocabulary
        if image_features is None:
            feature_map, pooled = self.backbone_features(pixel_values)
        else:
            feature_map, pooled = None, image_features
        visual = self.dropout(pooled)
        heads = self._heads(vocabulary)
        image_embeds = F.normalize(heads.projection(visual), dim=-1)
        class_embeds = self._scored_class_embeddings(vocabulary)
        semantic_logits = self.logit_scale_value(heads) * image_embeds @ class_embeds.T

        if vocabulary.is_trained_vocabulary:  # both heads are available
            softmax_logits = heads.classifier(visual)
            logits = self._combine(semantic_logits, softmax_logits)
        else:  # names it did not train on (or not in the trained order): the zero-shot head, calibrated
            softmax_logits = None
            head = zero_shot_head or self.config.zero_shot_head
            logits = self._zero_shot_logits(semantic_logits, image_embeds, visual, vocabulary, class_embeds, head, heads)
            offset = self.config.calibration if calibration is None else calibration
            if vocabulary.mixes_trained_and_new:
                logits = apply_offset(logits, vocabulary.trained, offset)

        loss, loss_terms = None, None
        if labels is not None:
            loss_terms = self.loss_terms(semantic_logits, softmax_logits, labels, objective)
            loss = torch.stack(list(loss_terms.values())).sum()

        texts_given = input_ids is not None
        output = VSENetOutput(
            loss=loss,
            logits=logits,
            semantic_logits=semantic_logits,
            softmax_logits=softmax_logits,
            image_embeds=image_embeds,
            pooler_output=visual,
            last_hidden_state=feature_map,
            loss_terms=loss_terms,
            logits_per_image=logits if texts_given else None,
            logits_per_text=logits.T if texts_given else None,
            text_embeds=class_embeds if texts_given else None,
        )
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()

    def get_image_features(
        self, pixel_values: torch.Tensor | None = None, image_features: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        """CLIP's ``get_image_features``: ``pooler_output`` is the projected image ``z``, unit length, as
        the model scores it against new class names; ``last_hidden_state`` is the backbone's feature map."""
        if image_features is None:
            feature_map, image_features = self.backbone_features(pixel_values)
        else:
            feature_map = None
        projection = (self.zero_shot_heads or self).projection
        image_embeds = F.normalize(projection(self.dropout(image_features)), dim=-1)
        return BaseModelOutputWithPooling(last_hidden_state=feature_map, pooler_output=image_embeds)

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        """CLIP's ``get_text_features``: ``pooler_output`` is each text's embedding as the model scores it
        (the text encoder's pooled output, unit length, centred when ``config.class_centering``)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.text_tower is not None:
            pooled = self.text_tower(input_ids.to(self.device), attention_mask.to(self.device))
        else:
            encoder, _, pooling = load_text_model(self.text_encoder_path(), self.config.text_pooling)
            device = next(encoder.parameters()).device
            with torch.no_grad():
                outputs = encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
            pooled = pool(outputs, attention_mask.to(device), pooling).float().to(self.device)
        return BaseModelOutputWithPooling(pooler_output=self._centred(F.normalize(pooled, dim=-1)))

    def logit_scale_value(self, heads: nn.Module | None = None) -> torch.Tensor:
        """The cosine logits' scale ``1 / temperature``, clamped at ``1 / min_temperature``."""
        return (heads or self).logit_scale.exp().clamp(max=1.0 / self.config.min_temperature)

    def _heads(self, vocabulary: Vocabulary) -> nn.Module:
        """What scores ``vocabulary``: the model's own heads, or for other vocabularies its zero-shot
        copy when it keeps one (WiSE-FT chosen per use)."""
        if self.zero_shot_heads is None or vocabulary.is_trained_vocabulary:
            return self
        return self.zero_shot_heads

    @torch.no_grad()
    def keep_zero_shot_heads(self, state: dict[str, torch.Tensor]) -> None:
        """Keep a second copy of the heads, with the weights in ``state`` (a state dict of this model),
        to score every vocabulary but the trained one; the model's own heads keep scoring that.

        WiSE-FT chosen per use (``wise_ft.seen_alpha``): the trained classes are best served nearer
        the fine-tuned weights, new names nearer the aligned ones. Only the heads are kept twice, so
        the rest of the model (the backbone) must be the same for both uses.
        """
        heads = ZeroShotHeads(self.config).to(self.logit_scale.device)
        prefixes = tuple(f"{name}." for name in ZeroShotHeads.PARTS)
        heads.load_state_dict({key: state[key] for key in state if key.startswith(prefixes) or key == "logit_scale"})
        self.zero_shot_heads = heads.requires_grad_(False)
        self.config.zero_shot_heads = True

    def normalized_class_embeddings(self) -> torch.Tensor:
        """The current vocabulary's embeddings as the heads use them: centred if configured, unit length."""
        return self._centred(self.class_embeddings)

    def _centred(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.config.class_centering:
            embeddings = embeddings - self.text_mean
        return F.normalize(embeddings, dim=-1)

    def _scored_class_embeddings(self, vocabulary: Vocabulary) -> torch.Tensor:
        """A vocabulary's embeddings as the heads score them; while the text tower's last layers train
        (LiT), the trained vocabulary's are recomputed through it."""
        if self.text_tower is None or not self.training or not vocabulary.is_trained_vocabulary:
            return self._centred(vocabulary.embeddings.to(self.class_embeddings.device))
        if self._text_inputs is None:
            self._text_inputs = self._prompt_inputs(_class_texts(self.config))
        embeddings = self._tower_embeddings(self._text_inputs, len(vocabulary))
        with torch.no_grad():  # what evaluation, export and ConSE see: the tower's latest embeddings
            self.class_embeddings.copy_(embeddings)
            self.trained_class_embeddings.copy_(embeddings)
        return self._centred(embeddings)

    def _prompt_inputs(self, texts: ClassTexts) -> dict[str, torch.Tensor]:
        """A vocabulary's prompts tokenized for the text tower, with each prompt's weight and class."""
        _, tokenizer, _ = load_text_model(self.text_encoder_path(), self.config.text_pooling)
        flat, weights, owner = flatten_prompts(texts)
        tokens = tokenize(tokenizer, flat, max_length=64)
        inputs = {
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "weights": weights,
            "owner": owner,
        }
        return {key: value.to(self.class_embeddings.device) for key, value in inputs.items()}

    def _tower_embeddings(self, inputs: dict[str, torch.Tensor], classes: int) -> torch.Tensor:
        assert self.text_tower is not None  # the embeddings come from the encoder otherwise
        pooled = self.text_tower(inputs["input_ids"], inputs["attention_mask"])
        return class_matrix(pooled, inputs["weights"], inputs["owner"], classes)

    def _combine(self, semantic_logits: torch.Tensor, softmax_logits: torch.Tensor) -> torch.Tensor:
        head = self.config.head
        if head == "semantic":
            return semantic_logits
        if head == "softmax":
            return softmax_logits
        weight = self.config.softmax_weight
        return (1 - weight) * semantic_logits.float().log_softmax(-1) + weight * softmax_logits.float().log_softmax(-1)

    def _zero_shot_logits(
        self,
        semantic_logits: torch.Tensor,
        image_embeds: torch.Tensor,
        visual: torch.Tensor,
        vocabulary: Vocabulary,
        class_embeds: torch.Tensor,
        head: str,
        heads: nn.Module,
    ) -> torch.Tensor:
        """Scores over a vocabulary the model did not train on, as ``head`` picks.

        * ``semantic``: the cosine logits of ``z`` to each name's embedding.
        * ``conse``: ConSE (:func:`visnet_hf.zero_shot.conse_logits`) of the model's prediction over
          its trained classes (both heads, as ``config.head`` combines them).
        * ``both``: the sum of the two.

        With ``config.prototype_weight`` the visual-prototype score (:meth:`fit_prototypes`) is added.
        """
        scale = self.logit_scale_value(heads)
        trained = self._centred(self.trained_class_embeddings)
        logits = semantic_logits
        if head != "semantic":
            trained_logits = self._combine(scale * image_embeds @ trained.T, heads.classifier(visual))
            conse = conse_logits(trained_logits, trained, class_embeds, scale, self.config.conse_top_k).to(logits.dtype)
            logits = conse if head == "conse" else semantic_logits + conse
        if self.config.prototype_weight > 0:
            prototype_logits = self._prototype_logits(visual, vocabulary, class_embeds, trained, scale)
            logits = logits + self.config.prototype_weight * prototype_logits.to(logits.dtype)
        return logits

    # -- visual prototypes ----------------------------------------------------------------------

    def _add_prototype_buffers(self) -> None:
        features, trained = self.config.num_features, len(self.config.trained_class_names)
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        self.register_buffer("visual_prototypes", torch.zeros(trained, features))  # unit, standardised centroids
        self.register_buffer("prototype_counts", torch.zeros(trained))  # training images per trained class

    def _prototype_logits(
        self,
        visual: torch.Tensor,
        vocabulary: Vocabulary,
        class_embeds: torch.Tensor,
        trained: torch.Tensor,
        scale: torch.Tensor,
    ) -> torch.Tensor:
        """Scaled cosines of the image's standardised features to each name's visual prototype: the
        trained classes' centroids averaged by the softmax of the name's text similarity to them
        (``class_embeds`` and ``trained``: the vocabulary's and the trained classes' embeddings as the
        model scores them), with ``prototype_hierarchy`` of their WordNet similarity and with
        ``prototype_glosses`` of their WordNet definitions' similarity."""
        counts = self.prototype_counts
        if not bool((counts > 0).any()):
            raise ValueError(
                f"prototype_weight is {self.config.prototype_weight} but the model holds no class centroids: call "
                "model.fit_prototypes(batches of its training images) (the trainer does), or set prototype_weight=0."
            )
        similarity = self.config.prototype_sharpness * class_embeds.float() @ trained.T.float()
        if self.config.prototype_hierarchy > 0:
            hierarchy = hierarchy_similarity(self._synsets(vocabulary), self._trained_synsets())
            similarity = similarity + self.config.prototype_hierarchy * hierarchy.to(similarity.device)
        if self.config.prototype_glosses > 0:
            similarity = similarity + self.config.prototype_glosses * self._gloss_similarity(vocabulary).to(similarity.device)
        weights = similarity.masked_fill(counts == 0, float("-inf")).softmax(-1)
        prototypes = F.normalize(weights @ self.visual_prototypes, dim=-1)
        features = F.normalize((visual.float() - self.feature_mean) / self.feature_std, dim=-1)
        return scale * features @ prototypes.T

    def _gloss_similarity(self, vocabulary: Vocabulary) -> torch.Tensor:
        """Cosine similarity of the WordNet glosses of the vocabulary's senses to the trained classes'
        (:func:`gloss_similarity`, with this model's text encoder)."""
        encoder = (self.text_encoder_path(), self.config.text_pooling, self.config.embedding_dim)
        return gloss_similarity(*encoder, self._synsets(vocabulary), self._trained_synsets())

    def _trained_synsets(self) -> tuple[str | None, ...]:
        """The WordNet sense of each trained class (``config.trained_class_synsets``), picked from the
        trained names and, while the vocabulary is the trained one, their synonyms; kept in the config
        (``fit_prototypes`` sets it, in training)."""
        config = self.config
        if config.trained_class_synsets is None:
            trained = config.class_names == config.trained_class_names
            synonyms, wnids = (config.class_synonyms, config.class_synsets) if trained else (None, None)
            config.trained_class_synsets = list(synset_ids(config.trained_class_names, synonyms, wnids))
        return tuple(config.trained_class_synsets)

    def _synsets(self, vocabulary: Vocabulary) -> tuple[str | None, ...]:
        """The WordNet sense of each name in ``vocabulary``: its WordNet id where given, else guessed from
        the name and its synonyms."""
        synonyms: Sequence[Sequence[str]] | None
        if vocabulary.texts is not None:
            synonyms = vocabulary.texts.synonyms
        else:  # the model's own vocabulary, whose synonyms are in the config
            synonyms = self.config.class_synonyms if vocabulary.names == tuple(self.config.class_names) else None
        return synset_ids(vocabulary.names, synonyms, vocabulary.synsets)

    @torch.no_grad()
    def fit_prototypes(self, batches: Iterable[Any]) -> int:
        """Compute the visual prototypes (``config.prototype_weight``) from the training images: each
        trained class's centroid of the backbone's pooled features, standardised by the mean and
        standard deviation of all of them. One pass; the model pools as in evaluation (with test-time
        augmentation, over each image's views). Needs ``prototype_weight > 0``.

        Args:
            batches: ``(pixel_values, labels)`` pairs or dicts with ``pixel_values`` (or the cached
                ``image_features``) and ``labels``, which index ``config.trained_class_names``.

        Returns:
            The number of images.
        """
        if self.config.prototype_weight <= 0:
            raise ValueError("fit_prototypes needs config.prototype_weight > 0 (the weight of their score in zero-shot).")
        if not hasattr(self, "visual_prototypes"):
            self._add_prototype_buffers()
            self.to(self.logit_scale.device)
        trained = len(self.config.trained_class_names)
        # Summed in float64 on the CPU (which every device can copy to): exact over millions of images.
        sums = torch.zeros(trained, self.config.num_features, dtype=torch.float64)
        counts = torch.zeros(trained, dtype=torch.float64)
        squares = torch.zeros(self.config.num_features, dtype=torch.float64)
        with eval_mode(self):
            for batch in batches:
                inputs, labels = _inputs_and_labels(batch)
                if "image_features" in inputs:
                    pooled = inputs["image_features"]
                else:
                    pooled = self.backbone_features(inputs["pixel_values"].to(self.device))[1]
                pooled, labels = pooled.double().cpu(), torch.as_tensor(labels).cpu()
                sums.index_add_(0, labels, pooled)
                counts += torch.bincount(labels, minlength=trained).double()
                squares += pooled.pow(2).sum(0)
        images = counts.sum()
        if images < 2:
            raise ValueError(f"fit_prototypes needs at least 2 images, got {int(images)}.")
        mean = sums.sum(0) / images
        std = (squares / images - mean.pow(2)).clamp(min=0).sqrt() + 1e-6
        centroids = (sums / counts.clamp(min=1)[:, None] - mean) / std
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)
        self.visual_prototypes.copy_(F.normalize(centroids, dim=-1) * (counts > 0)[:, None])
        self.prototype_counts.copy_(counts)
        self._trained_synsets()  # while the trained vocabulary's synonyms are at hand, for prototype_hierarchy
        return int(images)

    # -- objectives ---------------------------------------------------------------------------

    def loss_terms(
        self,
        semantic_logits: torch.Tensor,
        softmax_logits: torch.Tensor | None,
        labels: torch.Tensor,
        objective: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """The terms of ``objective`` (default ``config.objective``), each in float32.

        * ``align`` (stage 1): cross-entropy of the cosine logits against targets that mix the
          one-hot label with the text side's similarity column ``S[:, y]``, so visual vectors move
          towards their class's semantic vector while keeping the class structure.
        * ``finetune`` (stage 2): cross-entropy of each predicting head.
        * ``weight_reg``: ``L_w``, the squared L2 norm of the head weights.
        """
        config = self.config
        objective = objective or config.objective
        semantic_logits = semantic_logits.float()
        terms: dict[str, torch.Tensor] = {}
        if objective in ("align", "joint"):
            similarity = self.class_similarity()
            one_hot = F.one_hot(labels, num_classes=semantic_logits.shape[-1]).float()
            targets = (1 - config.structure_weight) * one_hot + config.structure_weight * similarity[:, labels].T
            terms["align"] = -(targets * semantic_logits.log_softmax(-1)).sum(-1).mean()
        if objective in ("finetune", "joint"):
            if config.head in ("semantic", "both") or softmax_logits is None:
                terms["semantic_ce"] = F.cross_entropy(semantic_logits, labels, label_smoothing=config.label_smoothing)
            if config.head in ("softmax", "both") and softmax_logits is not None:
                terms["softmax_ce"] = F.cross_entropy(softmax_logits.float(), labels, label_smoothing=config.label_smoothing)
        if config.weight_reg > 0:
            squared = torch.stack([p.float().pow(2).sum() for n, p in self.named_parameters() if _is_head_weight(n)]).sum()
            terms["weight_reg"] = config.weight_reg * squared
        return terms

    # -- the seed's semantic matrices ---------------------------------------------------------

    def class_centres(self) -> torch.Tensor:
        """Mean-centred class centres of the current vocabulary."""
        return semantics.class_centres(self.normalized_class_embeddings())

    def class_distances(self) -> torch.Tensor:
        """``D_ij = ||c_i - c_j||^2`` between class centres."""
        return semantics.class_distances(self.normalized_class_embeddings())

    def class_similarity(self, gamma: float | None = None) -> torch.Tensor:
        """The RBF-softmax similarity ``S`` (columns sum to one), bandwidth ``gamma`` (default: config)."""
        return semantics.class_similarity(self.normalized_class_embeddings(), gamma or self.config.gamma)

    def association(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """The visual-semantic association matrix ``A`` (cosines, ``(B, K)``) for a batch's ``image_embeds``."""
        return semantics.association(image_embeds, self.class_embeddings)

    # -- vocabulary ---------------------------------------------------------------------------

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's current vocabulary: ``config.class_names`` and the ``class_embeddings`` saved with it."""
        names = tuple(self.config.class_names)
        if (
            self._vocabulary is None
            or self._vocabulary.names != names
            or self._vocabulary.embeddings is not self.class_embeddings
        ):
            self._vocabulary = Vocabulary.of(
                names, self.class_embeddings, self.config.trained_class_names, synsets=self.config.class_synsets
            )
        return self._vocabulary

    @torch.no_grad()
    def set_classes(
        self,
        names: Sequence[str],
        descriptions: Sequence[str | Sequence[str] | None] | None = None,
        templates: str | Sequence[str] | None = None,
        class_embeddings: torch.Tensor | None = None,
        synonyms: Sequence[str | Sequence[str] | None] | None = None,
        synsets: Sequence[str | None] | None = None,
    ) -> VSENetForImageClassification:
        """Make ``names`` the model's vocabulary (zero-shot); arguments as :func:`visnet_hf.zero_shot.build_vocabulary`."""
        vocabulary = build_vocabulary(self, names, descriptions, templates, synonyms, class_embeddings, synsets)
        return self.use_vocabulary(vocabulary)

    @torch.no_grad()
    def use_vocabulary(self, vocabulary: Vocabulary) -> VSENetForImageClassification:
        """Make ``vocabulary`` the model's own: its names become ``config.class_names`` / ``id2label`` and
        its embeddings ``class_embeddings``, so that it is saved with the model."""
        config, texts = self.config, vocabulary.texts
        self.class_embeddings = vocabulary.embeddings.to(self.class_embeddings.device)
        config.class_names = list(vocabulary.names)
        config.class_descriptions = [list(d) for d in texts.descriptions] if texts and texts.descriptions else None
        config.class_synonyms = [list(s) for s in texts.synonyms] if texts and texts.synonyms else None
        config.class_synsets = list(vocabulary.synsets) if vocabulary.synsets is not None else None
        if texts is not None:
            config.templates = list(texts.templates)
        config.id2label = dict(enumerate(config.class_names))
        config.label2id = {name: index for index, name in enumerate(config.class_names)}
        self._text_inputs = None
        return self

    @torch.no_grad()
    def embed_texts(self, texts: ClassTexts) -> torch.Tensor:
        """Class embeddings for ``texts`` with this model's text encoder: its own trained tower when it
        has one, else the (cached) encoder named in the config."""
        if self.text_tower is None:
            return get_text_encoder(self.text_encoder_path(), self.config.text_pooling).embed_classes(texts)
        with eval_mode(self.text_tower):
            return self._tower_embeddings(self._prompt_inputs(texts), len(texts.names))

    def text_encoder_path(self) -> str:
        """The text encoder ``set_classes`` uses: a copy bundled in the folder the model was loaded from
        (``visnet bundle-text-encoder``), else ``config.text_encoder`` (a Hub id or a path)."""
        bundled = Path(self.config.name_or_path or "") / "text_encoder"
        if (bundled / "config.json").exists():
            return str(bundled)
        return self.config.text_encoder

    def tokenizer(self) -> Any:
        """The text encoder's tokenizer (what ``save_pretrained`` writes beside the weights for pipelines)."""
        return load_tokenizer(self.text_encoder_path())

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Weights, config and image processor, plus the text encoder's tokenizer files, so that
        ``pipeline("zero-shot-image-classification", model=save_directory)`` finds everything it loads."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if not kwargs.get("is_main_process", True):
            return
        try:
            self.tokenizer().save_pretrained(save_directory)
        except TextEncoderError as error:
            warnings.warn(
                f"Saved without the text encoder's tokenizer ({error}); the zero-shot pipeline needs it: "
                "save again where the text encoder loads, or bundle it (visnet bundle-text-encoder).",
                UserWarning,
                stacklevel=2,
            )

    @torch.no_grad()
    def fit_calibration(self, batches: Iterable[Any]) -> dict[str, float]:
        """Fit ``config.calibration`` on held-out data of a mixed vocabulary (generalised zero-shot).

        Chooses the offset on trained classes' scores that maximises the harmonic mean of the
        accuracy on images of trained classes and on images of new classes (calibrated stacking).

        Args:
            batches: ``(pixel_values, labels)`` pairs or dicts with those keys; labels index
                ``config.class_names``.

        Returns:
            ``{"calibration", "seen_accuracy", "unseen_accuracy", "harmonic_mean", "images"}``.
        """
        vocabulary = self.vocabulary
        if not vocabulary.mixes_trained_and_new:
            raise ValueError(
                "fit_calibration needs a vocabulary that mixes trained and new class names; "
                "call set_classes(trained_names + new_names) first."
            )
        score_chunks, label_chunks = [], []
        with eval_mode(self):
            for batch in batches:
                inputs, batch_labels = _inputs_and_labels(batch)
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                score_chunks.append(self(**inputs, calibration=0.0).logits.float().cpu())
                label_chunks.append(torch.as_tensor(batch_labels).cpu())
        best = calibrated_stacking(torch.cat(score_chunks), torch.cat(label_chunks), vocabulary.trained)
        self.config.calibration = float(best["calibration"])
        return best


@lru_cache(maxsize=64)  # a zero-shot forward call asks for it on every batch
def gloss_similarity(
    encoder_path: str,
    pooling: str,
    width: int,
    rows: tuple[str | None, ...],
    columns: tuple[str | None, ...],
) -> torch.Tensor:
    """``(len(rows), len(columns))`` cosine similarities of the senses' WordNet glosses (the definition
    alone), embedded by the text encoder and centred on the columns' (the trained classes') mean; 0 for
    a sense WordNet does not know."""
    encoder = get_text_encoder(encoder_path, pooling)
    row_embeddings, column_embeddings = (_gloss_embeddings(encoder, senses, width) for senses in (rows, columns))
    known = column_embeddings.norm(dim=-1) > 0
    mean = column_embeddings[known].mean(0) if bool(known.any()) else torch.zeros(width)

    def centred(part: torch.Tensor) -> torch.Tensor:  # an unknown sense's row stays zero
        return F.normalize((part - mean) * (part.norm(dim=-1, keepdim=True) > 0), dim=-1)

    return centred(row_embeddings) @ centred(column_embeddings).T


def _gloss_embeddings(encoder: Any, synsets: Sequence[str | None], width: int) -> torch.Tensor:
    """Each sense's gloss embedded by ``encoder``, zeros where WordNet has none."""
    texts = glosses(synsets)
    rows = torch.zeros(len(texts), width)
    known = [i for i, text in enumerate(texts) if text is not None]
    if known:
        rows[known] = encoder.encode([texts[i] for i in known]).float()
    return rows


def _inputs_and_labels(batch: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """A ``(pixel_values, labels)`` pair, or a dict with ``pixel_values`` (or ``image_features``) and ``labels``."""
    if isinstance(batch, dict):
        return {k: batch[k] for k in ("pixel_values", "image_features") if k in batch}, batch["labels"]
    pixel_values, labels = batch
    return {"pixel_values": pixel_values}, labels


def _class_texts(config: VSENetConfig) -> ClassTexts:
    """What the text encoder reads for the model's own vocabulary."""
    return vocabulary_texts(
        config, config.class_names, config.class_descriptions, synonyms=config.class_synonyms, synsets=config.class_synsets
    )


def _initial_state(config: VSENetConfig, class_embeddings: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """What a new model gets once, from the text encoder: the class embeddings (and, when its last
    layers train with the model, the text tower's pretrained weights). Resolves ``text_pooling: auto``."""
    state: dict[str, torch.Tensor] = {}
    if config.text_trainable_layers:
        text_model, _, config.text_pooling = load_text_model(config.text_encoder, config.text_pooling)
        config.text_tower_config = text_model.config.to_dict()
        state = {f"text_tower.encoder.{key}": value for key, value in text_model.state_dict().items()}
    if class_embeddings is None:
        encoder = get_text_encoder(config.text_encoder, config.text_pooling)
        config.text_pooling = encoder.pooling
        class_embeddings = encoder.embed_classes(_class_texts(config))
    class_embeddings = torch.as_tensor(class_embeddings, dtype=torch.float32)
    if class_embeddings.ndim != 2 or class_embeddings.shape[0] != len(config.class_names):
        raise ValueError(
            f"class_embeddings of shape {tuple(class_embeddings.shape)} do not fit {len(config.class_names)} "
            "class names; give one row per class."
        )
    config.embedding_dim = int(class_embeddings.shape[1])
    class_embeddings = F.normalize(class_embeddings, dim=-1)
    return {
        **state,
        "class_embeddings": class_embeddings,
        "trained_class_embeddings": class_embeddings.clone(),
        "text_mean": class_embeddings.mean(0),
    }


class ZeroShotHeads(nn.Module):
    """A second copy of VSENet's heads (projection, softmax classifier, temperature) that scores every
    vocabulary but the trained one: see :meth:`VSENetForImageClassification.keep_zero_shot_heads`."""

    PARTS = ("projection", "classifier")

    def __init__(self, config: VSENetConfig) -> None:
        super().__init__()
        self.projection = _projection(config)
        self.classifier = nn.Linear(config.num_features, len(config.trained_class_names))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))


class TextTower(nn.Module):
    """The text encoder inside the model, for LiT-style training: all but its last
    ``config.text_trainable_layers`` layers (and what follows them: final norm, pooler, projection)
    stay locked, as open_clip's ``--lock-text-unlocked-layers`` does. Built from ``config.text_tower_config``,
    so a saved model rebuilds it offline; its weights travel in ``model.safetensors``."""

    def __init__(self, config: VSENetConfig) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, CLIPTextModelWithProjection

        if config.text_tower_config is None:
            raise ValueError("text_trainable_layers needs text_tower_config; create the model with visnet_hf.create_model.")
        text_config = AutoConfig.for_model(**config.text_tower_config)
        projection = config.text_pooling == "projection"
        self.encoder = CLIPTextModelWithProjection(text_config) if projection else AutoModel.from_config(text_config)
        self.pooling = config.text_pooling
        lock_text_layers(self.encoder, config.text_trainable_layers)
        pooler = getattr(self.encoder, "pooler", None)
        if self.pooling in ("mean", "cls") and pooler is not None:
            pooler.requires_grad_(False)  # unused by this pooling: trainable, it would get no gradient (DDP fails on that)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return pool(outputs, attention_mask, self.pooling).float()


def lock_text_layers(encoder: nn.Module, trainable_layers: int) -> list[str]:
    """Freeze a text tower but for its last ``trainable_layers`` transformer layers and every parameter
    registered after them; returns the names of the parameters left trainable.

    The layer stack is the tower's longest ``nn.ModuleList`` (``encoder.layer`` in BERT, ``encoder.layers``
    in CLIP), so this works for any ``transformers`` text model.
    """
    stacks = [m for m in encoder.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not stacks:
        raise ValueError(f"{type(encoder).__name__} has no stack of layers to unlock.")
    layers = max(stacks, key=len)
    if not 0 < trainable_layers <= len(layers):
        raise ValueError(f"text_trainable_layers={trainable_layers}, but the text tower has {len(layers)} layers.")
    trainable_ids = {id(p) for layer in list(layers)[-trainable_layers:] for p in layer.parameters()}
    last_in_stack = max(i for i, p in enumerate(encoder.parameters()) if id(p) in {id(q) for q in layers.parameters()})
    names = []
    for index, (name, param) in enumerate(encoder.named_parameters()):
        param.requires_grad_(id(param) in trainable_ids or index > last_in_stack)
        if param.requires_grad:
            names.append(name)
    return names


def _projection(config: VSENetConfig) -> nn.Module:
    if config.projection == "linear":
        return nn.Linear(config.num_features, config.embedding_dim)
    return nn.Sequential(
        nn.Linear(config.num_features, config.projection_hidden_dim),
        nn.GELU(),
        nn.Linear(config.projection_hidden_dim, config.embedding_dim),
    )


def _is_head_weight(name: str) -> bool:
    return name.endswith("weight") and name.startswith(("projection.", "classifier."))


# -- factory and presets ----------------------------------------------------------------------


def create_vsenet(
    pretrained: bool = False,
    image_size: int | None = None,
    class_embeddings: torch.Tensor | None = None,
    **kwargs: Any,
) -> VSENetForImageClassification:
    """Create a new VSENet: backbone (pretrained if asked) and class embeddings computed once.

    Args:
        pretrained: load the backbone's pretrained weights.
        image_size: train/eval resolution (e.g. 32 for CIFAR at native size); default: the backbone's.
        class_embeddings: precomputed ``(num_classes, dim)`` embeddings instead of the text encoder.
        **kwargs: ``VSENetConfig`` fields (``class_names`` is required) and timm keywords.
    """
    if kwargs.get("class_names") is None and kwargs.get("id2label") is None:
        raise ValueError(
            "VSENet needs class names to embed: create_model('vsenet_resnet18', class_names=['cat', 'dog', ...], "
            "text_encoder=HUB_ID_OR_PATH)."
        )
    model = build_model(
        VSENetForImageClassification,
        pretrained=pretrained,
        image_size=image_size,
        overrides=kwargs,
        initial_state=lambda config: _initial_state(config, class_embeddings),
    )
    return model


create_vsenet.family = "vsenet"
register_preset("vsenet_resnet18", create_vsenet, "VSENet on timm resnet18 (the seed's backbone)", backbone="resnet18")
register_preset(
    "vsenet_tf_efficientnet_lite0",
    create_vsenet,
    "VSENet on timm tf_efficientnet_lite0",
    backbone="tf_efficientnet_lite0",
)

__all__ = ["VSENetForImageClassification", "VSENetOutput", "VSENetPreTrainedModel", "create_vsenet"]
