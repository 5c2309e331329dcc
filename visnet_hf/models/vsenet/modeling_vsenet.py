"""VSENet: a timm backbone projected into the space where a text encoder embedded the class names.

Read top to bottom: output → pretrained base → model → factory → presets.

The model classifies by cosine similarity between its projected visual vector ``z`` and the class
embeddings ``C`` (the semantic head), by a softmax head ``Wv + b`` on the visual vector ``v``, or by
both. Because classes are text, a vocabulary of names it never saw can be handed to it (zero-shot)
without retraining: how those are scored lives in :mod:`visnet_hf.zero_shot`, which the model calls once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from ..._torch import eval_mode, upcast
from ...errors import ConfigError, warn_user
from ...registry import register_family, register_preset
from ...text.encoder import TextEncoderError, get_text_encoder, load_text_model, pool
from ...zero_shot.backbone_labels import BackboneLabels, pretrained_labels
from ...zero_shot.pipeline_labels import labels_from_prompts
from ...zero_shot.prototypes import VisualPrototypes
from ...zero_shot.scorer import ZeroShotScorer
from ...zero_shot.vocabulary import Vocabulary, build_vocabulary
from .._base import VisnetPreTrainedModel
from .._factory import build_model
from . import _legacy
from .configuration_vsenet import VSENetConfig
from .text_side import TextSide
from .text_tower import TextTower


@dataclass
class VSENetOutput(ModelOutput):
    """What VSENet returns.

    Args:
        loss: the training objective selected by ``config.objective`` (when ``labels`` are given).
        logits: the scores that predict, over the vocabulary scored.
        semantic_logits: temperature-scaled cosine similarities of ``z`` to every class embedding.
        softmax_logits: ``Wv + b`` over the trained classes (``None`` in another vocabulary).
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


