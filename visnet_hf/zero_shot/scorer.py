"""How a VSENet scores names it did not train on, in one call.

The model hands the scorer what it computed anyway (the cosine logits of the projected image to each
name, the image's pooled features, its prediction over the trained classes) and the scorer adds, as
its settings (``config.zero_shot_config``) ask:

* ``head``: ``semantic`` keeps the cosine logits; ``conse`` replaces them by ConSE
  (:func:`~visnet_hf.zero_shot.conse.conse_logits`); ``both`` adds the two;
* ``prototype_weight`` times the scaled cosine to each name's visual prototype
  (:mod:`~visnet_hf.zero_shot.prototypes`);
* ``backbone_label_weight`` times ConSE over the backbone's own pretrained labels, each name's own label left out
  (:mod:`~visnet_hf.zero_shot.backbone_labels`), and ``backbone_classifier_weight`` times each name's classifier
  borrowed from that classifier's rows by text similarity;
* for a vocabulary with example photos, the photo weight (``example_weight``; by default the names' scores' own
  weight, :meth:`~visnet_hf.models.vsenet.VSENetZeroShotConfig.photo_weight`) times the square root of each name's number of photos
  times the scaled cosine to their mean in the whitened feature space (:mod:`~visnet_hf.zero_shot.few_shot`);
* minus ``calibration`` on the trained names of a vocabulary that mixes trained and new names
  (calibrated stacking, :mod:`~visnet_hf.zero_shot.calibration`); ``example_calibration`` instead where the
  names carry photos;

and divides the sum by a temperature (``score_temperature``; by default the experts' weights, the photos' counted
half: :meth:`~visnet_hf.models.vsenet.VSENetZeroShotConfig.temperature_for`), so that its softmax reads as a
chance of being right.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError
from .backbone_labels import BackboneLabels
from .calibration import apply_offset
from .conse import conse_logits
from .few_shot import example_logits, typical_photos
from .prototypes import VisualPrototypes, borrowing_logits
from .vocabulary import Vocabulary


class ZeroShotScorer(nn.Module):
    """The zero-shot scoring of a VSENet; holds the trained classes' feature statistics (:class:`VisualPrototypes`:
    what few-shot photos are compared in, and what the prototypes borrow) and, where the model kept it, the
    backbone's pretrained classifier (:class:`BackboneLabels`)."""

    def __init__(self, trained_classes: int, num_features: int, backbone_labels: BackboneLabels | None = None) -> None:
        super().__init__()
        self.prototypes = VisualPrototypes(trained_classes, num_features)
        self.backbone_labels = backbone_labels

    def forward(
        self,
        *,
        semantic_logits: torch.Tensor,
        visual: torch.Tensor,
        trained_logits: torch.Tensor,
        classes: torch.Tensor,
        trained: torch.Tensor,
        scale: torch.Tensor,
        vocabulary: Vocabulary,
        trained_vocabulary: Vocabulary,
        settings: Any,
    ) -> torch.Tensor:
        """``(B, K)`` logits over ``vocabulary``.

        Args:
            semantic_logits: ``(B, K)`` the scaled cosines of the projected images to the names.
            visual: ``(B, num_features)`` the images' pooled features.
            trained_logits: ``(B, trained)`` the model's prediction over its trained classes.
            classes: ``(K, dim)`` the names' embeddings as the model scores them (centred, unit).
            trained: ``(trained, dim)`` the trained classes' embeddings likewise.
            scale: the cosine logits' scale.
            vocabulary: the names scored.
            trained_vocabulary: the classes the model trained on.
            settings: a :class:`~visnet_hf.models.vsenet.VSENetZeroShotConfig`.
        """
        logits = semantic_logits
        if settings.head != "semantic":
            conse = conse_logits(trained_logits, trained, classes, scale, settings.conse_top_k).to(logits.dtype)
            logits = conse if settings.head == "conse" else logits + conse
        if settings.prototype_weight > 0:
            borrowing = borrowing_logits(classes, trained, vocabulary, trained_vocabulary, settings)
            logits = logits + settings.prototype_weight * self.prototypes(visual, borrowing, scale).to(logits.dtype)
        if settings.reads_backbone_classifier():
            if self.backbone_labels is None:
                raise ConfigError(
                    f"zero_shot_config.backbone_label_weight={settings.backbone_label_weight} and "
                    f"backbone_classifier_weight={settings.backbone_classifier_weight}, but this model kept no backbone "
                    "classifier (only a model created with either above 0 keeps one): set both to 0."
                )
            own = self.backbone_labels.own_labels(vocabulary.names, vocabulary.synsets)
            if settings.backbone_label_weight > 0:
                labels = self.backbone_labels(visual, classes, own, scale, settings.conse_top_k)
                logits = logits + settings.backbone_label_weight * labels.to(logits.dtype)
            if settings.backbone_classifier_weight > 0:
                borrowed = self.backbone_labels.borrowed(
                    visual, classes, own, scale, vocabulary.synsets, settings.backbone_classifier_hierarchy
                )
                logits = logits + settings.backbone_classifier_weight * borrowed.to(logits.dtype)
        photo_weight = settings.photo_weight()
        if vocabulary.examples is not None and photo_weight > 0:
            row = {name: index for index, name in enumerate(trained_vocabulary.names)}
            trained_rows = [row.get(name) for name in vocabulary.names]  # settled in Python, as the vocabulary is
            photos = example_logits(
                visual,
                vocabulary.examples,
                trained_rows,
                self.prototypes,
                settings.example_shrinkage,
                scale,
                settings.example_threshold,
            )
            logits = logits + photo_weight * photos.to(logits.dtype)
        if vocabulary.mixes_trained_and_new:
            logits = apply_offset(logits, vocabulary.trained, settings.offset(with_photos=vocabulary.examples is not None))
        return logits / settings.temperature_for(typical_photos(vocabulary.examples))  # by 1.0: the sum, to the bit


__all__ = ["ZeroShotScorer"]
