"""Configuration of VSENet, the visual-semantic embedding network (the seed's section 4.1).

Grouped as ``CLIPConfig`` groups its parts: the model's own fields (the vision side, the projection,
the heads and the losses), the vocabulary it scores, a :class:`VSENetTextConfig` (the text encoder
and what it reads for each class) and a :class:`VSENetZeroShotConfig` (how names it did not train on
are scored). Models saved before the grouping held every field at the top level; their keys are
mapped on load (:data:`LEGACY_KEYS`), and ``create_model`` takes them too.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from transformers.configuration_utils import SubConfigSpec

from ..._choices import ZeroShotHead
from ...errors import ConfigError
from ...text.encoder import TextPooling
from ...text.local_copies import DEFAULT_TEXT_ENCODER
from ...text.prompts import TextAverage, resolve_templates
from ...wordnet import SOURCES as DESCRIPTION_SOURCES
from .._config import CheckedConfig, FieldChecks, VisnetConfig, sub_config

if TYPE_CHECKING:
    import torch

Head = Literal["semantic", "softmax", "both"]
Objective = Literal["align", "finetune", "joint"]
Projection = Literal["linear", "mlp"]
HEADS, OBJECTIVES, PROJECTIONS = (get_args(t) for t in (Head, Objective, Projection))
ZERO_SHOT_SETTINGS = (
    "head",
    "conse_top_k",
    "prototype_weight",
    "prototype_sharpness",
    "prototype_hierarchy",
    "prototype_glosses",
    "calibration",
    "example_weight",
    "example_shrinkage",
    "example_threshold",
    "example_calibration",
    "score_temperature",
    "backbone_label_weight",
    "backbone_classifier_weight",
    "backbone_classifier_hierarchy",
)


class VSENetTextConfig(CheckedConfig):
    """The text side: which encoder embeds the class names, and what it reads for each class.

    Args:
        encoder: Hub id or local path of the ``transformers`` text encoder; only needed to (re)compute
            class embeddings, never for inference.
        pooling: how the tower's outputs become one vector per text: ``auto`` (what the checkpoint says:
            a CLIP tower's projection, a sentence-transformers checkpoint's pooling mode, else ``mean``),
            ``mean``, ``cls``, ``max``, ``lasttoken``, ``pooler`` or ``projection``; resolved at creation.
        templates: prompt templates with ``{}`` for the name, or a set name (``photo``, ``name``,
            ``clip7``, ``clip80``), stored as the list it names (default ``"a photo of a {}."``).
        average: ``"texts"`` (every prompt counts once) or ``"names"`` (every name and synonym counts
            once, whatever its number of templates).
        describe: where a description comes from for each class that has none, whenever a vocabulary is
            embedded: ``"wordnet"`` (the WordNet 3.0 sense of the name: ``"a type of <hypernym>; <gloss>"``,
            shipped with the package; :mod:`visnet_hf.wordnet`), ``None`` (no descriptions; the senses are still
            found, for ``prototype_hierarchy`` and ``prototype_glosses``) or ``"none"``: WordNet off altogether,
            every use at once (no descriptions, no senses, even those the data gives; hierarchy and glosses
            then have nothing to read).
        centering: subtract the trained vocabulary's mean embedding from every class embedding (trained
            and new) before the cosine: the direction all names share says nothing about any one.
        trainable_layers: train the tower's last N layers with the model (LiT-style locking); 0 keeps it
            frozen and outside the model.
        tower_config: the tower's ``transformers`` config, kept when it is part of the model.
    """

    model_type = "vsenet_text"

    encoder: str = DEFAULT_TEXT_ENCODER
    pooling: TextPooling = "auto"
    templates: str | list[str] | None = None
    average: TextAverage = "texts"
    describe: str | None = None
    centering: bool = False
    trainable_layers: int = 0
    tower_config: dict[str, Any] | None = None

    def _check_values(self, checks: FieldChecks, kwargs: dict[str, Any]) -> None:
        if checks.ok("templates") and isinstance(self.templates, str):
            try:
                self.templates = list(resolve_templates(self.templates))
            except ValueError as error:
                checks.problems.append(f"templates: {error}")
        checks.require(
            "describe", lambda v: v is None or v in DESCRIPTION_SOURCES, f"must be one of {list(DESCRIPTION_SOURCES)} or null"
        )
        checks.require("trainable_layers", lambda v: v >= 0, "must be >= 0")


class VSENetZeroShotConfig(CheckedConfig):
    """How a vocabulary other than the trained one is scored (:class:`~visnet_hf.zero_shot.ZeroShotScorer`).

    Args:
        head: ``"semantic"`` (cosine of the projected image to each name), ``"conse"`` (the trained-class
            prediction's top classes' text embeddings, averaged by probability, against each name) or
            ``"both"`` (their sum).
        conse_top_k: how many of the most probable trained classes ConSE averages.
        prototype_weight: weight of the visual-prototype score (0: none): the image's scaled cosine to each
            name's prototype, the trained classes' feature centroids mixed by how alike the name is to them
            (:mod:`visnet_hf.zero_shot.prototypes`). The trainer fits the centroids (every VSENet keeps them).
        prototype_sharpness: inverse temperature of the text similarity in that mixing.
        prototype_hierarchy: weight of WordNet's Wu-Palmer similarity of the two senses in that mixing (0: none).
        prototype_glosses: weight of the similarity of the two senses' WordNet definitions in that mixing (0: none).
        calibration: offset subtracted from trained classes' scores in a vocabulary that mixes trained and
            new names (generalised zero-shot), so new classes are not swamped; fitted by
            :func:`visnet_hf.zero_shot.fit_offset` / ``visnet calibrate``.
        example_weight: weight of the photo score of a vocabulary given with photos (few-shot,
            :mod:`visnet_hf.zero_shot.few_shot`): the image's scaled cosine to the mean of each name's photos,
            in the feature space whitened by the trained classes' within-class covariance, per square root of
            the number of photos (0: photos ignored). ``None`` (the default): as much as the names' scores weigh
            together (:meth:`photo_weight`), so one photo weighs as much as the name whatever ``head`` and
            ``prototype_weight`` are, or more where the photos given ask for more (``fitted_example_weight``).
        example_shrinkage: that whitening's shrinkage toward the identity (1: standardised features only).
        example_threshold: the cosine to a name's photos an image must pass for them to raise the name's score: the
            photo score is the scaled cosine less this. Where every name has as many photos it changes no softmax; where
            some names have photos and others none (or fewer), it keeps the names with photos from crowding out the
            others. 0.1 was chosen on the Tiny-ImageNet folds (studies/few_shot/PARTIAL.md: there about two standard
            deviations of an image's cosine to other classes' photos; +7.2 points where half the names have photos).
        example_calibration: the offset subtracted from trained classes' scores in a vocabulary that mixes them with
            new names given with photos (``set_classes(..., examples=..., keep_trained=True)``): the photos raise
            the new names' scores otherwise than their texts alone do, so their offset is not the zero-shot one
            (on the Tiny-ImageNet folds 55 against 15; one value holds for 1 to 16 photos, studies/few_shot/OFFSET.md).
            ``None``: ``calibration``. ``visnet calibrate --data`` on a model whose classes have photos fits it.
        score_temperature: what the scores are divided by, after the offset, so that their softmax (what the
            pipelines and ``visnet predict`` show) reads as a chance of being right; no ranking changes. ``None``
            (the default): :meth:`temperature_for`'s rule, the names' scores' weight plus half the photo weight per square
            root of the names' typical number of photos, which turns the sum of the experts back toward their mean
            (chosen on the Tiny-ImageNet folds: studies/few_shot/CALIBRATION.md). 1: the sum as it is.
        backbone_label_weight: weight of ConSE over the backbone's own pretrained classifier (0: none): its most
            probable ImageNet labels' text embeddings, mixed by probability, against each name, the name's own label
            left out (:mod:`visnet_hf.zero_shot.backbone_labels`). Set at creation, the model keeps the classifier and
            its labels' embeddings (the backbone must be ImageNet-pretrained, and frozen in training). 2 was chosen on
            the Tiny-ImageNet folds (studies/few_shot/IMAGENET_HEAD.md: +5 points for the names alone).
        backbone_classifier_weight: weight of each name's classifier borrowed from that same pretrained classifier
            (0: none): the labels' logits, standardised per image, mixed by the softmax over the labels of 20 x the
            name's text cosine to each, the vocabulary's own labels left out (a convex combination of known
            classifiers, Changpinyo et al. 2016), at this weight x the logit scale / 10. Set at creation too (the
            model keeps the classifier when either weight is above 0); not counted in :meth:`names_weight`
            (studies/few_shot/LABEL_PROTOTYPES.md: the photo weight it would give scores alike).
        backbone_classifier_hierarchy: weight of WordNet's Wu-Palmer similarity of the name's sense to each label's
            in that mixing, beside the text cosine (0: the text alone; a name without a sense: the text alone). 10 was
            chosen on the Tiny-ImageNet folds (studies/few_shot/WORDNET_LENDERS.md: +1.9 points for the names alone,
            +0.6 over names and photos), and keeps a name from borrowing from labels that only sound like it.
        fitted_example_weight: the photo weight the photos last given chose (set by ``set_classes(...,
            examples=...)``, not a setting): the weight under which the names' scores plus the photos' score the photos
            themselves most likely, each left out of its own name's mean
            (:func:`~visnet_hf.zero_shot.few_shot.fitted_photo_weight`); ``None`` with one photo a name. Used where
            ``example_weight`` is not set and it is above the names' own weight: a model that reads the names poorly
            leans on the photos more (studies/few_shot/FITTED_WEIGHT.md).
        separate_heads: the model keeps a second copy of its heads for every vocabulary but the trained one
            (WiSE-FT chosen per use; set by the trainer with ``wise_ft.seen_alpha``).
    """

    model_type = "vsenet_zero_shot"

    head: ZeroShotHead = "both"
    conse_top_k: int = 10
    prototype_weight: float = 0.0
    prototype_sharpness: float = 5.0
    prototype_hierarchy: float = 0.0
    prototype_glosses: float = 0.0
    calibration: float = 0.0
    example_weight: float | None = None
    example_shrinkage: float = 0.8
    example_threshold: float = 0.1
    example_calibration: float | None = None
    score_temperature: float | None = None
    backbone_label_weight: float = 0.0
    backbone_classifier_weight: float = 0.0
    backbone_classifier_hierarchy: float = 10.0
    fitted_example_weight: float | None = None
    separate_heads: bool = False

    def _check_values(self, checks: FieldChecks, kwargs: dict[str, Any]) -> None:
        checks.require("conse_top_k", lambda v: v >= 1, "must be >= 1")
        checks.require("prototype_weight", lambda v: v >= 0, "must be >= 0 (0: no visual prototypes)")
        checks.require("prototype_sharpness", lambda v: v > 0, "must be positive")
        checks.require("prototype_hierarchy", lambda v: v >= 0, "must be >= 0 (0: text similarity alone)")
        checks.require("prototype_glosses", lambda v: v >= 0, "must be >= 0 (0: no glosses)")
        checks.require(
            "example_weight",
            lambda v: v is None or v >= 0,
            "must be >= 0 (0: example photos ignored) or null (as the names weigh)",
        )
        checks.require("backbone_label_weight", lambda v: v >= 0, "must be >= 0 (0: the backbone's labels unused)")
        checks.require("backbone_classifier_weight", lambda v: v >= 0, "must be >= 0 (0: no borrowed classifiers)")
        checks.require("backbone_classifier_hierarchy", lambda v: v >= 0, "must be >= 0 (0: text similarity alone)")
        checks.require("example_shrinkage", lambda v: 0 <= v <= 1, "must lie in [0, 1] (1: no whitening)")
        checks.require("fitted_example_weight", lambda v: v is None or v >= 0, "must be >= 0 or null (none fitted)")
        checks.require("example_threshold", lambda v: -1 <= v <= 1, "must lie in [-1, 1] (a cosine; 0: none)")
        checks.require(
            "score_temperature", lambda v: v is None or v > 0, "must be positive (1: the scores as summed) or null (the rule)"
        )

    def reads_backbone_classifier(self) -> bool:
        """Whether the scorer reads the backbone's pretrained classifier (either of its two weights above 0): a model
        created so keeps it."""
        return self.backbone_label_weight > 0 or self.backbone_classifier_weight > 0

    def names_weight(self) -> float:
        """How much the names' scores weigh together: 1 for each of the semantic cosine and ConSE that ``head``
        sums, plus ``prototype_weight`` and ``backbone_label_weight`` (6 for the shipped Tiny-ImageNet model, 2 for
        the defaults)."""
        return (2.0 if self.head == "both" else 1.0) + float(self.prototype_weight) + float(self.backbone_label_weight)

    def photo_weight(self) -> float:
        """The weight of the photo score: ``example_weight``, or by default the names' scores' own weight
        (:meth:`names_weight`), which matches the best weight on the folds for each way of scoring the names
        (studies/few_shot/WEIGHTS.md), or the weight the photos given chose (``fitted_example_weight``) where that is
        more."""
        if self.example_weight is not None:
            return float(self.example_weight)
        return max(self.names_weight(), float(self.fitted_example_weight or 0.0))

    def temperature_for(self, typical_photos: float | torch.Tensor = 0.0) -> float | torch.Tensor:
        """What the scores are divided by: ``score_temperature``, or by default the names' scores' weight plus half the
        photo weight times the square root of ``typical_photos`` (the mean number of photos of the names that have
        some; 0 for names alone). On the folds it brings the log-loss of 1 to 16 photos from 5.9-9.5 to 0.8-1.35
        (studies/few_shot/CALIBRATION.md)."""
        if self.score_temperature is not None:
            return float(self.score_temperature)
        return self.names_weight() + 0.5 * self.photo_weight() * typical_photos**0.5

    def offset(self, with_photos: bool) -> float:
        """The offset on trained names in a mixed vocabulary: ``example_calibration`` when the names carry photos
        and it is set, ``calibration`` otherwise."""
        if with_photos and self.example_calibration is not None:
            return float(self.example_calibration)
        return float(self.calibration)

    def without_offset(self) -> VSENetZeroShotConfig:
        """A copy that lowers no trained name and divides by no temperature: the scores an offset is fitted on (the
        offset acts on the sum of the experts, before the temperature)."""
        return self.updated(calibration=0.0, example_calibration=0.0, score_temperature=1.0)

    def updated(self, **fields: Any) -> VSENetZeroShotConfig:
        """A copy with the ``fields`` that are not ``None`` changed (per-call settings: ``forward(zero_shot_config=...)``).

        Raises:
            ConfigError: a field this config does not have, or a value it does not accept.
        """
        unknown = sorted(set(fields) - set(ZERO_SHOT_SETTINGS))
        if unknown:
            raise ConfigError(f"{unknown} are not zero-shot settings; they are {list(ZERO_SHOT_SETTINGS)}.")
        return dataclasses.replace(self, **{name: value for name, value in fields.items() if value is not None})


# Top-level keys of configs saved before the grouping (visnet_hf 0.2), and the field each became.
LEGACY_KEYS: dict[str, tuple[str, str]] = {
    "text_encoder": ("text_config", "encoder"),
    "text_pooling": ("text_config", "pooling"),
    "templates": ("text_config", "templates"),
    "text_average": ("text_config", "average"),
    "describe_classes": ("text_config", "describe"),
    "class_centering": ("text_config", "centering"),
    "text_trainable_layers": ("text_config", "trainable_layers"),
    "text_tower_config": ("text_config", "tower_config"),
    "zero_shot_head": ("zero_shot_config", "head"),
    "conse_top_k": ("zero_shot_config", "conse_top_k"),
    "prototype_weight": ("zero_shot_config", "prototype_weight"),
    "prototype_sharpness": ("zero_shot_config", "prototype_sharpness"),
    "prototype_hierarchy": ("zero_shot_config", "prototype_hierarchy"),
    "prototype_glosses": ("zero_shot_config", "prototype_glosses"),
    "calibration": ("zero_shot_config", "calibration"),
    "zero_shot_heads": ("zero_shot_config", "separate_heads"),
}


class VSENetConfig(VisnetConfig):
    """A timm backbone, a projection into a text encoder's space, a softmax head, and the vocabulary they score.

    Args:
        class_names: the current vocabulary; ``id2label`` follows it.
        class_synonyms: optional other names per class (e.g. WordNet lemmas), each put in every template.
        class_descriptions: optional descriptions, one list per class, averaged into its embedding.
        class_synsets: each class's WordNet sense (ImageNet's wnid, ``"n01443537"``; None where WordNet does
            not know the name): given with the data, else guessed from the name when the vocabulary was built.
        trained_class_names: the vocabulary the softmax head was trained on. While ``class_names`` equals it
            both heads take part; after ``set_classes`` to other names the zero-shot scorer predicts.
        trained_class_synsets: the WordNet sense of each trained class (as ``class_synsets``).
        class_example_counts: for a vocabulary given with example photos (few-shot), how many each class had
            (0 for a name alone); their features are saved with the weights. ``None``: names alone.
        backbone_labels: the names of the labels of the backbone's pretrained classifier, kept (with its weights)
            when the model was created with ``zero_shot_config.backbone_label_weight`` above 0; ``None``: not kept.
        backbone_label_synsets: their WordNet ids.
        embedding_dim: width of the text space (set from the text encoder by the factory).
        projection: ``"linear"`` or ``"mlp"`` (Linear-GELU-Linear) from visual to text space.
        projection_hidden_dim: hidden width of the MLP projection.
        dropout: dropout on the visual vector before both heads.
        head: which head predicts the trained classes: ``"semantic"`` (cosine to class embeddings),
            ``"softmax"`` (``Wv + b``) or ``"both"`` (their log-probabilities mixed by ``softmax_weight``).
        softmax_weight: weight of the softmax head in ``"both"``.
        temperature: initial temperature of the cosine logits (learnable).
        min_temperature: lower clamp of the temperature, so logits cannot explode.
        gamma: bandwidth of the RBF-softmax class similarity ``S``.
        objective: ``"align"`` (stage 1: visual vectors towards their class's text vector, with soft
            targets from ``S``), ``"finetune"`` (stage 2: cross-entropy of the predicting heads plus
            ``L_w``) or ``"joint"`` (both).
        structure_weight: share of the stage-1 target taken from ``S`` rather than the one-hot label.
        weight_reg: coefficient of ``L_w``, the squared L2 norm of the head weights.
        text_config: a :class:`VSENetTextConfig` (or its fields as a dict).
        zero_shot_config: a :class:`VSENetZeroShotConfig` (or its fields as a dict).
    """

    model_type = "vsenet"
    legacy_fields: ClassVar[frozenset[str]] = frozenset(LEGACY_KEYS)  # accepted by create_model, mapped to the sub-configs
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "text_config": SubConfigSpec(config_class=VSENetTextConfig),
        "zero_shot_config": SubConfigSpec(config_class=VSENetZeroShotConfig),
    }

    class_names: list[str] | None = None
    class_synonyms: list[list[str]] | None = None
    class_descriptions: list[list[str]] | None = None
    class_synsets: list[str | None] | None = None
    trained_class_names: list[str] | None = None
    trained_class_synsets: list[str | None] | None = None
    class_example_counts: list[int] | None = None
    backbone_labels: list[str] | None = None
    backbone_label_synsets: list[str | None] | None = None
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
    # Given as a config, a dict of its fields, or None (the defaults); always a config once built (_prepare).
    text_config: VSENetTextConfig = None  # type: ignore[assignment]
    zero_shot_config: VSENetZeroShotConfig = None  # type: ignore[assignment]

    def _prepare(self, kwargs: dict[str, Any], problems: list[str]) -> None:
        """Fields saved at the top level before the grouping go to their sub-config; both are built here, so
        that their problems are reported with this config's."""
        groups: dict[str, dict[str, Any]] = {"text_config": {}, "zero_shot_config": {}}
        for key in [key for key in kwargs if key in LEGACY_KEYS]:
            group, field = LEGACY_KEYS[key]
            groups[group][field] = kwargs.pop(key)
        for key, config_class in self.sub_configs.items():
            value = getattr(self, key)
            if groups[key]:
                given = value.to_dict() if isinstance(value, CheckedConfig) else dict(value or {})
                twice = [
                    name for name in groups[key] if name in given and given[name] != groups[key][name] and isinstance(value, dict)
                ]
                problems += [
                    f"{key}.{name} is given twice, as {given[name]!r} and (by its old name) as {groups[key][name]!r}; keep one"
                    for name in twice
                ]
                value = {**given, **groups[key]}
            setattr(self, key, sub_config(config_class, value, key, problems))

    def _check_values(self, checks: FieldChecks, kwargs: dict[str, Any]) -> None:
        super()._check_values(checks, kwargs)
        problems = checks.problems
        per_class = ("class_descriptions", "class_synonyms", "class_synsets", "class_example_counts")
        if checks.ok("class_names", "trained_class_names", *per_class):
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
            for name in per_class:
                entries = getattr(self, name)
                if entries is not None and len(entries) != len(self.class_names):
                    problems.append(f"{name} has {len(entries)} entries for {len(self.class_names)} classes")
        synsets, trained = self.trained_class_synsets, self.trained_class_names or []
        if checks.ok("trained_class_names", "trained_class_synsets") and synsets is not None and len(synsets) != len(trained):
            problems.append(f"trained_class_synsets has {len(synsets)} entries for {len(trained)} trained classes")
        labels, label_synsets = self.backbone_labels, self.backbone_label_synsets
        if checks.ok("backbone_labels", "backbone_label_synsets") and len(labels or ()) != len(label_synsets or ()):
            problems.append(
                f"backbone_label_synsets has {len(label_synsets or ())} entries for {len(labels or ())} backbone_labels"
            )
        checks.require("softmax_weight", lambda v: 0.0 <= v <= 1.0, "must lie in [0, 1]")
        if checks.ok("min_temperature", "temperature") and not 0.0 < self.min_temperature <= self.temperature:
            problems.append(
                f"temperatures must satisfy 0 < min_temperature <= temperature, got {self.min_temperature} and {self.temperature}"
            )
        checks.require("gamma", lambda v: v > 0, "must be positive")
        checks.require("structure_weight", lambda v: 0.0 <= v <= 1.0, "must lie in [0, 1]")
        checks.require("weight_reg", lambda v: v >= 0, "must be >= 0")
        checks.require("dropout", lambda v: 0.0 <= v < 1.0, "must lie in [0, 1)")


__all__ = ["LEGACY_KEYS", "VSENetConfig", "VSENetTextConfig", "VSENetZeroShotConfig"]
