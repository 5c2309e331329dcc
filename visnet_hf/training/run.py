"""What a training run holds and where it is: the objects :mod:`.setup` builds and :mod:`.loop` drives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..constraints import SoftTuning
from ..data import Splits
from .config import StageConfig, TrainConfig
from .monitoring import LossMeter, NonFiniteGuard
from .steps import RunPlan, StepCounter


@dataclass
class TrainerState:
    """Where a run is and what it has seen; saved (as JSON) in every checkpoint for ``--resume``."""

    counter: StepCounter = field(default_factory=StepCounter)
    best_accuracy: float = -1.0
    skipped_steps: int = 0
    bad_images: list[str] = field(default_factory=list)  # unreadable images skipped (on_bad_image: skip)
    epoch_losses: dict[str, Any] = field(default_factory=dict)  # the epoch's running sums, at the checkpoint
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainerState:
        return cls(**{**state, "counter": StepCounter(**state["counter"])})


@dataclass
class Run:
    """Everything a training run holds, built once by :func:`setup`."""

    config: TrainConfig
    accelerator: Accelerator
    splits: Splits | None  # None for a run that brought its own loaders (assemble)
    model: torch.nn.Module  # prepared (possibly wrapped for DDP)
    optimizer: Any
    scheduler: Any
    train_dataset: torch.utils.data.Dataset  # map-style, or iterable when streaming
    train_loader: DataLoader
    eval_loader: DataLoader
    soft_tuning: list[SoftTuning]  # one per stage
    ema: Any
    plan: RunPlan
    guard: NonFiniteGuard
    state: TrainerState = field(default_factory=TrainerState)
    epoch_losses: LossMeter = field(default_factory=LossMeter)
    window_losses: LossMeter = field(default_factory=LossMeter)  # since the last log line
    last_eval: dict[str, Any] = field(default_factory=dict)
    last_eval_step: int = -1
    wise_ft_start: StateSnapshot | None = None  # the weights at the end of config.wise_ft.stage
    memory_format: torch.memory_format | None = None  # channels_last for the model and its batches
    mixup: Any = None  # timm's Mixup of the training batches (config.mixup)
    epoch_started: float = 0.0
    eval_seconds: float = 0.0  # spent evaluating in this epoch
    # A VSENet whose backbone trains: training images its feature statistics are fitted again from before each export.
    statistics_images: Any = None
    statistics_step: int = -1  # the step they were last fitted at

    @property
    def counter(self) -> StepCounter:
        return self.state.counter

    @property
    def inner(self) -> torch.nn.Module:
        """The model itself, unwrapped."""
        return self.accelerator.unwrap_model(self.model)

    @property
    def eval_model(self) -> torch.nn.Module:
        """What is evaluated and exported: the EMA weights when kept, else the model."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def stage(self) -> StageConfig:
        """The current stage (the last one once the run has finished)."""
        return self.config.stages[min(self.counter.stage, len(self.config.stages) - 1)]

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def finished(self) -> bool:
        return self.counter.finished(self.plan)


class StateSnapshot:
    """A copy of a model's weights, checkpointed with the run (``register_for_checkpointing``)."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}

    def take(self, model: torch.nn.Module) -> None:
        self.state = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = dict(state["state"])