class VSENetForImageClassification(TextSide, VSENetPreTrainedModel):
    """VSENet for image classification over a vocabulary of class names.

    Example:
        >>> import visnet_hf
        >>> model = visnet_hf.create_model("vsenet_resnet18", class_names=["cat", "dog"])
        >>> model(pixel_values).logits.shape
        torch.Size([B, 2])
    """

    # Its heads read only the pooled features, so a frozen backbone's can be computed once.
    accepts_image_features = True
    # Folders saved by visnet_hf 0.2 hold no gloss embeddings; loading embeds them (see _legacy). Folders saved before
    # the within-class covariance was kept score few-shot photos on standardised features (no whitening); those of
    # models without prototypes, saved before every VSENet kept its feature statistics, on the raw features.
    _keys_to_ignore_on_load_missing = [  # noqa: RUF012
        r"^class_glosses$",
        r"^trained_class_glosses$",
        r"^zero_shot\.prototypes\.",
    ]

    def __init__(self, config: VSENetConfig) -> None:
        super().__init__(config)
        text, zero_shot = config.text_config, config.zero_shot_config
        self.backbone = self._create_backbone(num_classes=0)
        trained, features, width = len(config.trained_class_names), int(self.backbone.num_features), config.embedding_dim
        self.dropout = nn.Dropout(config.dropout)
        self.projection = _projection(config, features)
        self.classifier = nn.Linear(features, trained)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))
        self.register_buffer("class_embeddings", torch.zeros(len(config.class_names), width))
        self.register_buffer("trained_class_embeddings", torch.zeros(trained, width))
        # The trained vocabulary's mean embedding, subtracted from every class embedding with text_config.centering.
        self.register_buffer("text_mean", torch.zeros(width))
        if zero_shot.prototype_glosses > 0:  # each sense's WordNet definition, embedded, for the prototypes
            self.register_buffer("class_glosses", torch.zeros(len(config.class_names), width))
            self.register_buffer("trained_class_glosses", torch.zeros(trained, width))
        # A vocabulary given with example photos (few-shot): each class's sum of its examples' unit features.
        examples = config.class_example_counts is not None
        self.register_buffer("class_example_sums", torch.zeros(len(config.class_names), features) if examples else None)
        self.text_tower = TextTower(text.tower_config, text.pooling, text.trainable_layers) if text.trainable_layers else None
        labels = None
        if config.backbone_labels is not None:  # the backbone's pretrained classifier, kept for the zero-shot scorer
            labels = BackboneLabels(config.backbone_labels, config.backbone_label_synsets or [], features, width)
        self.zero_shot = ZeroShotScorer(trained, features, labels)
        self.zero_shot_heads = ZeroShotHeads(config, features) if zero_shot.separate_heads else None
        self._vocabulary: Vocabulary | None = None  # a view of config.class_names and the buffers
        self.post_init()

    @classmethod
    def backbone_num_classes(cls, config: VSENetConfig) -> int | None:
        """timm's classifier goes (0), unless the zero-shot scorer keeps it (``backbone_label_weight`` or
        ``backbone_classifier_weight``): ``None``."""
        return None if config.zero_shot_config.reads_backbone_classifier() else 0

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, VisualPrototypes):  # a folder without statistics loads them unfitted, not as raw memory
            module.reset()
            return
        super()._init_weights(module)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        vocabulary: Vocabulary | None = None,
        objective: str | None = None,
        zero_shot_config: Any = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> VSENetOutput | tuple:
        """Scores over a vocabulary: the model's own, a given one, or the texts given.

        Args:
            pixel_values: images, as the image processor prepares them.
            labels: class indices, or soft targets (a row of class probabilities per image, as Mixup and
                CutMix give); the output then has the loss of the objective.
            image_features: instead of images, the backbone's pooled features (``pooler_output``),
                computed once for a frozen backbone (``data.cache_features``).
            input_ids: tokenized class texts, one per class, as CLIP takes them (and the zero-shot
                pipeline gives them): the image is scored among these texts, read back as class names
                (:func:`visnet_hf.zero_shot.labels_from_prompts`); the output has ``logits_per_image``.
            attention_mask: the texts' attention mask.
            vocabulary: a :class:`~visnet_hf.zero_shot.Vocabulary` to score against for this call only.
            objective: the training objective for this call (a stage's), instead of ``config.objective``.
            zero_shot_config: how new names are scored in this call, instead of ``config.zero_shot_config``.
        """
        if input_ids is not None:
            if vocabulary is not None:
                raise ValueError("Give class texts (input_ids) or a vocabulary, not both.")
            names, templates = labels_from_prompts(self.tokenizer(), input_ids, self.config.trained_class_names)
            vocabulary = self.with_own_examples(self.vocabulary_for(names, templates=templates))
        vocabulary = self.vocabulary if vocabulary is None else vocabulary
        if image_features is None:
            feature_map, pooled = self.backbone_features(pixel_values)
        else:
            feature_map, pooled = None, image_features.to(self.dtype)
        visual = self.dropout(pooled)
        heads = self if self.zero_shot_heads is None or vocabulary.is_trained_vocabulary else self.zero_shot_heads
        image_embeds = F.normalize(heads.projection(visual), dim=-1)
        scale = self.logit_scale_value(heads)
        classes = self._scored_class_embeddings(vocabulary)
        semantic_logits = scale * image_embeds @ classes.T

        if vocabulary.is_trained_vocabulary:  # both heads are available
            softmax_logits = heads.classifier(visual)
            logits = self._combine(semantic_logits, softmax_logits)
        else:  # names it did not train on (or not in the trained order): the zero-shot scorer
            softmax_logits = None
            trained = self.scored_embeddings(self.trained_class_embeddings)
            logits = self.zero_shot(
                semantic_logits=semantic_logits,
                visual=visual,
                trained_logits=self._combine(scale * image_embeds @ trained.T, heads.classifier(visual)),
                classes=classes,
                trained=trained,
                scale=scale,
                vocabulary=vocabulary,
                trained_vocabulary=self.trained_vocabulary,
                settings=self.config.zero_shot_config if zero_shot_config is None else zero_shot_config,
            )

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
            text_embeds=classes if texts_given else None,
        )
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()

    def get_image_features(
        self, pixel_values: torch.Tensor | None = None, image_features: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        """CLIP's ``get_image_features``: ``pooler_output`` is the projected image ``z``, unit length, as
        the model scores it against new class names; ``last_hidden_state`` is the backbone's feature map."""
        feature_map = None
        if image_features is None:
            feature_map, image_features = self.backbone_features(pixel_values)
        projection = (self.zero_shot_heads or self).projection
        return BaseModelOutputWithPooling(
            last_hidden_state=feature_map, pooler_output=F.normalize(projection(self.dropout(image_features)), dim=-1)
        )

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        """CLIP's ``get_text_features``: ``pooler_output`` is each text's embedding as the model scores it
        (the text encoder's pooled output, unit length, centred with ``text_config.centering``)."""
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if self.text_tower is not None:
            pooled = self.text_tower(input_ids.to(self.device), attention_mask.to(self.device))
        else:
            encoder, _, pooling = load_text_model(self.text_encoder_path(), self.config.text_config.pooling)
            device = next(encoder.parameters()).device
            with torch.no_grad():
                outputs = encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
            pooled = pool(outputs, attention_mask.to(device), pooling).float().to(self.device)
        return BaseModelOutputWithPooling(pooler_output=self.scored_embeddings(F.normalize(pooled, dim=-1)))

    def logit_scale_value(self, heads: nn.Module | None = None) -> torch.Tensor:
        """The cosine logits' scale ``1 / temperature``, clamped at ``1 / min_temperature``."""
        return (heads or self).logit_scale.exp().clamp(max=1.0 / self.config.min_temperature)

    def _combine(self, semantic_logits: torch.Tensor, softmax_logits: torch.Tensor) -> torch.Tensor:
        head, weight = self.config.head, self.config.softmax_weight
        if head == "semantic":
            return semantic_logits
        if head == "softmax":
            return softmax_logits
        return (1 - weight) * upcast(semantic_logits).log_softmax(-1) + weight * upcast(softmax_logits).log_softmax(-1)

    @torch.no_grad()
    def fit_prototypes(self, batches: Iterable[Any]) -> int:
        """Fit the trained classes' feature statistics on their training images: the mean, spread and
        within-class covariance of the pooled features as the model scores them (eval mode, its test-time views),
        and each class's centroid. Few-shot photos are compared in the space they whiten; zero-shot names borrow
        the centroids (``zero_shot_config.prototype_weight``). The trainer fits them (:mod:`visnet_hf.training`);
        call it again after changing the backbone's weights yourself.

        Args:
            batches: ``(pixel_values, labels)`` pairs or dicts with ``pixel_values`` (or the cached
                ``image_features``) and ``labels``, which index ``config.trained_class_names``.

        Returns:
            The number of images.
        """
        with eval_mode(self):
            return self.zero_shot.prototypes.fit(self.pooled_features(batches))

    @torch.no_grad()
    def keep_zero_shot_heads(self, state: dict[str, torch.Tensor]) -> None:
        """Keep a second copy of the heads, with the weights in ``state`` (a state dict of this model), to score
        every vocabulary but the trained one (WiSE-FT chosen per use: ``wise_ft.seen_alpha``)."""
        heads = ZeroShotHeads(self.config, int(self.backbone.num_features)).to(self.logit_scale.device)
        prefixes = tuple(f"{name}." for name in ZeroShotHeads.PARTS)
        heads.load_state_dict({key: state[key] for key in state if key.startswith(prefixes) or key == "logit_scale"})
        self.zero_shot_heads = heads.requires_grad_(False)
        self.config.zero_shot_config.separate_heads = True

    # -- objectives ---------------------------------------------------------------------------

    def loss_terms(
        self,
        semantic_logits: torch.Tensor,
        softmax_logits: torch.Tensor | None,
        labels: torch.Tensor,
        objective: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """The terms of ``objective`` (default ``config.objective``), each in float32 at least.

        * ``align`` (stage 1): cross-entropy of the cosine logits against targets that mix the one-hot label
          with the text side's similarity column ``S[:, y]``, so visual vectors move towards their class's
          semantic vector while keeping the class structure (soft labels ``p``: ``p`` and ``S p``).
        * ``finetune`` (stage 2): cross-entropy of each predicting head.
        * ``weight_reg``: ``L_w``, the squared L2 norm of the head weights.
        """
        config = self.config
        objective = objective or config.objective
        semantic_logits, smoothing = upcast(semantic_logits), config.label_smoothing
        terms: dict[str, torch.Tensor] = {}
        if objective in ("align", "joint"):
            similarity = self.class_similarity().to(semantic_logits)
            if labels.is_floating_point():  # soft targets: the same mix of the similarity columns
                one_hot, structure = labels.to(semantic_logits), labels.to(semantic_logits) @ similarity.T
            else:
                one_hot = F.one_hot(labels, num_classes=semantic_logits.shape[-1]).to(semantic_logits)
                structure = similarity[:, labels].T
            targets = (1 - config.structure_weight) * one_hot + config.structure_weight * structure
            terms["align"] = -(targets * semantic_logits.log_softmax(-1)).sum(-1).mean()
        if objective in ("finetune", "joint"):
            if config.head in ("semantic", "both") or softmax_logits is None:
                terms["semantic_ce"] = F.cross_entropy(semantic_logits, labels, label_smoothing=smoothing)
            if config.head in ("softmax", "both") and softmax_logits is not None:
                terms["softmax_ce"] = F.cross_entropy(upcast(softmax_logits), labels, label_smoothing=smoothing)
        if config.weight_reg > 0:
            weights = [upcast(p).pow(2).sum() for n, p in self.named_parameters() if _is_head_weight(n)]
            terms["weight_reg"] = config.weight_reg * torch.stack(weights).sum()
        return terms

    # -- files --------------------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Weights, config and image processor, plus the text encoder's tokenizer files, so that
        ``pipeline("zero-shot-image-classification", model=save_directory)`` finds everything it loads."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if not kwargs.get("is_main_process", True):
            return
        try:
            self.tokenizer().save_pretrained(save_directory)
        except TextEncoderError as error:
            warn_user(
                f"Saved without the text encoder's tokenizer ({error}); the zero-shot pipeline needs it: "
                "save again where the text encoder loads, or bundle it (visnet bundle-text-encoder)."
            )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):  # type: ignore[override]
        """As the base class; a folder saved by visnet_hf 0.2 (every field at the top level of its config,
        the prototypes' buffers at the top of its weights) is read as today's layout (:mod:`._legacy`)."""
        legacy = _legacy.is_legacy(pretrained_model_name_or_path, kwargs)
        if legacy:
            kwargs.setdefault("key_mapping", _legacy.STATE_KEYS)
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if legacy:
            _legacy.upgrade(model)
        return model


class ZeroShotHeads(nn.Module):
    """A second copy of VSENet's heads (projection, softmax classifier, temperature) that scores every
    vocabulary but the trained one: see :meth:`VSENetForImageClassification.keep_zero_shot_heads`."""

    PARTS = ("projection", "classifier")

    def __init__(self, config: VSENetConfig, num_features: int) -> None:
        super().__init__()
        self.projection = _projection(config, num_features)
        self.classifier = nn.Linear(num_features, len(config.trained_class_names))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))


