"""Mixup and CutMix of training batches (timm's ``Mixup``): mixed images, soft targets for the loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .config import MixupConfig


def build_mixup(config: MixupConfig, num_classes: int) -> Any:
    """timm's ``Mixup`` for ``num_classes``, giving soft targets without smoothing (the model's own
    ``label_smoothing`` applies in its loss, soft targets or not)."""
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=config.mixup_alpha,
        cutmix_alpha=config.cutmix_alpha,
        cutmix_minmax=config.cutmix_minmax,
        prob=config.prob,
        switch_prob=config.switch_prob,
        mode=config.mode,
        label_smoothing=0.0,
        num_classes=num_classes,
    )


def mix(mixup: Any, batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(what the model reads, what the constraints read)``: the batch with its images mixed (each with the
    batch's reverse) and ``labels`` the soft targets; and the same with each image's dominant class as its label.

    timm pairs images two by two, so an odd batch's last image stays as it is, with its one-hot target.
    """
    images, labels = batch["pixel_values"], batch["labels"]
    soft = F.one_hot(labels, mixup.num_classes).to(torch.float32)
    even = len(images) - len(images) % 2
    if even:
        images = images.clone()
        images[:even], soft[:even] = mixup(images[:even], labels[:even])
    mixed = {**batch, "pixel_values": images, "labels": soft}
    return mixed, {**mixed, "labels": soft.argmax(-1)}
