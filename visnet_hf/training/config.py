"""The training config: YAML → typed, frozen dataclasses; ``key=value`` overrides; one error for all problems.

Science lives here; hardware (processes, mixed precision, machines) belongs to ``accelerate launch``
and ``accelerate config``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .._typecheck import build
from ..constraints import ConstraintSpec


class ConfigError(ValueError):
    """Every problem found in a config, listed together."""


@dataclass(frozen=True)
class ModelConfig:
    """Which preset to create (``visnet_hf.list_models()``) and how.

    ``overrides`` are config fields or timm keywords for ``create_model``; ``pretrained_file`` loads
    the backbone's pretrained weights from a local file (timm's ``pretrained_cfg_overlay``).
    """

    name: str = "frn_resnet18"
    pretrained: bool = False
    pretrained_file: str | None = None
    image_size: int | None = None
    text_encoder: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AugmentConfig:
    """The seed's augmentation (random crop with padding, horizontal flip) or timm's ``create_transform`` options."""

    random_crop_padding: int = 4
    hflip: bool = True
    timm: dict[str, Any] | None = None


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from.

    ``source``: ``parquet`` (``path``: a file or list of files), ``imagefolder`` (``path``: a folder),
    ``hub`` (``path``: a Hub dataset id, ``subset``: its config name) or ``fashion_mnist`` (Debian's
    ``dataset-fashion-mnist`` files when present, the Hub otherwise). ``include_classes`` trains on
    a subset of the classes (by name, in that order), e.g. to keep others for zero-shot evaluation.
    """

    source: Literal["parquet", "imagefolder", "hub", "fashion_mnist"] = "parquet"
    path: str | list[str] | None = None
    eval_path: str | list[str] | None = None
    subset: str | None = None
    train_split: str = "train"
    eval_split: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    class_names: list[str] | None = None
    include_classes: list[str] | None = None
    descriptions_file: str | None = None
    val_fraction: float = 0.1
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    num_workers: int = 0
    on_bad_image: Literal["skip", "stop"] = "stop"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction={self.val_fraction} must lie in (0, 1)")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and schedule. ``backbone_lr`` gives the backbone its own learning rate;
    ``freeze``: ``none`` (full fine-tune), ``backbone`` (linear probe of the heads) or ``partial``
    (only parameters under ``trainable_prefixes`` train)."""

    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-3
    backbone_lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.05
    scheduler: Literal["cosine", "multistep", "constant"] = "cosine"
    warmup_steps: int = 0
    milestones: list[int] = field(default_factory=list)
    decay: float = 0.1
    grad_clip: float | None = None
    freeze: Literal["none", "backbone", "partial"] = "none"
    trainable_prefixes: list[str] = field(default_factory=list)
    ema_decay: float | None = None

    def __post_init__(self):
        problems = []
        if self.lr <= 0:
            problems.append(f"lr={self.lr} must be positive")
        if self.backbone_lr is not None and self.backbone_lr < 0:
            problems.append(f"backbone_lr={self.backbone_lr} must be >= 0")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps={self.warmup_steps} must be >= 0")
        if self.grad_clip is not None and self.grad_clip <= 0:
            problems.append(f"grad_clip={self.grad_clip} must be positive")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            problems.append(f"ema_decay={self.ema_decay} must lie in (0, 1)")
        if self.freeze == "partial" and not self.trainable_prefixes:
            problems.append("freeze='partial' needs trainable_prefixes, e.g. ['backbone.layer4', 'head', 'classifier']")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class StageConfig:
    """One stage of training: epochs, VSENet's objective, and the Soft Tuning constraints active in it.

    The seed's recipe is three stages: initialise (``epochs: 0`` or a short warm-up), train the
    exploration task, then add constraints and train again.
    """

    name: str = "train"
    epochs: int = 1
    objective: Literal["align", "finetune", "joint"] | None = None
    constraints: list[ConstraintSpec] = field(default_factory=list)

    def __post_init__(self):
        if self.epochs < 0:
            raise ValueError(f"stage {self.name!r}: epochs={self.epochs} must be >= 0")


@dataclass(frozen=True)
class HubConfig:
    """Sharing at the end of training: the card's licence, and an optional push of the best model."""

    push: bool = False
    repo_id: str | None = None
    private: bool = False
    license: str = "apache-2.0"

    def __post_init__(self):
        if self.push and not self.repo_id:
            raise ValueError("hub.push needs hub.repo_id, e.g. 'your-name/vsenet-cifar10'")


@dataclass(frozen=True)
class TrainConfig:
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
    checkpoint_every_steps: int | None = None
    keep_checkpoints: int = 2
    log_every_steps: int = 10
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    on_nonfinite: Literal["stop", "skip"] = "stop"
    plugins_allow: list[str] | None = None
    plugins_deny: list[str] = field(default_factory=list)
    hub: HubConfig = field(default_factory=HubConfig)

    def __post_init__(self):
        problems = []
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} must be >= 1")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            problems.append(f"eval_batch_size={self.eval_batch_size} must be >= 1")
        if self.gradient_accumulation_steps < 1:
            problems.append(f"gradient_accumulation_steps={self.gradient_accumulation_steps} must be >= 1")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            problems.append(f"checkpoint_every_steps={self.checkpoint_every_steps} must be >= 1")
        if self.keep_checkpoints < 1:
            problems.append(f"keep_checkpoints={self.keep_checkpoints} must be >= 1")
        if not self.stages:
            problems.append("stages must list at least one stage")
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            problems.append(f"stage names must be unique, got {names}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def total_epochs(self) -> int:
        return sum(stage.epochs for stage in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=0.01", "stages.0.epochs=2"]`` → a nested dict; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} is not key=value (e.g. optim.lr=0.01).")
        key, raw = item.split("=", 1)
        tree[key.strip()] = yaml.safe_load(raw)
    return tree


def _apply(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = data
    for part, following in zip(parts[:-1], parts[1:]):
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


def _model_problems(model: ModelConfig) -> list[str]:
    """Unknown presets and backbones, caught before any data is read."""
    from ..backbones import UnknownBackboneError, check_backbone_name
    from ..registry import get_preset

    problems = []
    try:
        get_preset(model.name)
    except ValueError as error:
        problems.append(f"model.name: {error}")
    backbone = model.overrides.get("backbone")
    if backbone is not None:
        try:
            check_backbone_name(str(backbone))
        except UnknownBackboneError as error:
            problems.append(f"model.overrides.backbone: {error}")
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
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of config sections.")
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
        problems += _model_problems(model)
    if problems:
        where = f" in {path}" if path else ""
        raise ConfigError(f"{len(problems)} problem(s){where}:\n  - " + "\n  - ".join(problems))
    return config
