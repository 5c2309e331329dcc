"""Configuration of VSENet, the visual-semantic embedding network (the seed's section 4.1)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from ...text_encoders import DEFAULT_TEXT_ENCODER, TextAverage, TextPooling, resolve_templates
from ...wordnet import SOURCES as DESCRIPTION_SOURCES
from .._base import FieldChecks, VisnetConfig

Head = Literal["semantic", "softmax", "both"]
Objective = Literal["align", "finetune", "joint"]
Projection = Literal["linear", "mlp"]
ZeroShotHead = Literal["semantic", "conse", "both"]
HEADS, OBJECTIVES, PROJECTIONS, ZERO_SHOT_HEADS = (get_args(t) for t in (Head, Objective, Projection, ZeroShotHead))


class VSENetConfig(VisnetConfig):
    """A timm backbone, a projection into a text encoder's space, and a softmax head.

    Args:
        text_encoder: Hub id or local path of the ``transformers`` text encoder that embeds class
            names; only needed to (re)compute class embeddings, never for inference.
        text_pooling: how the text tower's outputs become one vector per text: ``"auto"`` (CLIP-style
            towers: their projection; others: ``"mean"``), ``"mean"``, ``"cls"``, ``"pooler"`` or
            ``"projection"``; resolved when the model is created.
        class_names: the current vocabulary; ``id2label`` follows it.
        class_synonyms: optional other names per class (e.g. WordNet lemmas), each put in every template.
        class_descriptions: optional descriptions, one list per class, averaged into its embedding.
        class_synsets: optional WordNet id per class (ImageNet's wnid, ``"n01443537"``): where given, the
            class's sense for ``describe_classes`` and ``prototype_hierarchy`` instead of the one guessed
            from its name.
        describe_classes: where to find a description for each class that has none, whenever a
            vocabulary is embedded (the trained one, ``set_classes``, pipelines, the CLI): ``"wordnet"``
            (the WordNet 3.0 noun the name stands for: ``"a type of <hypernym>; <gloss>"``, shipped with
            the package; see :mod:`visnet_hf.wordnet`) or ``None``.
        templates: prompt templates with ``{}`` for the name, or a set name (``photo``, ``name``,
            ``clip7``, ``clip80``), stored as the list it names (default ``"a photo of a {}."``).
        text_average: ``"texts"`` (every prompt counts once) or ``"names"`` (every name and synonym
            counts once, whatever its number of templates).
        text_trainable_layers: train the text tower's last N layers with the model (LiT-style
            locking); 0 keeps it frozen and outside the model.
        text_tower_config: the text tower's ``transformers`` config, kept when it is part of the model.
        class_centering: subtract the trained vocabulary's mean embedding from every class embedding
            (trained and new) before the cosine: the direction all names share says nothing about any one.
        trained_class_names: the vocabulary the softmax head was trained on. While ``class_names``
            equals it the softmax head takes part; after ``set_classes`` to other names the
            ``zero_shot_head`` predicts, with ``calibration`` applied to any trained names among them.
        embedding_dim: width of the text space (set from the text encoder by the factory).
        projection: ``"linear"`` or ``"mlp"`` (Linear-GELU-Linear) from visual to text space.
        projection_hidden_dim: hidden width of the MLP projection.
        dropout: dropout on the visual vector before both heads.
        head: which head predicts: ``"semantic"`` (cosine to class embeddings), ``"softmax"``
            (``Wv + b``) or ``"both"`` (their log-probabilities mixed by ``softmax_weight``).
        softmax_weight: weight of the softmax head in ``"both"``.
        temperature: initial temperature of the cosine logits (learnable).
        min_temperature: lower clamp of the temperature, so logits cannot explode.
        gamma: bandwidth of the RBF-softmax class similarity ``S``.
        objective: ``"align"`` (stage 1: visual vectors towards their class's text vector, with soft
            targets from ``S``), ``"finetune"`` (stage 2: cross-entropy of the predicting heads plus
            ``L_w``) or ``"joint"`` (both).
        structure_weight: share of the stage-1 target taken from ``S`` rather than the one-hot label.
        weight_reg: coefficient of ``L_w``, the squared L2 norm of the head weights.
        zero_shot_head: how a vocabulary other than the trained one is scored: ``"semantic"``
            (cosine of the projected image to each name), ``"conse"`` (the trained-class prediction's
            top classes' text embeddings, averaged by probability, against each name) or ``"both"``
            (their sum).
        conse_top_k: how many of the most probable trained classes ConSE averages.
        prototype_weight: weight of the visual-prototype score added to the zero-shot head's logits
            (0: none). A name's prototype is the trained classes' centroids in the backbone's
            (standardised) feature space, averaged by the softmax of its text similarity to them
            (sharpness ``prototype_sharpness``); the image's scaled cosine to it is the score. The
            centroids are buffers of the model, computed from its training images
            (``fit_prototypes``; the trainer does it before the first step).
        prototype_sharpness: inverse temperature of that softmax over the trained classes.
        prototype_hierarchy: weight of WordNet in that softmax: its logits are ``prototype_sharpness``
            times the text similarity plus ``prototype_hierarchy`` times the Wu-Palmer similarity of
            the two names' WordNet senses (:func:`visnet_hf.wordnet.hierarchy_similarity`; a name
            WordNet does not know is alike to nothing by it). 0: text similarity alone.
        prototype_glosses: weight of WordNet's definitions in that softmax: plus this weight times the
            cosine similarity of the two senses' glosses alone (no name, template or hypernym), embedded by
            the text encoder and centred on the trained classes' (a sense WordNet does not know: 0). 0: none.
        trained_class_synsets: the WordNet sense (id) of each trained class, from ``class_synsets``
            or as :func:`visnet_hf.wordnet.synset_ids` picks it from the trained names and synonyms;
            set by ``fit_prototypes`` (or when first needed) and saved with the model.
        calibration: offset subtracted from trained classes' scores in a mixed (generalised
            zero-shot) vocabulary, so new classes are not swamped; see ``fit_calibration``.
        zero_shot_heads: the model keeps a second copy of its heads for vocabularies other than the
            trained one (WiSE-FT chosen per use; set by ``keep_zero_shot_heads``).
    """

    model_type = "vsenet"

    text_encoder: str = DEFAULT_TEXT_ENCODER
    text_pooling: TextPooling = "auto"
    class_names: list[str] | None = None
    class_synonyms: list[list[str]] | None = None
    class_descriptions: list[list[str]] | None = None
    class_synsets: list[str | None] | None = None
    describe_classes: str | None = None
    templates: str | list[str] | None = None
    text_average: TextAverage = "texts"
    text_trainable_layers: int = 0
    text_tower_config: dict[str, Any] | None = None
    class_centering: bool = False
    trained_class_names: list[str] | None = None
    embedding_dim: int = 384
    projection: Projection = "linear"
    projection_hidden_dim: int = 1024
    dropout: float = 0.0
    head: Head = "both"
    softmax_weight: float = 0.5
    temperature: float = 0.07
    min_temperature: float = 0.01
    gamma: float = 1.0
    objective: Objective = "finetune"
    structure_weight: float = 0.1
    weight_reg: float = 1e-4
    zero_shot_head: ZeroShotHead = "both"
    conse_top_k: int = 10
    prototype_weight: float = 0.0
    prototype_sharpness: float = 5.0
    prototype_hierarchy: float = 0.0
    prototype_glosses: float = 0.0
    trained_class_synsets: list[str | None] | None = None
    calibration: float = 0.0
    zero_shot_heads: bool = False

    def _check_values(self, checks: FieldChecks, kwargs: dict[str, Any]) -> None:
        super()._check_values(checks, kwargs)
        problems = checks.problems
        if checks.ok("class_names", "trained_class_names", "class_descriptions", "class_synonyms", "class_synsets"):
            if self.class_names is not None:
                if kwargs.get("num_labels") not in (None, len(self.class_names)):
                    problems.append(f"num_labels={kwargs['num_labels']} but {len(self.class_names)} class_names were given")
                if len(set(self.class_names)) != len(self.class_names):
                    problems.append("class_names must be unique")
                self.id2label = dict(enumerate(self.class_names))
                self.label2id = {name: index for index, name in enumerate(self.class_names)}
            else:
                self.class_names = [self.id2label[i] for i in range(len(self.id2label))]
            if self.trained_class_names is None:
                self.trained_class_names = list(self.class_names)
            for name in ("class_descriptions", "class_synonyms", "class_synsets"):
                per_class = getattr(self, name)
                if per_class is not None and len(per_class) != len(self.class_names):
                    problems.append(f"{name} has {len(per_class)} entries for {len(self.class_names)} classes")
        synsets, trained = self.trained_class_synsets, self.trained_class_names or []
        if checks.ok("trained_class_names", "trained_class_synsets") and synsets is not None and len(synsets) != len(trained):
            problems.append(f"trained_class_synsets has {len(synsets)} entries for {len(trained)} trained classes")
        if checks.ok("templates") and isinstance(self.templates, str):
            try:
                self.templates = list(resolve_templates(self.templates))
            except ValueError as error:
                problems.append(f"templates: {error}")
        checks.require(
            "describe_classes",
            lambda v: v is None or v in DESCRIPTION_SOURCES,
            f"must be one of {list(DESCRIPTION_SOURCES)} or null",
        )
        checks.require("text_trainable_layers", lambda v: v >= 0, "must be >= 0")
        checks.require("conse_top_k", lambda v: v >= 1, "must be >= 1")
        checks.require("prototype_weight", lambda v: v >= 0, "must be >= 0 (0: no visual prototypes)")
        checks.require("prototype_sharpness", lambda v: v > 0, "must be positive")
        checks.require("prototype_hierarchy", lambda v: v >= 0, "must be >= 0 (0: text similarity alone)")
        checks.require("prototype_glosses", lambda v: v >= 0, "must be >= 0 (0: no glosses)")
        checks.require("softmax_weight", lambda v: 0.0 <= v <= 1.0, "must lie in [0, 1]")
        if checks.ok("min_temperature", "temperature") and not 0.0 < self.min_temperature <= self.temperature:
            problems.append(
                f"temperatures must satisfy 0 < min_temperature <= temperature, got {self.min_temperature} and {self.temperature}"
            )
        checks.require("gamma", lambda v: v > 0, "must be positive")
        checks.require("structure_weight", lambda v: 0.0 <= v <= 1.0, "must lie in [0, 1]")
        checks.require("weight_reg", lambda v: v >= 0, "must be >= 0")
        checks.require("dropout", lambda v: 0.0 <= v < 1.0, "must lie in [0, 1)")


__all__ = ["VSENetConfig"]
