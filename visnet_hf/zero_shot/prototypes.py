"""Visual prototypes: a new name scored also by the image's cosine to the trained classes' feature centroids,
averaged by how alike the name is to each trained class.

A name the model never trained on has no images, but it resembles classes that have: "zebra" the horse,
"lorry" the truck. Its prototype borrows their centroids of the frozen backbone's (standardised) pooled
features, mixed by the softmax of :func:`borrowing_logits` over the trained classes: its text similarity
to each (sharpened), plus, when asked, WordNet's similarity of the two senses (Wu and Palmer) and the
similarity of their WordNet definitions. The centroids are fitted once, from the training images
(:meth:`VisualPrototypes.fit`; the trainer does it before the first step) and saved with the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._torch import scoring_dtype
from ..wordnet import hierarchy_similarity
from .vocabulary import Vocabulary


class VisualPrototypes(nn.Module):
    """The trained classes' standardised feature centroids (buffers, saved with the model)."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    centroids: torch.Tensor
    counts: torch.Tensor
    within_covariance: torch.Tensor

    def __init__(self, classes: int, features: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        self.register_buffer("centroids", torch.zeros(classes, features))  # unit rows, zero for a class without images
        self.register_buffer("counts", torch.zeros(classes))  # training images per trained class
        # The training images' within-class covariance of the standardised features (what few-shot scoring whitens by).
        self.register_buffer("within_covariance", torch.zeros(features, features))
        self._whitening: tuple[tuple, torch.Tensor | None] | None = None  # (shrinkage and which covariance, matrix)
        self._fitted: bool | None = None  # the last eager answer of `fitted`

    @torch.no_grad()
    def reset(self) -> None:
        """Unfitted. transformers' initialisers leave alone what a model's file held, so a folder saved without
        (some of) these buffers loads them as never fitted, and the others as saved."""
        from transformers import initialization

        for buffer in (self.feature_mean, self.centroids, self.counts, self.within_covariance):
            initialization.zeros_(buffer)
        initialization.ones_(self.feature_std)

    @property
    def fitted(self) -> bool:
        """Whether the statistics were fitted (some trained class has images). While the model is being exported
        (``torch.export``, ``visnet export``) it is the answer of the last eager call: a graph cannot branch on a
        buffer, and the exporter scores the model eagerly first."""
        if self._fitted is None or not torch.compiler.is_compiling():
            self._fitted = bool((self.counts > 0).any())
        return self._fitted

    @torch.no_grad()
    def fit(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
        """Centroids of pooled features, standardised by the mean and standard deviation of all of them.

        Args:
            batches: ``(features, labels)`` pairs: the backbone's pooled features of training images, as the
                model scores them (eval mode, with its test-time views), and labels indexing the trained classes.

        Returns:
            The number of images.

        Raises:
            ValueError: fewer than two images.
        """
        classes, width = self.counts.numel(), self.feature_mean.numel()
        # Summed in float64 on the CPU (which every device can copy to): exact over millions of images.
        sums = torch.zeros(classes, width, dtype=torch.float64)
        counts = torch.zeros(classes, dtype=torch.float64)
        outer = torch.zeros(width, width, dtype=torch.float64)
        for features, labels in batches:
            features, labels = features.double().cpu(), torch.as_tensor(labels).cpu()
            sums.index_add_(0, labels, features)
            counts += torch.bincount(labels, minlength=classes).double()
            outer += features.T @ features
        images = counts.sum()
        if images < 2:
            raise ValueError(f"Visual prototypes need at least 2 training images, got {int(images)}.")
        mean = sums.sum(0) / images
        std = (outer.diagonal() / images - mean.pow(2)).clamp(min=0).sqrt() + 1e-6
        centroids = (sums / counts.clamp(min=1)[:, None] - mean) / std
        # sum_i x x^T - sum_c n_c m_c m_c^T, over the images: the within-class scatter, then standardised
        between = (sums / counts.clamp(min=1)[:, None].sqrt()).T @ (sums / counts.clamp(min=1)[:, None].sqrt())
        within = (outer - between) / images / std[:, None] / std[None, :]
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)
        self.centroids.copy_(F.normalize(centroids, dim=-1) * (counts > 0)[:, None])
        self.counts.copy_(counts)
        self.within_covariance.copy_(within)
        self._fitted = None  # asked again at the next call
        return int(images)

    def forward(self, visual: torch.Tensor, borrowing: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
        """``(B, K)`` ``scale`` times the cosines of the images' standardised features to each name's prototype, the
        centroids mixed by the softmax of ``borrowing`` (``(K, trained)`` logits, :func:`borrowing_logits`).

        Raises:
            ValueError: the centroids were never fitted.
        """
        if not (torch.compiler.is_compiling() or self.fitted):  # checked in Python; a compiled graph has no room for it
            raise ValueError(
                "prototype_weight > 0 but the model holds no class centroids: call model.fit_prototypes(batches of its "
                "training images) (the trainer does), or set prototype_weight to 0."
            )
        features = self.standardised(visual)
        return (scale * features) @ self.borrowed(borrowing).T

    def standardised(self, visual: torch.Tensor) -> torch.Tensor:
        """``(B, num_features)`` pooled features standardised by the training images' statistics, unit length."""
        return self.whitened(visual, shrinkage=1.0)

    def whitened(self, visual: torch.Tensor, shrinkage: float) -> torch.Tensor:
        """``(B, num_features)`` pooled features standardised, then whitened by the training images' within-class
        covariance shrunk toward a multiple of the identity (``shrinkage`` 1: no whitening), unit length: a space
        where a class's images spread alike in every direction, so a few images' mean is a fair prototype.
        Standardised only, for a model fitted before the covariance was kept."""
        dtype = scoring_dtype(self.centroids.dtype)
        standardised = (visual.to(dtype) - self.feature_mean.to(dtype)) / self.feature_std.to(dtype)
        whitening = self.whitening(shrinkage)
        return F.normalize(standardised if whitening is None else standardised @ whitening, dim=-1)

    def whitening(self, shrinkage: float) -> torch.Tensor | None:
        """``C^{-1/2}`` for ``C = (1 - shrinkage) * within-class covariance + shrinkage * its mean variance * I``
        (computed once per shrinkage and kept); ``None`` without a fitted covariance or at shrinkage 1."""
        if shrinkage >= 1:
            return None
        if torch.compiler.is_compiling() and self._whitening is not None and self._whitening[0][0] == shrinkage:
            return self._whitening[1]  # compiled or exported: the last eager call's (a graph cannot branch on a buffer)
        covariance = self.within_covariance
        version = (shrinkage, covariance.data_ptr(), covariance._version, covariance.dtype)
        if not bool(covariance.diagonal().gt(0).any()):
            self._whitening = (version, None)
            return None
        if self._whitening is None or self._whitening[0] != version:
            matrix = covariance.double()
            shrunk = (1 - shrinkage) * matrix + shrinkage * matrix.diagonal().mean() * torch.eye(
                len(matrix), dtype=torch.float64, device=matrix.device
            )
            values, vectors = torch.linalg.eigh(shrunk)
            self._whitening = (version, (vectors / values.clamp(min=1e-12).sqrt()).to(scoring_dtype(covariance.dtype)))
        return self._whitening[1]

    def borrowed(self, borrowing: torch.Tensor) -> torch.Tensor:
        """``(K, num_features)`` each name's prototype: the centroids mixed by the softmax of ``borrowing``, unit length."""
        dtype = scoring_dtype(self.centroids.dtype)
        weights = borrowing.to(dtype).masked_fill(self.counts == 0, float("-inf")).softmax(-1)
        return F.normalize(weights @ self.centroids.to(dtype), dim=-1)


def borrowing_logits(
    classes: torch.Tensor, trained: torch.Tensor, vocabulary: Vocabulary, trained_vocabulary: Vocabulary, settings: Any
) -> torch.Tensor:
    """``(K, trained)``: how much each name borrows from each trained class's centroid, before the softmax.

    ``prototype_sharpness`` times the text similarity of the two (``classes`` and ``trained``: their
    embeddings as the model scores them), plus ``prototype_hierarchy`` times the Wu-Palmer similarity of
    their WordNet senses (a sense WordNet does not know is alike to nothing), plus ``prototype_glosses``
    times the similarity of their WordNet definitions (:func:`gloss_similarity`).
    """
    logits = settings.prototype_sharpness * classes @ trained.T
    if settings.prototype_hierarchy > 0:
        rows = vocabulary.synsets or (None,) * len(vocabulary)
        hierarchy = hierarchy_similarity(tuple(rows), tuple(trained_vocabulary.synsets or (None,) * len(trained_vocabulary)))
        logits = logits + settings.prototype_hierarchy * hierarchy.to(logits)
    if settings.prototype_glosses > 0:
        if vocabulary.glosses is None or trained_vocabulary.glosses is None:
            raise ValueError(
                "prototype_glosses > 0 needs the WordNet glosses embedded with the vocabulary; build it with "
                "model.vocabulary_for(...) or model.set_classes(...), which embed them."
            )
        similarity = gloss_similarity(vocabulary.glosses.to(logits), trained_vocabulary.glosses.to(logits))
        logits = logits + settings.prototype_glosses * similarity
    return logits


def gloss_similarity(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Cosine similarities of gloss embeddings centred on the columns' (the trained classes') mean of the known
    ones; a zero row (a sense WordNet has no gloss for) stays zero."""
    known = (columns.norm(dim=-1, keepdim=True) > 0).to(columns.dtype)  # masks, not indexing: a graph that exports
    mean = (columns * known).sum(0) / known.sum().clamp(min=1)

    def centred(part: torch.Tensor) -> torch.Tensor:
        return F.normalize((part - mean) * (part.norm(dim=-1, keepdim=True) > 0), dim=-1)

    return centred(rows) @ centred(columns).T


__all__ = ["VisualPrototypes", "borrowing_logits", "gloss_similarity"]
