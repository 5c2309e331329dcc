"""How a run uses its hardware: memory format, compilation, data-loader settings.

None of it changes what is computed, only how fast. Each setting has a default that suits the
device: what pays on a GPU (channels-last convolutions, fused optimizer kernels, pinned memory with
non-blocking copies) is off on the CPU, where what pays depends on the host (BENCHMARKS.md 1b:
channels-last sped up fp32 training on one 2-core host; ask for it with ``model.channels_last: true``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..data.config import DataConfig
from ..errors import ConfigError
from .config import ModelConfig


def use_channels_last(config: ModelConfig, model: nn.Module, device: torch.device) -> bool:
    """``model.channels_last``, or by default: on for a convolutional backbone on CUDA."""
    if config.channels_last is not None:
        return config.channels_last
    convolutions = sum(isinstance(m, nn.Conv2d) for m in model.backbone.modules())
    return device.type == "cuda" and convolutions >= 3  # a ViT's patch embedding alone does not count


def compile_options(config: ModelConfig) -> dict[str, Any] | None:
    """``torch.compile`` keywords from ``model.compile`` or, when it is off, from ``accelerate launch
    --dynamo_backend`` / ``accelerate config``; ``None``: no compilation."""
    from accelerate.utils import TorchDynamoPlugin

    if config.compile:
        options: dict[str, Any] = {"backend": "inductor"}
        if isinstance(config.compile, str):
            options["mode"] = config.compile
        return options
    requested = TorchDynamoPlugin()  # reads what accelerate launch set (ACCELERATE_DYNAMO_*)
    if str(requested.backend.value).lower() == "no":
        return None
    return {key: value for key, value in requested.to_kwargs().items() if value is not None}


def compile_in_place(model: nn.Module, options: dict[str, Any]) -> None:
    """``nn.Module.compile``: the module stays itself, so its state dict keeps its keys (no
    ``_orig_mod.`` prefix) for checkpoints, EMA, constraints and ``save_pretrained``."""
    try:
        model.compile(**options)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ConfigError(f"torch.compile({options}) failed: {error}. Set model.compile: false.") from error


def loader_options(config: DataConfig, device: torch.device) -> dict[str, Any]:
    """``DataLoader`` keywords: pinned memory on CUDA (by default), and the worker settings when there are workers."""
    options: dict[str, Any] = {"num_workers": config.num_workers, "pin_memory": pin_memory(config, device)}
    if config.num_workers > 0:
        options["persistent_workers"] = config.persistent_workers
        if config.prefetch_factor is not None:
            options["prefetch_factor"] = config.prefetch_factor
    return options


def pin_memory(config: DataConfig, device: torch.device) -> bool:
    return config.pin_memory if config.pin_memory is not None else device.type == "cuda"
