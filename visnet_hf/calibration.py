"""Calibrated stacking (Chao et al. 2016) for generalised zero-shot classification.

A model that trained on some classes scores them higher than new ones, so in a vocabulary that
mixes both nearly every image goes to a trained class. Subtracting an offset from the trained
classes' scores trades seen-class accuracy for new-class accuracy; the offset that maximises their
harmonic mean is fitted on held-out images (of the new classes, or of pseudo-unseen classes held out
of training: see :mod:`visnet_hf.selection`). Everything here is a pure function of scores.
"""

from __future__ import annotations

import torch

from .scores import harmonic_mean, seen_unseen_accuracy


def apply_offset(scores: torch.Tensor, seen_columns: torch.Tensor, offset: float) -> torch.Tensor:
    """``scores`` with ``offset`` subtracted from the columns of trained classes (a boolean mask)."""
    if offset == 0 or not bool(seen_columns.any()):
        return scores
    return scores - offset * seen_columns.to(device=scores.device, dtype=scores.dtype)


def gzsl_accuracy(scores: torch.Tensor, labels: torch.Tensor, seen_columns: torch.Tensor, offset: float) -> dict[str, float]:
    """Seen, new and harmonic-mean accuracy with ``offset`` subtracted from the ``seen_columns``' scores."""
    return seen_unseen_accuracy(apply_offset(scores, seen_columns, offset).argmax(1), labels, seen_columns)


def calibrated_stacking(
    scores: torch.Tensor, labels: torch.Tensor, seen_columns: torch.Tensor, max_candidates: int = 2048
) -> dict[str, float]:
    """The offset on the trained classes' scores that maximises the harmonic mean, and the figures there.

    Args:
        scores: ``(images, vocabulary)`` scores of a mixed vocabulary.
        labels: each image's class, an index into the vocabulary.
        seen_columns: boolean mask of the vocabulary's trained classes.

    Returns:
        ``{"calibration", "seen_accuracy", "unseen_accuracy", "harmonic_mean", "images", ...}``.

    Raises:
        ValueError: the images are not of both trained and new classes.
    """
    scores, labels, seen_columns = scores.float().cpu(), labels.cpu(), seen_columns.cpu().bool()
    is_seen_image = seen_columns[labels]
    if is_seen_image.all() or not is_seen_image.any():
        raise ValueError("Calibration needs held-out images of both trained and new classes.")
    # Decisions only change where the offset equals a gap between the best seen and best unseen score.
    gaps = scores[:, seen_columns].max(1).values - scores[:, ~seen_columns].max(1).values
    candidates = torch.cat([torch.zeros(1), gaps.sort().values + 1e-6])
    if len(candidates) > max_candidates:
        candidates = candidates[torch.linspace(0, len(candidates) - 1, max_candidates).long()]
    best: dict[str, float] = {"harmonic_mean": -1.0}
    for offset in candidates.tolist():
        figures = gzsl_accuracy(scores, labels, seen_columns, offset)
        if figures["harmonic_mean"] > best["harmonic_mean"]:
            best = {"calibration": offset, **figures}
    return {**best, "images": len(labels)}


__all__ = ["apply_offset", "calibrated_stacking", "gzsl_accuracy", "harmonic_mean"]
