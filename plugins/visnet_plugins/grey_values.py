"""Predictions stay the same on greyscale versions of the batch (a constraint on grey values)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visnet_hf.constraints import Constraint

from ._common import LUMA, consistency, normalisation, unwrap


def to_greyscale(pixel_values: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Greyscale version of a normalised batch, normalised again."""
    pixels = pixel_values * std + mean
    luma = torch.tensor(LUMA, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    grey = (pixels * luma).sum(1, keepdim=True).expand_as(pixels)
    return (grey - mean) / std


class GreyValues(Constraint):
    """``KL(p(x) || p(grey(x)))``: zero for a model that ignores colour."""

    uses_images = True

    @dataclass(frozen=True)
    class Params:
        pass

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        pixel_values = batch["pixel_values"]
        mean, std = normalisation(model, pixel_values)
        grey_logits = unwrap(model)(pixel_values=to_greyscale(pixel_values, mean, std)).logits
        return consistency(outputs.logits, grey_logits)
