"""The shapes a batch of images comes in, read one way everywhere."""

from __future__ import annotations

from typing import Any

import torch


def inputs_and_labels(batch: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """A ``(pixel_values, labels)`` pair, or a dict with ``pixel_values`` (or cached ``image_features``) and
    ``labels``, as the model's inputs and the labels."""
    if isinstance(batch, dict):
        return {k: batch[k] for k in ("pixel_values", "image_features") if k in batch}, batch["labels"]
    pixel_values, labels = batch
    return {"pixel_values": pixel_values}, labels
