"""Soft Tuning: the configured constraints, their weight schedules, and their terms in the loss."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from ..errors import VisnetError
from .base import Constraint
from .plugins import ConstraintLoadError, create_constraint


@dataclass(frozen=True)
class ConstraintSpec:
    """One constraint as a config names it.

    Args:
        name: the entry-point name.
        weight: the term's weight once fully ramped up.
        params: the constraint's own parameters.
        start: first step (or epoch) at which the term is active.
        stop: step (or epoch) from which it is off again; ``None`` keeps it on.
        warmup: steps (or epochs) of linear ramp from 0 to ``weight`` after ``start``.
        unit: whether ``start``, ``stop`` and ``warmup`` count ``"step"`` or ``"epoch"`` (both 0-based,
            counted from the start of the stage the constraint belongs to).
    """

    name: str
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    start: int = 0
    stop: int | None = None
    warmup: int = 0
    unit: Literal["step", "epoch"] = "step"

    def __post_init__(self) -> None:
        problems = []
        if self.weight < 0:
            problems.append(f"weight={self.weight} must be >= 0")
        if self.start < 0 or self.warmup < 0:
            problems.append("start and warmup must be >= 0")
        if self.stop is not None and self.stop <= self.start:
            problems.append(f"stop={self.stop} must be greater than start={self.start}")
        if self.unit not in ("step", "epoch"):
            problems.append(f"unit={self.unit!r} is not one of ['step', 'epoch']")
        if problems:
            raise ValueError(f"constraint {self.name!r}: " + "; ".join(problems))

    def weight_at(self, step: int, epoch: int) -> float:
        """The weight at a step/epoch of the stage: 0 outside [start, stop), ramped during warmup."""
        now = step if self.unit == "step" else epoch
        if now < self.start or (self.stop is not None and now >= self.stop):
            return 0.0
        if self.warmup:
            return self.weight * min(1.0, (now - self.start + 1) / self.warmup)
        return self.weight


class ConstraintError(VisnetError, RuntimeError):
    """A constraint misbehaved during training (non-scalar result)."""


class SoftTuning:
    """The active constraints of a run. ``state_dict`` / ``load_state_dict`` make it checkpointable
    with ``accelerator.register_for_checkpointing``."""

    def __init__(self, specs: list[ConstraintSpec], constraints: list[Constraint]):
        self.specs = specs
        self.constraints = constraints

    @classmethod
    def build(cls, specs: list[ConstraintSpec], allow: list[str] | None = None, deny: list[str] | None = None) -> SoftTuning:
        """Load every named constraint; report all problems in one error.

        Only the constraints in ``specs`` are imported. ``allow`` (if given) and ``deny`` restrict
        which plugin names a config may use.
        """
        problems, constraints = [], []
        for spec in specs:
            if allow is not None and spec.name not in allow:
                problems.append(f"Constraint {spec.name!r} is not in the allow list {allow}.")
                continue
            if deny and spec.name in deny:
                problems.append(f"Constraint {spec.name!r} is in the deny list.")
                continue
            try:
                constraints.append(create_constraint(spec.name, spec.params))
            except ConstraintLoadError as error:
                problems.append(str(error))
        if problems:
            raise ConstraintLoadError("\n".join(problems))
        return cls(list(specs), constraints)

    def setup(self, model: nn.Module) -> None:
        for constraint in self.constraints:
            constraint.setup(model)

    def terms(
        self, model: nn.Module, batch: Mapping[str, torch.Tensor], outputs: Any, step: int, epoch: int
    ) -> dict[str, torch.Tensor]:
        """Weighted terms in float32, keyed by constraint name; inactive constraints are not called.

        ``step`` and ``epoch`` count from the start of the stage these constraints belong to
        (the run's :class:`~visnet_hf.training.steps.StepCounter` gives them).
        """
        terms = {}
        for spec, constraint in zip(self.specs, self.constraints):
            weight = spec.weight_at(step, epoch)
            if weight == 0.0:
                continue
            value = constraint(model, batch, outputs)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ConstraintError(f"Constraint {spec.name!r} must return one scalar tensor, got {shape} at step {step}.")
            terms[spec.name] = weight * value.float().reshape(())
        return terms

    def state_dict(self) -> dict[str, Any]:
        return {spec.name: constraint.state_dict() for spec, constraint in zip(self.specs, self.constraints)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for spec, constraint in zip(self.specs, self.constraints):
            if spec.name in state:
                constraint.load_state_dict(state[spec.name])
