"""Penalise predictions that drift from the true label (the seed's penalty term)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from visnet_hf.constraints import Constraint


class LabelDeviation(Constraint):
    """``probability``: mean probability mass off the true label, ``1 - p_y``.
    ``margin``: hinge on the gap between the true label's logit and the best other logit."""

    @dataclass(frozen=True)
    class Params:
        mode: Literal["probability", "margin"] = "probability"
        margin: float = 1.0

        def __post_init__(self):
            if self.margin < 0:
                raise ValueError(f"margin={self.margin} must be >= 0")

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        logits, labels = outputs.logits.float(), batch["labels"]
        if self.params.mode == "probability":
            return (1 - logits.softmax(-1).gather(1, labels[:, None])).mean()
        true = logits.gather(1, labels[:, None]).squeeze(1)
        others = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
        return torch.relu(self.params.margin - (true - others)).mean()
