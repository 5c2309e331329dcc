"""Spatial position: predictions consistent under shifts and crops, or activation kept in a region."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from visnet_hf.constraints import Constraint

from ._common import consistency, unwrap


class SpatialPosition(Constraint):
    """Three modes.

    * ``shift``: ``KL(p(x) || p(roll(x, shift)))``, predictions invariant to a translation of ``shift`` pixels.
    * ``crop``: ``KL(p(x) || p(zoom(x)))``, the central ``crop`` fraction resized back to full size.
    * ``region``: ``1 - (activation mass inside region) / (total mass)`` of the backbone's final
      feature map, ``region = [top, left, bottom, right]`` as fractions of its height and width.
    """

    uses_images = True

    @dataclass(frozen=True)
    class Params:
        mode: Literal["shift", "crop", "region"] = "shift"
        shift: int = 4
        crop: float = 0.75
        region: list[float] = (0.25, 0.25, 0.75, 0.75)

        def __post_init__(self):
            if not 0 < self.crop <= 1:
                raise ValueError(f"crop={self.crop} must lie in (0, 1]")
            top, left, bottom, right = self.region
            if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
                raise ValueError(
                    f"region={list(self.region)} must be [top, left, bottom, right] fractions, top<bottom, left<right"
                )

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        params = self.params
        if params.mode == "region":
            return self._outside_mass(outputs.last_hidden_state)
        pixel_values = batch["pixel_values"]
        if params.mode == "shift":
            moved = torch.roll(pixel_values, shifts=(params.shift, params.shift), dims=(2, 3))
        else:
            height, width = pixel_values.shape[-2:]
            crop_h, crop_w = max(1, round(height * params.crop)), max(1, round(width * params.crop))
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            window = pixel_values[..., top : top + crop_h, left : left + crop_w]
            moved = F.interpolate(window, size=(height, width), mode="bilinear", align_corners=False)
        return consistency(outputs.logits, unwrap(model)(pixel_values=moved).logits)

    def _outside_mass(self, feature_map: torch.Tensor) -> torch.Tensor:
        if feature_map is None or feature_map.ndim != 4:
            raise ValueError("spatial_position mode='region' needs a (B, C, H, W) feature map (a CNN backbone).")
        mass = feature_map.float().abs().sum(1)  # (B, H, W)
        height, width = mass.shape[-2:]
        top, left, bottom, right = self.params.region
        rows = slice(int(top * height), max(int(top * height) + 1, round(bottom * height)))
        cols = slice(int(left * width), max(int(left * width) + 1, round(right * width)))
        inside = mass[:, rows, cols].sum((1, 2))
        return (1 - inside / mass.sum((1, 2)).clamp_min(1e-12)).mean()