def _projection(config: VSENetConfig, num_features: int) -> nn.Module:
    if config.projection == "linear":
        return nn.Linear(num_features, config.embedding_dim)
    return nn.Sequential(
        nn.Linear(num_features, config.projection_hidden_dim),
        nn.GELU(),
        nn.Linear(config.projection_hidden_dim, config.embedding_dim),
    )


def _is_head_weight(name: str) -> bool:
    return name.endswith("weight") and name.startswith(("projection.", "classifier."))


# -- factory and presets ----------------------------------------------------------------------


def _initial_state(
    config: VSENetConfig, class_embeddings: torch.Tensor | None, backbone: nn.Module, pretrained: bool
) -> dict[str, torch.Tensor]:
    """What a new model gets once, from the text encoder: the trained vocabulary's embeddings (and glosses),
    its WordNet senses, and, when its last layers train with the model, the text tower's pretrained weights; with
    ``zero_shot_config.backbone_label_weight`` or ``backbone_classifier_weight``, the backbone's pretrained classifier
    and its labels' embeddings
    (:func:`_backbone_label_state`). Resolves ``text_config.pooling: auto`` and records the text space's width."""
    text, state = config.text_config, {}
    if text.trainable_layers:
        text_model, _, text.pooling = load_text_model(text.encoder, text.pooling)
        text.tower_config = text_model.config.to_dict()
        state = {f"text_tower.encoder.{key}": value for key, value in text_model.state_dict().items()}
    glosses = config.zero_shot_config.prototype_glosses > 0
    labels = config.zero_shot_config.reads_backbone_classifier()
    if labels and not pretrained:  # said before anything is embedded
        raise ConfigError(
            "zero_shot_config.backbone_label_weight and backbone_classifier_weight read the backbone's pretrained "
            "classifier, but the backbone was created without pretrained weights (its classifier is random): create "
            "it with pretrained=True (or pretrained_file=...), or set both to 0."
        )
    label_names = pretrained_labels(backbone) if labels else None  # a backbone without ImageNet labels: said here too
    encoder = get_text_encoder(text.encoder, text.pooling) if class_embeddings is None or glosses or labels else None
    if encoder is not None:
        text.pooling = encoder.pooling
    vocabulary = build_vocabulary(
        encoder,
        config.class_names,
        trained_names=config.class_names,
        descriptions=config.class_descriptions,
        synonyms=config.class_synonyms,
        synsets=config.class_synsets,
        templates=text.templates,
        average=text.average,
        describe=text.describe,
        embed_glosses=glosses,
        embeddings=None if class_embeddings is None else torch.as_tensor(class_embeddings),
    )
    config.embedding_dim = int(vocabulary.embeddings.shape[1])
    texts = vocabulary.texts
    assert texts is not None  # built from names
    # What was embedded, described and sensed is recorded as the trained vocabulary: shown, saved, re-embedded alike.
    config.class_descriptions = [list(d) for d in texts.descriptions] if texts.descriptions else None
    config.class_synsets = list(vocabulary.synsets or [])
    config.trained_class_synsets = list(config.class_synsets)
    state.update(
        class_embeddings=vocabulary.embeddings,
        trained_class_embeddings=vocabulary.embeddings.clone(),
        text_mean=vocabulary.embeddings.mean(0),
    )
    if vocabulary.glosses is not None:
        state.update(class_glosses=vocabulary.glosses, trained_class_glosses=vocabulary.glosses.clone())
    if label_names is not None:
        assert encoder is not None  # loaded above for the labels
        state.update(_backbone_label_state(config, backbone, *label_names, encoder, state["text_mean"]))
    return state


