"""Train and eval transforms from the backbone's data config and the augmentation config."""

from __future__ import annotations

import random
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


class TransformedDataset(torch.utils.data.Dataset):
    """A ``datasets.Dataset`` of ``image`` / ``label`` as ``pixel_values`` / ``labels`` for a DataLoader.

    Random augmentation is a pure function of ``(seed, epoch, index)``: each example is transformed
    under its own seed, with the global torch and Python RNGs left untouched. A resumed run (even
    mid-epoch, after a DataLoader that had prefetched past the checkpoint) therefore sees exactly
    the images an uninterrupted run sees, whatever the number of workers or processes.
    """

    def __init__(self, dataset, transform: Callable, seed: int = 0):
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.dataset[int(index)]
        example_seed = ((self.seed * 1_000_003 + self.epoch) * 1_000_003 + int(index)) % 2**63
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(example_seed)
            random.seed(example_seed)
            pixel_values = self.transform(example["image"].convert("RGB"))
        random.setstate(python_state)
        return {"pixel_values": pixel_values, "labels": example["label"]}


def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([e["labels"] for e in examples], dtype=torch.long),
    }
