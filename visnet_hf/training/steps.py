"""The run's one clock: optimizer steps, the stage and its first step, the epoch, the batch.

Everything that depends on "when" in a run reads the same :class:`StepCounter`: the learning-rate
schedule (optimizer steps since the start), Soft Tuning schedules (steps and epochs since the start
of the stage), logging, evaluation and checkpoints (optimizer steps), and resume (micro-batches done
in the epoch). :class:`RunPlan` says how long each stage is, in optimizer steps, before the first
step is taken.

A micro-batch is one batch from the data loader; with ``gradient_accumulation_steps: k`` an
optimizer step takes ``k`` of them (fewer at the end of an epoch that does not divide by ``k``).
A step whose update was skipped (``on_nonfinite: skip``) is still a step: the data, the schedule and
a resume stay where an uninterrupted run would be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class StagePlan:
    """One stage's length: ``epochs`` passes over the data, or ``steps`` optimizer steps."""

    epochs: int | None = None
    steps: int | None = None


@dataclass(frozen=True)
class RunPlan:
    """How micro-batches make optimizer steps, and how many optimizer steps each stage takes.

    Args:
        accumulation: micro-batches per optimizer step.
        batches_per_epoch: micro-batches in one epoch (``None``: a stream of unknown length).
        stage_steps: optimizer steps of each stage.
    """

    accumulation: int
    batches_per_epoch: int | None
    stage_steps: tuple[int, ...]

    @classmethod
    def build(
        cls,
        stages: Sequence[StagePlan],
        loader_batches: int | None,
        accumulation: int = 1,
        max_steps_per_epoch: int | None = None,
    ) -> RunPlan:
        """The plan for ``stages`` over a loader of ``loader_batches`` micro-batches per epoch.

        ``max_steps_per_epoch`` cuts every epoch to that many optimizer steps.

        Raises:
            ValueError: a stage counted in epochs over data of unknown length.
        """
        batches = loader_batches
        if batches is not None and max_steps_per_epoch:
            batches = min(batches, max_steps_per_epoch * accumulation)
        steps_per_epoch = None if batches is None else math.ceil(batches / accumulation)
        stage_steps = []
        for index, stage in enumerate(stages):
            if stage.steps is not None:
                stage_steps.append(stage.steps)
            elif steps_per_epoch is None:
                raise ConfigError(
                    f"stages[{index}] is counted in epochs, but the data is a stream of unknown length; "
                    "give the stage `steps: N` instead"
                )
            else:
                stage_steps.append((stage.epochs or 0) * steps_per_epoch)
        return cls(accumulation=accumulation, batches_per_epoch=batches, stage_steps=tuple(stage_steps))

    @property
    def steps_per_epoch(self) -> int | None:
        """Optimizer steps in one full epoch (``None`` for a stream)."""
        return None if self.batches_per_epoch is None else math.ceil(self.batches_per_epoch / self.accumulation)

    @property
    def total_steps(self) -> int:
        return sum(self.stage_steps)

    def stage_start(self, stage: int) -> int:
        """The optimizer step at which ``stage`` begins."""
        return sum(self.stage_steps[:stage])


@dataclass
class StepCounter:
    """Where a run is. Saved in every checkpoint; restored by ``--resume``.

    Attributes:
        step: optimizer steps since the start of the run (skipped updates included).
        stage: index of the current stage.
        epoch: epochs completed within the current stage.
        batch: micro-batches consumed in the current epoch (what a resume skips).
        data_epoch: epochs begun since the start of the run: seeds the shuffle and the augmentation.
    """

    step: int = 0
    stage: int = 0
    epoch: int = 0
    batch: int = 0
    data_epoch: int = 0

    def step_in_stage(self, plan: RunPlan) -> int:
        """Optimizer steps since the current stage began (what constraint schedules count)."""
        return self.step - plan.stage_start(self.stage)

    def stage_done(self, plan: RunPlan) -> bool:
        return self.step_in_stage(plan) >= plan.stage_steps[self.stage]

    def finished(self, plan: RunPlan) -> bool:
        return self.stage >= len(plan.stage_steps)

    def epoch_done(self, plan: RunPlan) -> bool:
        """The epoch ends with its last batch, or with its stage."""
        full = plan.batches_per_epoch is not None and self.batch >= plan.batches_per_epoch
        return full or self.stage_done(plan)

    def end_epoch(self, plan: RunPlan) -> None:
        """Close the epoch; move to the next stage when this one has taken all its steps."""
        self.epoch += 1
        self.data_epoch += 1
        self.batch = 0
        if self.stage_done(plan):
            self.next_stage(plan)

    def next_stage(self, plan: RunPlan) -> None:
        """Enter the next stage that has steps to take."""
        self.stage += 1
        self.epoch = 0
        self.skip_empty_stages(plan)

    def skip_empty_stages(self, plan: RunPlan) -> None:
        """Pass over stages without steps (``epochs: 0``, as the seed's "initialise" step may be)."""
        while not self.finished(plan) and plan.stage_steps[self.stage] == 0:
            self.stage += 1