# The backbone's labels embedded, by text encoder, text settings and labels: a process that creates several models
# (cross-validation folds, `visnet calibrate --pseudo-unseen`) embeds them once.
_LABEL_EMBEDDINGS: dict[tuple, torch.Tensor] = {}


def _backbone_label_state(
    config: VSENetConfig,
    backbone: nn.Module,
    names: list[str],
    synsets: list[str | None],
    encoder: Any,
    text_mean: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The backbone's pretrained classifier, taken out of it (the model's backbone has none), and its labels (``names``,
    ``synsets``) embedded as the model embeds a class, as the model scores them; the labels go to the config."""
    classifier = backbone.get_classifier()
    text = config.text_config
    key = (text.encoder, encoder.pooling, repr(text.templates), text.average, text.describe, tuple(names), tuple(synsets))
    if key not in _LABEL_EMBEDDINGS:  # 1,000 labels take all-mpnet-base-v2 about 90 s on 2 cores
        _LABEL_EMBEDDINGS[key] = build_vocabulary(
            encoder,
            names,
            synsets=synsets,
            templates=text.templates,
            average=text.average,
            describe=text.describe,
            width=config.embedding_dim,
        ).embeddings
    embeddings = _LABEL_EMBEDDINGS[key]
    embeddings = embeddings - text_mean if text.centering else embeddings
    config.backbone_labels, config.backbone_label_synsets = names, synsets
    state = {
        "zero_shot.backbone_labels.weight": classifier.weight.detach().clone(),
        "zero_shot.backbone_labels.bias": classifier.bias.detach().clone(),
        "zero_shot.backbone_labels.embeddings": F.normalize(embeddings, dim=-1),
    }
    backbone.reset_classifier(0)  # its weights go to the scorer; the model's backbone has no classifier
    return state


def create_vsenet(
    pretrained: bool = False, image_size: int | None = None, class_embeddings: torch.Tensor | None = None, **kwargs: Any
) -> VSENetForImageClassification:
    """Create a new VSENet: backbone (pretrained if asked) and class embeddings computed once.

    Args:
        pretrained: load the backbone's pretrained weights.
        image_size: train/eval resolution (e.g. 32 for CIFAR at native size); default: the backbone's.
        class_embeddings: precomputed ``(num_classes, dim)`` embeddings instead of the text encoder.
        **kwargs: ``VSENetConfig`` fields (``class_names`` is required; ``text_config`` and
            ``zero_shot_config`` as dicts, or their fields by the names they had at the top level before,
            e.g. ``text_encoder``, ``prototype_weight``) and timm keywords.
    """
    if kwargs.get("class_names") is None and kwargs.get("id2label") is None:
        raise ValueError(
            "VSENet needs class names to embed: create_model('vsenet_resnet18', class_names=['cat', 'dog', ...], "
            "text_encoder=HUB_ID_OR_PATH)."
        )
    return build_model(
        VSENetForImageClassification,
        pretrained=pretrained,
        image_size=image_size,
        overrides=kwargs,
        initial_state=lambda config, backbone: _initial_state(config, class_embeddings, backbone, pretrained),
    )


create_vsenet.family = "vsenet"
create_vsenet.model_class = VSENetForImageClassification
register_family("vsenet_", create_vsenet)
register_preset("vsenet_resnet18", create_vsenet, "VSENet on timm resnet18 (the seed's backbone)", backbone="resnet18")
register_preset(
    "vsenet_tf_efficientnet_lite0",
    create_vsenet,
    "VSENet on timm tf_efficientnet_lite0",
    backbone="tf_efficientnet_lite0",
)

__all__ = ["VSENetForImageClassification", "VSENetOutput", "VSENetPreTrainedModel", "ZeroShotHeads", "create_vsenet"]
