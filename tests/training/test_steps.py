"""The run's one clock: how micro-batches make optimizer steps, and where each stage begins and ends."""

from __future__ import annotations

import pytest

from visnet_hf.training.steps import RunPlan, StagePlan, StepCounter


def test_plan_counts_optimizer_steps_under_accumulation():
    plan = RunPlan.build([StagePlan(epochs=2), StagePlan(epochs=1)], loader_batches=9, accumulation=2)
    assert plan.steps_per_epoch == 5  # 4 full groups and the epoch's last micro-batch alone
    assert plan.stage_steps == (10, 5) and plan.total_steps == 15
    assert [plan.stage_start(i) for i in range(3)] == [0, 10, 15]


def test_plan_with_steps_stages_and_a_cap_per_epoch():
    plan = RunPlan.build([StagePlan(steps=7), StagePlan(epochs=3)], loader_batches=100, accumulation=4, max_steps_per_epoch=5)
    assert plan.batches_per_epoch == 20 and plan.steps_per_epoch == 5
    assert plan.stage_steps == (7, 15)


def test_a_stream_needs_stages_in_steps():
    assert RunPlan.build([StagePlan(steps=50)], loader_batches=None).steps_per_epoch is None
    with pytest.raises(ValueError, match=r"stages\[0\] is counted in epochs, but the data is a stream"):
        RunPlan.build([StagePlan(epochs=1)], loader_batches=None)


def drive(plan: RunPlan, counter: StepCounter | None = None, until: int | None = None):
    """Run the counter as the loop does, until the run ends (or optimizer step ``until``);
    record (step, stage, step_in_stage, epoch) at each optimizer step."""
    counter, seen = counter or StepCounter(), []
    counter.skip_empty_stages(plan)
    while not counter.finished(plan):
        while not counter.epoch_done(plan):
            if counter.step == until:
                return seen, counter
            counter.batch += 1
            synced = counter.batch % plan.accumulation == 0 or counter.batch == plan.batches_per_epoch
            if synced:
                seen.append((counter.step, counter.stage, counter.step_in_stage(plan), counter.epoch))
                counter.step += 1
        counter.end_epoch(plan)
    return seen, counter


def test_counter_walks_stages_epochs_and_steps():
    plan = RunPlan.build([StagePlan(epochs=0), StagePlan(epochs=2), StagePlan(steps=3)], loader_batches=4, accumulation=2)
    seen, _ = drive(plan)
    assert [s[0] for s in seen] == list(range(7))
    # The empty first stage is passed over; stage 1 has 2 epochs of 2 steps; stage 2 ends after 3 steps,
    # in the middle of its second epoch.
    assert [(stage, in_stage, epoch) for _, stage, in_stage, epoch in seen] == [
        (1, 0, 0),
        (1, 1, 0),
        (1, 2, 1),
        (1, 3, 1),
        (2, 0, 0),
        (2, 1, 0),
        (2, 2, 1),
    ]


def test_a_counter_restored_mid_epoch_continues_where_it_stopped():
    from dataclasses import asdict

    plan = RunPlan.build([StagePlan(epochs=2), StagePlan(steps=4)], loader_batches=5, accumulation=2)
    whole, _ = drive(plan)
    before, stopped = drive(plan, until=4)
    assert stopped.batch == 2 and stopped.epoch == 1  # in the middle of the second epoch
    after, _ = drive(plan, StepCounter(**asdict(stopped)))
    assert before + after == whole
