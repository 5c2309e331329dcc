"""Watching the loss without stalling the device: running sums and the non-finite check.

On a GPU, reading a tensor on the host (``float(x)``, ``x.item()``, ``if x:``) waits for every
queued kernel. The training step queues its work and moves on; these helpers keep their state on
the device and read it only when a number is needed: when logging, at an evaluation, at a
checkpoint, or (only with ``on_nonfinite: skip``) when a step must be dropped on every process.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ..errors import VisnetError


class NonFiniteLossError(VisnetError, FloatingPointError):
    """The loss or one of its terms turned NaN or infinite; the message names them and the step."""


class LossMeter:
    """Running sums of the loss and its terms, on the device: adding costs no host sync, reading costs one."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count: torch.Tensor | None = None

    def add(self, terms: dict[str, torch.Tensor], keep: torch.Tensor | None = None) -> None:
        """Add one micro-batch's terms; ``keep`` (a boolean tensor) leaves a skipped batch out."""
        for name, value in terms.items():
            value = value.detach().float()
            if keep is not None:
                value = torch.where(keep, value, torch.zeros_like(value))
            self.sums[name] = value if name not in self.sums else self.sums[name] + value
        some = next(iter(terms.values()))
        counted = keep.float() if keep is not None else torch.ones((), device=some.device)
        self.count = counted if self.count is None else self.count + counted

    def means(self) -> dict[str, float]:
        """The mean of each term over the batches added (one host read for all of them)."""
        if self.count is None:
            return {}
        values = torch.stack([*self.sums.values(), self.count]).tolist()
        count = max(values[-1], 1.0)
        return {name: value / count for name, value in zip(self.sums, values)}

    def reset(self) -> None:
        self.sums, self.count = {}, None

    def state_dict(self) -> dict[str, Any]:
        if self.count is None:
            return {}
        values = torch.stack([*self.sums.values(), self.count]).tolist()
        return {"sums": dict(zip(self.sums, values)), "count": values[-1]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.reset()
        if state:
            self.sums = {name: torch.tensor(value, device=device) for name, value in state["sums"].items()}
            self.count = torch.tensor(state["count"], device=device)


class NonFiniteGuard:
    """Finds NaN and infinite losses, and keeps every process's decision the same.

    * ``stop``: the first non-finite step and its terms are recorded on the device; :meth:`check`
      (every ``log_every_steps``, and before each evaluation and checkpoint) reads them, once for
      all processes, and raises naming the step and every term. No host sync per step; nothing
      non-finite is ever saved.
    * ``skip``: an optimizer step whose micro-batches had a non-finite loss on any process is
      dropped on all of them (:meth:`skip_update`: one reduction and one host read per optimizer
      step, only in this mode). Every process still runs backward on every micro-batch, so the
      gradient all-reduces stay paired and nothing hangs.
    """

    def __init__(self, mode: Literal["stop", "skip"], accelerator) -> None:
        self.mode = mode
        self.accelerator = accelerator
        device = accelerator.device
        self._group_finite = torch.ones((), dtype=torch.bool, device=device)
        self._step = torch.zeros((), dtype=torch.long, device=device)
        self._first_step = torch.full((), -1, dtype=torch.long, device=device)
        self._first_terms: dict[str, torch.Tensor] = {}
        self._first_present: dict[str, torch.Tensor] = {}  # which terms the first non-finite step had
        self._false = torch.zeros((), dtype=torch.bool, device=device)
        self._nan = torch.full((), float("nan"), device=device)

    def observe(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """Record one micro-batch's loss at optimizer step ``step``; returns whether it is finite (a device tensor)."""
        finite = torch.isfinite(loss.detach())
        if self.mode == "skip":
            self._group_finite &= finite
            return finite
        self._step.fill_(step)  # a kernel argument, not a host-to-device copy: no sync
        first = ~finite & (self._first_step < 0)
        self._first_step = torch.where(first, self._step, self._first_step)
        for name, value in terms.items():
            recorded = self._first_terms.get(name, self._nan)
            self._first_terms[name] = torch.where(first, value.detach().float(), recorded)
            self._first_present[name] = first | self._first_present.get(name, self._false)
        return finite

    def skip_update(self) -> bool:
        """At an optimizer step: whether any process saw a non-finite loss since the last one (``skip`` mode)."""
        if self.mode != "skip":
            return False
        bad = (~self._group_finite).float()
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        self._group_finite.fill_(True)
        return bool(bad > 0)

    def check(self) -> None:
        """Raise :class:`NonFiniteLossError` if any process recorded a non-finite loss (``stop`` mode)."""
        if self.mode != "stop":
            return
        seen = (self._first_step >= 0).float()
        if self.accelerator.num_processes > 1:
            seen = self.accelerator.reduce(seen.clone(), reduction="sum")
        if not bool(seen > 0):
            return
        step = int(self._first_step)
        advice = " Lower the learning rate or the weights, or set on_nonfinite: skip."
        if step < 0:
            raise NonFiniteLossError(
                f"Non-finite loss on another process (this is process {self.accelerator.process_index})." + advice
            )
        names = list(self._first_terms)
        read = torch.stack([*self._first_terms.values(), *(p.float() for p in self._first_present.values())]).tolist()
        values = {name: value for name, value, present in zip(names, read, read[len(names) :]) if present}
        listed = ", ".join(f"{name}={value:.4g}" for name, value in values.items())
        bad = [name for name, value in values.items() if not torch.isfinite(torch.tensor(value))]
        raise NonFiniteLossError(f"Non-finite loss at step {step}: {listed}; non-finite term(s): {bad}." + advice)
