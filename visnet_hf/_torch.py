"""Small torch helpers shared by the models, the zero-shot parts and the data code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

_HALF = (torch.float16, torch.bfloat16)


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 when it is half precision (softmaxes and sums under autocast), else as it is,
    so that float64 stays float64 (tests compute in float64 to compare exactly on any CPU)."""
    return tensor.float() if tensor.dtype in _HALF else tensor


def scoring_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half precision, else ``dtype``: what statistics held in a model loaded in half precision
    (``from_pretrained(..., dtype=torch.bfloat16)``) are computed in, as :func:`upcast` does for activations."""
    return torch.float32 if dtype in _HALF else dtype


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block, then back in the mode it was in (even after an error)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
