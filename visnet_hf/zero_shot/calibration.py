"""Calibrated stacking (Chao et al. 2016) for generalised zero-shot classification.

A model that trained on some classes scores them higher than new ones, so in a vocabulary that mixes
both nearly every image goes to a trained class. Subtracting an offset from the trained classes' scores
trades seen-class accuracy for new-class accuracy; the offset that maximises their harmonic mean is
fitted on held-out images (of the new classes, or of pseudo-unseen classes held out of training: see
:mod:`visnet_hf.training.selection`). :func:`fit_offset` is the one place it is fitted: by ``visnet
calibrate``, by the selection protocol and by a user's own code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._batches import inputs_and_labels
from ..scores import harmonic_mean, seen_unseen_accuracy


def apply_offset(scores: torch.Tensor, seen_columns: torch.Tensor, offset: float) -> torch.Tensor:
    """``scores`` with ``offset`` subtracted from the columns of trained classes (a boolean mask)."""
    if offset == 0:
        return scores
    return scores - offset * seen_columns.to(device=scores.device, dtype=scores.dtype)


def gzsl_accuracy(scores: torch.Tensor, labels: torch.Tensor, seen_columns: torch.Tensor, offset: float) -> dict[str, float]:
    """Seen, new and harmonic-mean accuracy with ``offset`` subtracted from the ``seen_columns``' scores."""
    return seen_unseen_accuracy(apply_offset(scores, seen_columns, offset).argmax(1), labels, seen_columns)


def best_offset(
    scores: torch.Tensor, labels: torch.Tensor, seen_columns: torch.Tensor, max_candidates: int = 2048
) -> dict[str, float]:
    """The offset on the trained classes' scores that maximises the harmonic mean, and the figures there.

    Args:
        scores: ``(images, vocabulary)`` scores of a mixed vocabulary, without an offset.
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


@torch.no_grad()
def fit_offset(model: Any, batches: Iterable[Any], vocabulary: Any = None, zero_shot_config: Any = None) -> dict[str, float]:
    """Fit the generalised zero-shot offset of a VSENet on held-out images of a mixed vocabulary.

    The model scores every image without an offset; :func:`best_offset` then picks the one that maximises
    the harmonic mean of seen- and new-class accuracy. The model is not changed: set
    ``model.config.zero_shot_config.calibration`` to the result's ``"calibration"`` to keep it (or
    ``example_calibration``, for a vocabulary whose names carry photos).

    Args:
        model: a VSENet.
        batches: dicts with ``pixel_values`` (or cached ``image_features``) and ``labels``, or
            ``(pixel_values, labels)`` pairs; labels index the vocabulary's names.
        vocabulary: the mixed vocabulary (default: the model's own).
        zero_shot_config: the zero-shot settings to score with (default: the model's), their offset aside.

    Returns:
        ``{"calibration", "seen_accuracy", "unseen_accuracy", "harmonic_mean", "images", ...}``.

    Raises:
        ValueError: a vocabulary that does not mix trained and new names, or images not of both.
    """
    vocabulary = model.vocabulary if vocabulary is None else vocabulary
    if not vocabulary.mixes_trained_and_new:
        raise ValueError(
            "Fitting the offset needs a vocabulary that mixes trained and new class names, e.g. "
            "model.vocabulary_for(trained_names + new_names)."
        )
    settings = (model.config.zero_shot_config if zero_shot_config is None else zero_shot_config).without_offset()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores, labels = [], []
    try:
        for batch in batches:
            inputs, batch_labels = inputs_and_labels(batch)
            if len(batch_labels) == 0:
                continue
            inputs = {key: value.to(device) for key, value in inputs.items()}
            scores.append(model(**inputs, vocabulary=vocabulary, zero_shot_config=settings).logits.float().cpu())
            labels.append(torch.as_tensor(batch_labels).cpu())
    finally:
        model.train(was_training)
    return best_offset(torch.cat(scores), torch.cat(labels), vocabulary.trained)


__all__ = ["apply_offset", "best_offset", "fit_offset", "gzsl_accuracy", "harmonic_mean"]
