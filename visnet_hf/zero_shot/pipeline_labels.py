"""Reading ``pipeline("zero-shot-image-classification")``'s sentences back as class names.

The pipeline hands the model one tokenized sentence per candidate label,
``hypothesis_template.format(label)``, and never the labels. :func:`labels_from_prompts` reads them
back so that the pipeline ranks the labels exactly as ``set_classes`` + ``forward`` does:

* sentences of the pipeline's default template (``"This is a photo of {}."``) give back the labels,
  to be embedded with the model's own templates, as ``model.set_classes(labels)``;
* sentences of another template that holds a trained name give back the labels and that template,
  as ``model.set_classes(labels, templates=[hypothesis_template])``;
* otherwise each sentence is one class text, embedded as it is, as
  ``model.set_classes(sentences, templates="{}")``.

A label that reads back as a trained name (after the tokenizer's normalisation: case, accents,
spacing) is that trained name.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch

from ..errors import ConfigError

# transformers' ZeroShotImageClassificationPipeline formats each candidate label with this template
# unless given another; a VSENet reads it as "use the model's own templates".
PIPELINE_TEMPLATE = "This is a photo of {}."
_MARK = "visnetlabel"  # a lowercase word every tokenizer round-trips, standing in for the label


def labels_from_prompts(
    tokenizer: Any, input_ids: torch.Tensor, trained_names: Sequence[str]
) -> tuple[list[str], list[str] | None]:
    """``(names, templates)``: the class names the sentences stand for, and the templates to embed them
    with (``None``: the model's own).

    Raises:
        ConfigError: a label given twice (the pipeline's ``candidate_labels`` repeating a class), an empty label, or
            ``candidate_labels`` given as one string (which the pipeline reads one character at a time).
    """
    sentences = [text.strip() for text in tokenizer.batch_decode(input_ids, skip_special_tokens=True)]
    _check_pipeline_labels(tokenizer, sentences)
    trained = _canonical_names(tokenizer, tuple(trained_names))
    templates: list[str] = [PIPELINE_TEMPLATE]
    templates += [sentence.replace(name, "{}", 1) for sentence in sentences for name in trained if name and name in sentence]
    repeated: list[str] = []
    for template in dict.fromkeys(templates):
        labels = _labels(tokenizer, sentences, template)
        if labels is not None:
            names = [trained.get(label, label) for label in labels]
            if len(set(names)) == len(names):
                return names, (None if template == PIPELINE_TEMPLATE else [template])
            repeated = repeated or sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"The candidate labels name {repeated} more than once (as the model's tokenizer reads them); give each class once."
        )
    return [trained.get(s, s) for s in sentences], ["{}"]


def _check_pipeline_labels(tokenizer: Any, sentences: list[str]) -> None:
    """Refuse what the pipeline's default template shows to be a mistake: an empty label, or labels of one character
    each among which a letter comes again, a space or a comma (``candidate_labels="cat, dog"``: the pipeline formats a
    sentence per character)."""
    prefix, suffix = _canonical(tokenizer, PIPELINE_TEMPLATE.replace("{}", _MARK)).split(_MARK, 1)
    labels = []
    for sentence in sentences:
        if not (sentence.startswith(prefix.rstrip()) and sentence.endswith(suffix)):
            return  # another template: its sentences are read as they are
        labels.append(sentence[len(prefix.rstrip()) : len(sentence) - len(suffix)].strip())
    one_string = len(set(labels)) < len(labels) or "" in labels or "," in labels  # a letter again, a space, a comma
    if len(labels) > 2 and all(len(label) <= 1 for label in labels) and one_string:
        names = [name.strip() for name in "".join(labels).split(",") if name.strip()]
        raise ConfigError(
            f"The candidate labels are single characters ({labels[:8]}...): candidate_labels was given as one string, "
            f"which the pipeline reads a character at a time. Give a list: candidate_labels={names}."
        )
    if "" in labels:
        raise ConfigError("A candidate label is empty; give each class its name.")


@lru_cache(maxsize=16)
def _canonical_names(tokenizer: Any, names: tuple[str, ...]) -> dict[str, str]:
    """Each name as the tokenizer reads it back -> the name (once per tokenizer and vocabulary, not per call)."""
    return {_canonical(tokenizer, name): name for name in names}


def _canonical(tokenizer: Any, text: str) -> str:
    """``text`` as the tokenizer reads it back (lower case for an uncased one, its own spacing)."""
    return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]).strip()


def _labels(tokenizer: Any, sentences: list[str], template: str) -> list[str] | None:
    """Each sentence's label if every sentence is ``template`` around a non-empty label, else ``None``."""
    if template.count("{}") != 1:
        return None
    prefix, suffix = _canonical(tokenizer, template.replace("{}", _MARK)).split(_MARK, 1)
    labels = []
    for sentence in sentences:
        if len(sentence) <= len(prefix) + len(suffix) or not (sentence.startswith(prefix) and sentence.endswith(suffix)):
            return None
        labels.append(sentence[len(prefix) : len(sentence) - len(suffix)].strip())
    return labels if all(labels) else None


__all__ = ["PIPELINE_TEMPLATE", "labels_from_prompts"]
