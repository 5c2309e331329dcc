"""Optimizers, learning-rate schedules and freezing."""

from __future__ import annotations

import bisect
import math
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError
from .config import OptimConfig


def freeze(model: nn.Module, config: OptimConfig) -> None:
    """``backbone``: a linear probe (only the heads train); ``partial``: only ``trainable_prefixes`` train.

    Freezing only ever turns training off: what the model itself keeps locked (the locked layers of a
    LiT text tower) stays locked.
    """
    if config.freeze == "none":
        return
    for name, param in model.named_parameters():
        if config.freeze == "backbone":
            param.requires_grad_(param.requires_grad and not name.startswith("backbone."))
        else:
            param.requires_grad_(param.requires_grad and name.startswith(tuple(config.trainable_prefixes)))
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"optim.trainable_prefixes={config.trainable_prefixes} match no parameter; nothing would train.")


def train_mode(model: nn.Module) -> None:
    """``model.train()``, except that batch-norm layers whose parameters are all frozen keep their
    running statistics (eval mode). A frozen backbone then computes the same features while the
    heads train as at evaluation, as a linear probe should; its statistics never drift."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            parameters = list(module.parameters(recurse=False))
            if parameters and not any(p.requires_grad for p in parameters):
                module.eval()


def build_optimizer(model: nn.Module, config: OptimConfig, device_type: str = "cpu") -> torch.optim.Optimizer:
    """SGD or AdamW; the backbone and a trainable text tower may have their own learning rates; no
    weight decay on biases and norms."""
    part_lr = {"backbone.": config.backbone_lr, "text_tower.": config.text_lr}
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = next((prefix for prefix in part_lr if name.startswith(prefix)), "")
        groups.setdefault((part, param.ndim <= 1), []).append(param)
    param_groups = []
    for (part, no_decay), params in groups.items():
        lr = part_lr.get(part) if part_lr.get(part) is not None else config.lr
        param_groups.append({"params": params, "lr": lr, "weight_decay": 0.0 if no_decay else config.weight_decay})
    kernels: dict[str, Any] = _implementation(config.implementation, device_type)
    if config.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0, **kernels)
    return torch.optim.AdamW(param_groups, lr=config.lr, **kernels)


def _implementation(choice: str, device_type: str) -> dict[str, bool]:
    """torch's keyword for the optimizer kernels (``auto``: fused on CUDA, where one kernel for all
    parameters saves hundreds of launches per step; torch's own default elsewhere)."""
    if choice == "auto":
        return {"fused": True} if device_type == "cuda" else {}
    return {"fused": {"fused": True}, "foreach": {"foreach": True}, "for": {"foreach": False}}[choice]


def build_schedule(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int, steps_per_epoch: int | None
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine to zero over the whole run, or step decay at epoch ``milestones``.

    Counted in optimizer steps (the run's :class:`~visnet_hf.training.steps.StepCounter`), so
    gradient accumulation changes neither the curve nor the warm-up.

    Raises:
        ConfigError: epoch milestones over a stream of unknown length.
    """
    total = max(1, total_steps)
    if config.milestones and steps_per_epoch is None:
        raise ConfigError("optim.milestones count epochs, which a stream of unknown length does not have.")
    milestones = sorted(m * (steps_per_epoch or 0) for m in config.milestones)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.scheduler == "cosine":
            progress = min(1.0, (step - config.warmup_steps) / max(1, total - config.warmup_steps))
            return 0.5 * (1 + math.cos(math.pi * progress))
        if config.scheduler == "multistep":
            return config.decay ** bisect.bisect_right(milestones, step)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
