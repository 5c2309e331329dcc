"""Helpers the built-in constraints share."""

from __future__ import annotations

import torch
import torch.nn as nn

# ITU-R BT.601 luma weights, as PIL's convert("L") uses.
LUMA = (0.299, 0.587, 0.114)


def unwrap(model: nn.Module) -> nn.Module:
    """The model itself, under a DistributedDataParallel (or similar) wrapper."""
    return getattr(model, "module", model)


def normalisation(model: nn.Module, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The backbone's mean and std as ``(1, 3, 1, 1)`` tensors, to move between pixels and inputs."""
    data_config = unwrap(model).config.data_config
    mean = torch.tensor(data_config["mean"], device=like.device, dtype=like.dtype).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], device=like.device, dtype=like.dtype).view(1, -1, 1, 1)
    return mean, std


def consistency(reference_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``KL(p_reference || p)`` averaged over the batch, in float32; the reference is not trained."""
    reference = reference_logits.detach().float().log_softmax(-1)
    return torch.nn.functional.kl_div(logits.float().log_softmax(-1), reference, log_target=True, reduction="batchmean")
