"""The seed's semantic matrices (section 4.1), as plain functions of tensors.

They are used by VSENet's stage-1 objective, by its public accessors and by Soft Tuning
constraints, so they live here rather than inside one model.

Notation: ``C`` is the class-embedding matrix (one row per class), ``z`` a batch of projected,
unit-normalised visual vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._torch import upcast


def class_centres(class_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean-centred class centres ``c_i - mean_j c_j``: removes the direction all names share."""
    return class_embeddings - class_embeddings.mean(dim=0, keepdim=True)


def class_distances(class_embeddings: torch.Tensor) -> torch.Tensor:
    """``D_ij = ||c_i - c_j||^2`` over the mean-centred class centres."""
    centres = class_centres(upcast(class_embeddings))
    return torch.cdist(centres, centres).pow(2)


def class_similarity(class_embeddings: torch.Tensor, gamma: float) -> torch.Tensor:
    """The RBF-softmax similarity ``S_ij = exp(-gamma D_ij) / sum_k exp(-gamma D_kj)``.

    Each column ``S[:, j]`` is a probability distribution over classes: how much class ``j``'s
    images may be confused with each class, judged by the text side alone.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}.")
    return torch.softmax(-gamma * class_distances(class_embeddings), dim=0)


def association(image_embeds: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """The visual-semantic association matrix ``A_ij = cos(z_i, c_j)`` for a batch, shape ``(B, K)``."""
    image_embeds = upcast(image_embeds)
    return F.normalize(image_embeds, dim=-1) @ F.normalize(class_embeddings.to(image_embeds), dim=-1).T
