"""Figures from scores: top-k accuracy and the seen / new / harmonic-mean split of generalised zero-shot.

One implementation of each, used by evaluation, selection, calibration, the ``top_k_accuracy``
metric module and the benchmarks, so that a figure means the same wherever it is reported.
"""

from __future__ import annotations

from typing import Any

import torch


def top_k_accuracy(scores: Any, labels: Any, k: int) -> float:
    """Fraction of images whose label is among the ``k`` highest scores (``k`` capped at the vocabulary's size).

    Ties are broken by ``torch.topk`` (the lowest class index first), the same way ``argmax`` breaks them.
    """
    scores, labels = torch.as_tensor(scores), torch.as_tensor(labels)
    if len(labels) == 0:
        return 0.0
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return float((top == labels[:, None]).any(1).float().mean())


def harmonic_mean(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def seen_unseen_accuracy(predictions: torch.Tensor, labels: torch.Tensor, seen_columns: torch.Tensor) -> dict[str, Any]:
    """Accuracy on images of trained classes, on images of new classes, and their harmonic mean.

    Args:
        predictions: each image's predicted class, an index into the vocabulary.
        labels: each image's true class, an index into the vocabulary.
        seen_columns: boolean mask of the vocabulary's trained classes.
    """
    predictions, labels, seen_columns = predictions.cpu(), labels.cpu(), seen_columns.cpu().bool()
    correct = (predictions == labels).float()
    is_seen_image = seen_columns[labels]
    seen = float(correct[is_seen_image].mean()) if is_seen_image.any() else 0.0
    unseen = float(correct[~is_seen_image].mean()) if (~is_seen_image).any() else 0.0
    return {
        "seen_accuracy": seen,
        "unseen_accuracy": unseen,
        "harmonic_mean": harmonic_mean(seen, unseen),
        "seen_images": int(is_seen_image.sum()),
        "unseen_images": int((~is_seen_image).sum()),
    }


__all__ = ["harmonic_mean", "seen_unseen_accuracy", "top_k_accuracy"]
