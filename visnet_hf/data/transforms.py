"""Train and eval transforms from the backbone's data config and the augmentation config."""

from __future__ import annotations

from typing import Any, Callable

import timm.data
import torch
from torchvision import transforms as T

from ..training.config import AugmentConfig

_INTERPOLATION = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}


def build_transforms(data_config: dict[str, Any], augment: AugmentConfig) -> tuple[Callable, Callable]:
    """``(train, eval)`` transforms: PIL image → normalised tensor of the backbone's input size.

    Eval is timm's eval transform (what the saved image processor reproduces). Train is timm's
    ``create_transform(is_training=True, **augment.timm)`` when ``augment.timm`` is set, else the
    seed's recipe: resize to the input size, random crop with padding, horizontal flip, normalise.
    """
    eval_transform = timm.data.create_transform(**data_config)
    if augment.timm is not None:
        return timm.data.create_transform(**data_config, is_training=True, **augment.timm), eval_transform
    size = tuple(data_config["input_size"][1:])
    steps = [T.Resize(size, interpolation=_INTERPOLATION.get(data_config.get("interpolation"), T.InterpolationMode.BILINEAR))]
    if augment.random_crop_padding:
        steps.append(T.RandomCrop(size, padding=augment.random_crop_padding))
    if augment.hflip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])]
    return T.Compose(steps), eval_transform


def with_transform(dataset, transform: Callable):
    """Attach ``transform`` lazily: batches come out as ``pixel_values`` and ``labels``."""

    def apply(batch: dict[str, list]) -> dict[str, Any]:
        return {
            "pixel_values": [transform(image.convert("RGB")) for image in batch["image"]],
            "labels": batch["label"],
        }

    return dataset.with_transform(apply)


def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([e["labels"] for e in examples], dtype=torch.long),
    }
