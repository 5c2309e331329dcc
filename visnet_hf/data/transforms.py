"""Train and eval transforms from the backbone's data config and the augmentation config."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from typing import Any

import datasets
import timm.data
import torch
from torchvision import transforms as T

from .config import AugmentConfig
from .images import BadImageError, decode, decode_tensor

_INTERPOLATION = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}


def build_transforms(data_config: dict[str, Any], augment: AugmentConfig) -> tuple[Callable, Callable]:
    """``(train, eval)`` transforms: image → normalised tensor of the backbone's input size.

    Eval is timm's eval transform on PIL images (what the saved image processor reproduces). Train is
    timm's ``create_transform(is_training=True, **augment.timm)`` when ``augment.timm`` is set, else
    the seed's recipe as a :class:`RecipeTransform`: resize to the input size, random crop with
    padding, horizontal flip, normalise.
    """
    eval_transform = timm.data.create_transform(**data_config)
    if augment.timm is not None:
        return timm.data.create_transform(**data_config, is_training=True, **augment.timm), eval_transform
    train_transform = RecipeTransform(
        size=tuple(data_config["input_size"][1:]),
        padding=augment.random_crop_padding,
        hflip=augment.hflip,
        mean=data_config["mean"],
        std=data_config["std"],
        interpolation=data_config.get("interpolation", "bilinear"),
    )
    return train_transform, eval_transform


class RecipeTransform:
    """The seed's training augmentation on ``uint8`` image tensors, drawing from a given generator.

    The same as ``Resize(size) → RandomCrop(size, padding) → RandomHorizontalFlip() → ToTensor() →
    Normalize(mean, std)`` of torchvision (crop offsets uniform in ``[0, 2 * padding]``, zero fill),
    but on the decoded tensor in a handful of tensor operations: the per-image cost of the PIL
    route (about 150 µs at 32x32) would otherwise be a quarter of a ResNet-18 training step on
    two cores. Images of another size are resized with antialiasing first.
    """

    def __init__(self, size: tuple[int, int], padding: int, hflip: bool, mean, std, interpolation: str = "bilinear"):
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.padding = padding
        self.hflip = hflip
        self.interpolation = _INTERPOLATION.get(interpolation, T.InterpolationMode.BILINEAR)
        std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.scale = 1.0 / (255.0 * std)  # normalise as one multiply-subtract: (x / 255 - mean) / std
        self.shift = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1) / std

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if tuple(image.shape[-2:]) != self.size:
            image = T.functional.resize(image, list(self.size), interpolation=self.interpolation, antialias=True)
        # One draw for all three choices (each draw costs as much as the crop itself).
        top, left, coin = torch.randint(0, 2**31 - 1, (3,), generator=generator).tolist()
        if self.padding:
            top, left = top % (2 * self.padding + 1), left % (2 * self.padding + 1)
            padded = torch.nn.functional.pad(image, (self.padding,) * 4)
            image = padded[:, top : top + self.size[0], left : left + self.size[1]]
        if self.hflip and coin % 2:
            image = image.flip(-1)
        return image.float().mul_(self.scale).sub_(self.shift)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, padding={self.padding}, hflip={self.hflip}, "
            f"interpolation={self.interpolation.value})"
        )


class TransformedDataset(torch.utils.data.Dataset):
    """A ``datasets.Dataset`` of ``image`` / ``label`` as ``pixel_values`` / ``labels`` for a DataLoader.

    Random augmentation is a pure function of ``(seed, epoch, index)``: each example is transformed
    under its own seed, with the global torch and Python RNGs left untouched. A resumed run (even
    mid-epoch, after a DataLoader that had prefetched past the checkpoint) therefore sees exactly
    the images an uninterrupted run sees, whatever the number of workers or processes.

    Unreadable images stop the run naming the image (``on_bad_image="stop"``), or are skipped and
    reported in the batch's ``bad_images`` (``"skip"``): in training an unreadable example is
    replaced by the next readable one, so every process keeps the same batch size; in evaluation
    (``substitute=False``) it is dropped.
    """

    def __init__(
        self,
        dataset,
        transform: Callable,
        seed: int = 0,
        on_bad_image: str = "stop",
        substitute: bool = True,
        split: str = "train",
        with_indices: bool = False,
    ):
        self.dataset = dataset.cast_column("image", datasets.Image(decode=False))
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.on_bad_image = on_bad_image
        self.substitute = substitute
        self.split = split
        self.with_indices = with_indices  # each example says its row (``indices`` in the batch)
        self._tensor_route = isinstance(transform, RecipeTransform)  # uint8 tensors and an explicit generator
        # The recipe resizes to its size whatever the photo's: a large JPEG is decoded at a reduced scale for it.
        self._decode = partial(decode_tensor, fits=transform.size) if isinstance(transform, RecipeTransform) else decode
        self._generator = torch.Generator()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def _describe(self, index: int, value: Any) -> str:
        path = value.get("path") if isinstance(value, dict) else None
        return f"Image {index} of the {self.split} split" + (f" ({path})" if path else "")

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._example(int(index), self.dataset[int(index)])

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A whole batch with one Arrow read (the DataLoader's batched fetch): much cheaper than row by row."""
        rows = self.dataset[list(indices)]
        return [
            self._example(int(i), {"image": image, "label": label})
            for i, image, label in zip(indices, rows["image"], rows["label"])
        ]

    def _example(self, index: int, row: dict[str, Any]) -> dict[str, Any]:
        bad: list[str] = []
        for attempt in range(len(self.dataset)):
            position = (index + attempt) % len(self.dataset)
            if attempt:
                row = self.dataset[position]
            try:
                image = self._decode(row["image"], self._describe(position, row["image"]))
            except BadImageError as error:
                if self.on_bad_image == "stop":
                    raise BadImageError(f"{error}. Fix or remove it, or set data.on_bad_image: skip.") from None
                bad.append(str(error))
                if not self.substitute:
                    return {"bad_images": bad}
                continue
            example = {**self._transformed(image, index), "labels": row["label"], "bad_images": bad}
            if self.with_indices:
                example["index"] = position
            return example
        raise BadImageError(f"No image of the {self.split} split can be decoded; the first error: {bad[0]}")

    def _transformed(self, image, index: int) -> dict[str, Any]:
        example_seed = ((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index) % 2**63
        if self._tensor_route:
            return {"pixel_values": self.transform(image, self._generator.manual_seed(example_seed))}
        # Any other transform draws from the global RNGs: seed them for this example, then put them back.
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone: torch.manual_seed would also queue a CUDA re-seed, which
            # records a stack trace each time and costs more than the whole transform.
            torch.default_generator.manual_seed(example_seed)
            random.seed(example_seed)
            pixel_values = self.transform(image)
        random.setstate(python_state)
        return {"pixel_values": pixel_values}


def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the readable examples; ``bad_images`` lists the unreadable ones met on the way."""
    kept = [e for e in examples if "pixel_values" in e]
    batch: dict[str, Any] = {
        "pixel_values": torch.stack([e["pixel_values"] for e in kept]) if kept else torch.empty(0),
        "labels": torch.tensor([e["labels"] for e in kept], dtype=torch.long),
    }
    if kept and "index" in kept[0]:
        batch["indices"] = torch.tensor([e["index"] for e in kept], dtype=torch.long)
    bad = [message for e in examples for message in e.get("bad_images", [])]
    if bad:
        batch["bad_images"] = bad
    return batch
