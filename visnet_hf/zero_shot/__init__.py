"""Scoring class names a VSENet never trained on: parts with one job each, which the model calls once.

* :mod:`.vocabulary`: the :class:`Vocabulary` value, and :func:`build_vocabulary`, which embeds names
  with a text encoder (never the model).
* :mod:`.pipeline_labels`: the zero-shot pipeline's sentences read back as class names.
* :mod:`.scorer`: :class:`ZeroShotScorer`, the one call: ConSE, visual prototypes, the offset.
* :mod:`.conse`, :mod:`.prototypes`: the terms it adds; :mod:`.calibration`: the generalised zero-shot
  offset, fitted by :func:`fit_offset` alone.
* :mod:`.few_shot`: names given with a few photos (``set_classes(names, examples=...)``): the photos' term
  the scorer adds, and the photos read into an :class:`ExampleSet`.
"""

from .calibration import apply_offset, best_offset, fit_offset, gzsl_accuracy
from .conse import conse_logits
from .pipeline_labels import PIPELINE_TEMPLATE, labels_from_prompts
from .prototypes import VisualPrototypes, borrowing_logits, gloss_similarity
from .scorer import ZeroShotScorer
from .vocabulary import ExampleSet, TextEncoderLike, Vocabulary, build_vocabulary, gloss_matrix

__all__ = [
    "PIPELINE_TEMPLATE",
    "ExampleSet",
    "TextEncoderLike",
    "VisualPrototypes",
    "Vocabulary",
    "ZeroShotScorer",
    "apply_offset",
    "best_offset",
    "borrowing_logits",
    "build_vocabulary",
    "conse_logits",
    "fit_offset",
    "gloss_matrix",
    "gloss_similarity",
    "gzsl_accuracy",
    "labels_from_prompts",
]
