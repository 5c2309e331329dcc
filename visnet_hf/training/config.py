"""The training config: YAML → typed, frozen dataclasses; ``key=value`` overrides; one error for all problems.

Science lives here; hardware (processes, mixed precision, machines) belongs to ``accelerate launch``
and ``accelerate config``.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .._paths import looked_in
from .._validation import build, did_you_mean, raise_problems
from ..constraints import ConstraintSpec
from ..data.config import DataConfig
from ..errors import ConfigError
from .optim import OptimConfig


@dataclass(frozen=True)
class ModelConfig:
    """Which preset to create (``visnet_hf.list_models()``) and how.

    ``overrides`` are config fields or timm keywords for ``create_model``; ``pretrained_file`` loads
    the backbone's pretrained weights from a local file (timm's ``pretrained_cfg_overlay``).

    How the model runs (the numbers it computes stay the same):
    ``channels_last`` stores weights and images in NHWC, which convolutions run faster in on GPUs
    (``null``: on for a convolutional backbone on CUDA, off elsewhere); ``compile`` runs the model
    through ``torch.compile`` (``true`` or a mode: ``reduce-overhead``, ``max-autotune``...), in place,
    so saved weights keep their names; ``accelerate launch --dynamo_backend`` asks for the same.
    ``gradient_checkpointing`` recomputes the backbone's activations in the backward pass (timm's
    ``set_grad_checkpointing``, through ``activation_checkpointing_enable()``): less memory, a slower step.
    """

    name: str = "frn_resnet18"
    pretrained: bool = False
    pretrained_file: str | None = None
    image_size: int | None = None
    text_encoder: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    channels_last: bool | None = None
    compile: bool | Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = False
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        file = self.pretrained_file
        if file and "://" not in file and not Path(file).is_file():
            raise ValueError(
                f"model.pretrained_file={file!r} is not a file{looked_in(file)}; give the weights file's path, or "
                "model.pretrained: true for the Hub's weights"
            )


@dataclass(frozen=True)
class MixupConfig:
    """Mixup and CutMix of the training batches (timm's ``Mixup``; its keyword names): each batch is
    mixed with its reverse, by Mixup (``mixup_alpha``) or CutMix (``cutmix_alpha``; ``switch_prob`` of the
    time when both are on), with probability ``prob``, per ``batch``, ``pair`` or ``elem``. The loss reads
    the mixed soft targets (both model families, every head; ``label_smoothing`` still applies); Soft
    Tuning constraints read each mixed image's dominant label."""

    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    cutmix_minmax: list[float] | None = None
    prob: float = 1.0
    switch_prob: float = 0.5
    mode: Literal["batch", "pair", "elem"] = "batch"

    def __post_init__(self) -> None:
        problems = []
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0 (0 turns it off)")
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0 and self.cutmix_minmax is None:
            problems.append("mixup_alpha and cutmix_alpha are both 0: nothing would mix; drop the mixup section instead")
        for name in ("prob", "switch_prob"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name}={getattr(self, name)} must lie in [0, 1]")
        if self.cutmix_minmax is not None and (
            len(self.cutmix_minmax) != 2 or not 0 < self.cutmix_minmax[0] <= self.cutmix_minmax[1] <= 1
        ):
            problems.append(f"cutmix_minmax={self.cutmix_minmax} must be [low, high] with 0 < low <= high <= 1")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class StageConfig:
    """One stage of training: its length, VSENet's objective, and the Soft Tuning constraints active in it.

    A stage lasts ``epochs`` passes over the data (1 when neither is given) or ``steps`` optimizer
    steps; the constraints' ``start`` / ``stop`` / ``warmup`` count from the stage's first step.
    The seed's recipe is three stages: initialise (``epochs: 0`` or a short warm-up), train the
    exploration task, then add constraints and train again.
    """

    name: str = "train"
    epochs: int | None = None
    steps: int | None = None
    objective: Literal["align", "finetune", "joint"] | None = None
    constraints: list[ConstraintSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.epochs is not None and self.steps is not None:
            raise ValueError(
                f"stage {self.name!r}: give epochs or steps, not both (override one with null, e.g. stages.0.epochs=null)"
            )
        if self.epochs is None and self.steps is None:
            object.__setattr__(self, "epochs", 1)
        for name in ("epochs", "steps"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"stage {self.name!r}: {name}={getattr(self, name)} must be >= 0")

    def forward_kwargs(self) -> dict[str, Any]:
        """What the stage asks of each training forward call (VSENet's ``objective``), so the model's
        config stays as it was created."""
        return {"objective": self.objective} if self.objective is not None else {}


@dataclass(frozen=True)
class HubConfig:
    """Sharing at the end of training: the card's licence, and an optional push of the best model."""

    push: bool = False
    repo_id: str | None = None
    private: bool = False
    license: str = "apache-2.0"

    def __post_init__(self) -> None:
        if self.push and not self.repo_id:
            raise ValueError("hub.push needs hub.repo_id, e.g. 'your-name/vsenet-cifar10'")


@dataclass(frozen=True)
class WiseFTConfig:
    """WiSE-FT at the end of training: the exported model is ``(1 - alpha)`` times the weights at the
    end of ``stage`` (e.g. the aligned stage-1 model) plus ``alpha`` times the final weights.

    ``seen_alpha`` (a VSENet on a frozen backbone) chooses the point per use: the trained vocabulary is
    scored by heads at ``seen_alpha`` (nearer the fine-tuned end serves the trained classes), every
    other vocabulary by a copy of the heads at ``alpha`` (nearer the aligned end transfers to new names).
    """

    stage: str
    alpha: float = 0.5
    seen_alpha: float | None = None

    def __post_init__(self) -> None:
        for name in ("alpha", "seen_alpha"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} must lie in [0, 1]")


@dataclass(frozen=True)
class TrainConfig:
    """A training run: what to train (``model``), on what (``data``), how (``optim``, ``stages``), and
    what it leaves behind.

    ``eval_every_steps`` evaluates within epochs too (every epoch ends with one anyway);
    ``checkpoints: false`` writes no checkpoints (no ``--resume``) and ``export: false`` no model
    folder, reports or plots: what a sweep of many short runs wants (:mod:`visnet_hf.training.selection`).
    ``on_nonfinite`` says what a NaN or infinite loss does: ``stop`` the run, or ``skip`` the step.
    ``mixup`` (:class:`MixupConfig`) mixes the training batches, Mixup and CutMix.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    batch_size: int = 64
    eval_batch_size: int | None = None
    gradient_accumulation_steps: int = 1
    max_steps_per_epoch: int | None = None
    seed: int = 0
    output_dir: str = "outputs/run"
    eval_every_steps: int | None = None
    checkpoints: bool = True
    export: bool = True
    checkpoint_every_steps: int | None = None
    keep_checkpoints: int = 2
    log_every_steps: int = 10
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    on_nonfinite: Literal["stop", "skip"] = "stop"
    plugins_allow: list[str] | None = None
    plugins_deny: list[str] = field(default_factory=list)
    hub: HubConfig = field(default_factory=HubConfig)
    wise_ft: WiseFTConfig | None = None
    mixup: MixupConfig | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.mixup is not None and self.data.cache_features:
            problems.append("mixup mixes images, and data.cache_features trains on features computed once: drop one of them")
        if self.hub.push and not self.export:
            problems.append("hub.push needs export: true (the exported model is what is pushed)")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} must be >= 1")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            problems.append(f"eval_batch_size={self.eval_batch_size} must be >= 1")
        if self.gradient_accumulation_steps < 1:
            problems.append(f"gradient_accumulation_steps={self.gradient_accumulation_steps} must be >= 1")
        for name in ("checkpoint_every_steps", "eval_every_steps", "max_steps_per_epoch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.log_every_steps < 1:
            problems.append(f"log_every_steps={self.log_every_steps} must be >= 1")
        if self.keep_checkpoints < 1:
            problems.append(f"keep_checkpoints={self.keep_checkpoints} must be >= 1")
        if not self.stages:
            problems.append("stages must list at least one stage")
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            problems.append(f"stage names must be unique, got {names}")
        if self.wise_ft is not None and self.wise_ft.stage not in names[:-1]:
            problems.append(f"wise_ft.stage={self.wise_ft.stage!r} must name a stage before the last; the stages are {names}")
        per_use = self.wise_ft is not None and self.wise_ft.seen_alpha is not None
        text_overrides = self.model.overrides.get("text_config") or {}
        trainable_text = self.model.overrides.get("text_trainable_layers") or (
            isinstance(text_overrides, dict) and text_overrides.get("trainable_layers")
        )
        if per_use and (self.optim.freeze != "backbone" or trainable_text):
            problems.append(
                "wise_ft.seen_alpha keeps only the heads twice, so it needs optim.freeze: backbone and no trainable "
                "text layers; drop seen_alpha, or freeze the backbone"
            )
        zero_shot_overrides = self.model.overrides.get("zero_shot_config") or {}
        for weight in ("backbone_label_weight", "backbone_classifier_weight"):
            if isinstance(zero_shot_overrides, dict) and zero_shot_overrides.get(weight) and self.optim.freeze != "backbone":
                problems.append(
                    f"model.overrides.zero_shot_config.{weight} reads the backbone's pretrained classifier, which a "
                    f"backbone that trains leaves behind; set optim.freeze: backbone, or {weight}: 0"
                )
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=0.01", "stages.0.epochs=2"]`` → a nested dict; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} is not key=value (e.g. optim.lr=0.01).")
        key, raw = item.split("=", 1)
        try:
            tree[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"Override {item!r}: its value is not valid YAML ({error}).") from None
    return tree


def _apply(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = data
    for part, following in itertools.pairwise(parts):
        if isinstance(node, list):
            node = node[int(part)]
            continue
        node = node.setdefault(part, [] if following.isdigit() else {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def _merge(defaults: Any, data: Any) -> Any:
    """Defaults overlaid with the YAML: mappings merge key by key, anything else replaces."""
    if isinstance(defaults, dict) and isinstance(data, dict):
        return {**defaults, **{k: _merge(defaults.get(k), v) for k, v in data.items()}}
    return data


def _model_problems(model: ModelConfig, stages: list[StageConfig]) -> list[str]:
    """Unknown presets and backbones, caught before any data is read."""
    from ..backbones import UnknownBackboneError, check_backbone_name
    from ..models._factory import keyword_problems
    from ..registry import get_preset

    problems = []
    try:
        preset = get_preset(model.name)
    except ConfigError as error:
        problems.append(f"model.name: {error}")
        preset = None
    family = preset.family if preset is not None else None
    if family not in (None, "vsenet"):
        problems += [
            f"stages[{index}].objective: {stage.objective!r} is a VSENet objective; {model.name!r} is not a VSENet"
            for index, stage in enumerate(stages)
            if stage.objective is not None
        ]
    backbone = model.overrides.get("backbone")
    if backbone is not None:
        try:
            check_backbone_name(str(backbone))
        except UnknownBackboneError as error:
            problems.append(f"model.overrides.backbone: {error}")
            return problems
    model_class = getattr(preset.factory, "model_class", None) if preset else None  # a plugin's factory may not say
    if preset is not None and model_class is not None:
        problems += keyword_problems(model_class, {**preset.defaults, **model.overrides})
    return problems


def _tracker_problems(trackers: Any) -> list[str]:
    """Trackers accelerate does not know (a typo) or cannot use here (not installed), caught before any data is read."""
    if not isinstance(trackers, list):
        return []  # reported by the type checks
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    known = [kind.value for kind in LoggerType if kind.value != "all"]
    available = {str(getattr(kind, "value", kind)) for kind in get_available_trackers()}
    problems = []
    for name in trackers:
        if name not in known and name != "all":
            problems.append(
                f"trackers: {name!r} is not a tracker accelerate knows.{did_you_mean(str(name), known)} Trackers: {', '.join(known)}"
            )
        elif name != "all" and name not in available:
            problems.append(f"trackers: {name!r} is not installed here: pip install {name} (or leave it out of trackers)")
    return problems


def _hub_problems(hub: Any) -> list[str]:
    """A push at the end of training that cannot happen (offline, no token), caught before the first step."""
    if not isinstance(hub, dict) or not hub.get("push"):
        return []
    from ..hub.sharing import push_problem

    problem = push_problem()
    return [f"hub.push: {problem}"] if problem else []


def _constraint_problems(data: dict[str, Any]) -> list[str]:
    """Constraint names that no installed plugin (or two of them) registers, or that the allow / deny
    lists forbid; found from package metadata, without importing any plugin. Read from the raw
    config, so they are reported even when other parts of it are wrong."""
    from ..constraints.plugins import conflict_message, discover, unknown_constraint_message

    installed = discover().plugins
    allow, deny = data.get("plugins_allow"), data.get("plugins_deny") or []
    stages: list[Any] = data["stages"] if isinstance(data.get("stages"), list) else []
    problems = []
    for i, stage in enumerate(stages):
        constraints = stage.get("constraints") if isinstance(stage, dict) else None
        for j, spec in enumerate(constraints if isinstance(constraints, list) else []):
            name = spec.get("name") if isinstance(spec, dict) else None
            if not isinstance(name, str):
                continue  # reported by the type checks
            where = f"stages[{i}].constraints[{j}].name"
            if name not in installed:
                problems.append(f"{where}: {unknown_constraint_message(name)}")
            elif conflict_message(name):
                problems.append(f"{where}: {conflict_message(name)}")
            elif isinstance(allow, list) and name not in allow:
                problems.append(f"{where}: {name!r} is not in plugins_allow {allow}")
            elif isinstance(deny, list) and name in deny:
                problems.append(f"{where}: {name!r} is in plugins_deny")
    return problems


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config, apply ``key=value`` overrides, validate everything, report once.

    Raises:
        ConfigError: listing every unknown key (with close matches), wrong type and impossible value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"Config file {str(path)!r} does not exist.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of config sections.")
    return config_from_dict(data, overrides, str(path) if path else "the config")


def override(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """``config`` with ``key=value`` overrides applied, validated as a config file is."""
    return config_from_dict(config.to_dict(), overrides, "the config")


def config_from_dict(data: dict[str, Any], overrides: list[str] | None = None, where: str = "the config") -> TrainConfig:
    """A :class:`TrainConfig` from a mapping (the defaults fill what it leaves out) and overrides.

    Raises:
        ConfigError: every problem, listed together.
    """
    data = _merge(dataclasses.asdict(TrainConfig()), data)
    for dotted, value in parse_overrides(overrides or []).items():
        try:
            _apply(data, dotted, value)
        except (IndexError, ValueError, TypeError, AttributeError):
            raise ConfigError(f"Override {dotted}={value!r} does not address a config entry.") from None
    problems: list[str] = []
    config = build(TrainConfig, data, "", problems)
    model = build(ModelConfig, data.get("model"), "model", [])  # its own problems are already listed
    if model is not None:
        problems += _model_problems(model, config.stages if config is not None else [])
    problems += _constraint_problems(data)
    problems += _tracker_problems(data.get("trackers"))
    problems += _hub_problems(data.get("hub"))
    raise_problems(problems, ConfigError, where)
    return config
