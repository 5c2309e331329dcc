"""ConSE (Norouzi et al., 2014): a new name scored through the model's prediction over its trained classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._torch import upcast


def conse_logits(
    trained_logits: torch.Tensor,
    trained_embeddings: torch.Tensor,
    class_embeddings: torch.Tensor,
    scale: torch.Tensor,
    top_k: int,
) -> torch.Tensor:
    """The prediction over the trained classes, cut to its ``top_k`` most probable classes, averages their
    (unit, centred) text embeddings by probability; that vector's scaled cosine to each class embedding
    scores the image.

    Args:
        trained_logits: ``(B, trained)`` the model's logits over its trained classes.
        trained_embeddings: ``(trained, dim)`` their embeddings, as the model scores them.
        class_embeddings: ``(K, dim)`` the vocabulary's embeddings, as the model scores them.
        scale: the cosine logits' scale (``1 / temperature``).
        top_k: how many trained classes to average.
    """
    probabilities = upcast(trained_logits).softmax(-1)
    top = probabilities.topk(min(top_k, probabilities.shape[-1]))
    weights = torch.zeros_like(probabilities).scatter(-1, top.indices, top.values)
    conse_embeds = F.normalize(weights @ trained_embeddings.to(weights.dtype), dim=-1)
    return scale * conse_embeds @ class_embeddings.to(conse_embeds.dtype).T


__all__ = ["conse_logits"]
