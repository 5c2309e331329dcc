"""Penalise over-confident predictions: ``max(0, threshold - H(p))``, the entropy below a threshold.

Pereyra et al., "Regularizing Neural Networks by Penalizing Confident Output Distributions", 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visnet_hf.constraints import Constraint


class ConfidencePenalty(Constraint):
    @dataclass(frozen=True)
    class Params:
        threshold: float = 0.5  # nats of entropy under which a prediction counts as over-confident

        def __post_init__(self):
            if self.threshold < 0:
                raise ValueError(f"threshold={self.threshold} must be >= 0")

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        log_p = outputs.logits.float().log_softmax(-1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        return torch.relu(self.params.threshold - entropy).mean()
