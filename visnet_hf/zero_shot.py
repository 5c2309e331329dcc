"""The vocabulary a VSENet scores against, as a value, and the pure functions that score new names.

As open_clip's ``build_zero_shot_classifier(model, tokenizer, classnames, templates)`` does, the
class-embedding matrix is built by a free function and handed to the model, rather than kept as
state the model flips back and forth::

    vocabulary = build_vocabulary(model, ["zebra", "lorry", "cat"], templates="clip7")
    logits = model(pixel_values, vocabulary=vocabulary).logits        # the model is not changed
    model.set_classes(["zebra", "lorry", "cat"])                       # or make it the model's own

A :class:`Vocabulary` knows which of its names the model trained on: while it *is* the trained
vocabulary (same names, same order) both of VSENet's heads take part; otherwise the zero-shot head
scores it (:func:`conse_logits` and the cosine logits) and the generalised zero-shot offset
(:func:`visnet_hf.calibration.apply_offset`) lowers the trained names among the new ones.

:func:`vocabulary_from_prompts` turns the sentences the ``zero-shot-image-classification``
pipeline tokenizes back into class names, so that the pipeline and ``set_classes`` rank alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from .text_encoders import ClassTexts
from .wordnet import fill_descriptions

# transformers' ZeroShotImageClassificationPipeline formats each candidate label with this template
# unless given another; a VSENet reads it as "use the model's own templates" (see vocabulary_from_prompts).
PIPELINE_TEMPLATE = "This is a photo of {}."
_MARK = "visnetlabel"  # a lowercase word every tokenizer round-trips, standing in for the label


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Class names and their embeddings in the text space, and which names the model trained on.

    Args:
        names: the class names, in the order the logits' columns follow.
        embeddings: ``(len(names), embedding_dim)`` unit rows, as the text encoder gave them (uncentred).
        trained: ``(len(names),)`` boolean mask of the names in the model's ``trained_class_names``.
        is_trained_vocabulary: the names are the trained ones in the trained order: both heads apply.
        texts: what was embedded (synonyms, descriptions, templates); ``None`` for given embeddings.
        synsets: the WordNet id of each name where known (``"n01443537"``), for ``prototype_hierarchy``.
    """

    names: tuple[str, ...]
    embeddings: torch.Tensor
    trained: torch.Tensor
    is_trained_vocabulary: bool
    texts: ClassTexts | None = None
    synsets: tuple[str | None, ...] | None = None

    @classmethod
    def of(
        cls,
        names: Sequence[str],
        embeddings: torch.Tensor,
        trained_names: Sequence[str],
        texts: ClassTexts | None = None,
        synsets: Sequence[str | None] | None = None,
    ) -> Vocabulary:
        """A vocabulary of ``names`` for a model that trained on ``trained_names``."""
        names = tuple(names)
        trained_set = set(trained_names)
        return cls(
            names=names,
            embeddings=embeddings,
            trained=torch.tensor([name in trained_set for name in names], dtype=torch.bool),
            is_trained_vocabulary=names == tuple(trained_names),
            texts=texts,
            synsets=tuple(synsets) if synsets is not None else None,
        )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def mixes_trained_and_new(self) -> bool:
        """Whether generalised zero-shot calibration applies: some names trained, some not."""
        return bool(self.trained.any()) and not bool(self.trained.all())


def build_vocabulary(
    model: Any,
    names: Sequence[str],
    descriptions: Sequence[str | Sequence[str] | None] | None = None,
    templates: str | Sequence[str] | None = None,
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    embeddings: torch.Tensor | None = None,
    synsets: Sequence[str | None] | None = None,
) -> Vocabulary:
    """Embed class names with a VSENet's text encoder (its trained tower, if it has one).

    Args:
        model: the VSENet whose text space the names are embedded in.
        names: the class names; may include trained names (generalised zero-shot).
        descriptions: optional per-class descriptions (a string or list of strings per class).
        templates: prompt templates (a list, one template, or a set name: ``clip7``, ``clip80``); default: the model's.
        synonyms: optional other names per class, each put in every template (e.g. WordNet lemmas).
        embeddings: precomputed ``(len(names), embedding_dim)`` embeddings instead of the text encoder.
        synsets: optional WordNet id per class (``"n01443537"``, or None): the sense ``describe_classes``
            describes and ``prototype_hierarchy`` places it at, instead of the one guessed from its name.

    Raises:
        ValueError: ``embeddings`` or ``synsets`` of the wrong length for this model and names.
    """
    if synsets is not None and len(synsets) != len(names):
        raise ValueError(f"{len(synsets)} synsets for {len(names)} class names: give one WordNet id (or None) per name.")
    config = model.config
    texts = vocabulary_texts(config, names, descriptions, templates, synonyms, synsets)
    if embeddings is None:
        embeddings = model.embed_texts(texts)
    if tuple(embeddings.shape) != (len(texts.names), config.embedding_dim):
        raise ValueError(
            f"Class embeddings of shape {tuple(embeddings.shape)} do not fit this model, which expects "
            f"({len(texts.names)}, {config.embedding_dim}): the text encoder must be the one the model was trained "
            f"with ({config.text_encoder!r}) or one with the same width."
        )
    return Vocabulary.of(texts.names, F.normalize(embeddings.float(), dim=-1), config.trained_class_names, texts, synsets)


def vocabulary_texts(
    config: Any,
    names: Sequence[str],
    descriptions: Sequence[str | Sequence[str] | None] | None = None,
    templates: str | Sequence[str] | None = None,
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    synsets: Sequence[str | None] | None = None,
) -> ClassTexts:
    """What a VSENet's text encoder reads for ``names``: its templates (unless ``templates``) and text
    averaging, and for each class given no description, one from ``config.describe_classes`` (of the
    WordNet sense ``synsets`` gives, where it does)."""
    descriptions = fill_descriptions(config.describe_classes, names, descriptions, synonyms, synsets)
    return ClassTexts.build(names, descriptions, templates or config.templates, synonyms=synonyms, average=config.text_average)


def vocabulary_from_prompts(model: Any, tokenizer: Any, input_ids: torch.Tensor) -> Vocabulary:
    """The vocabulary that ``pipeline("zero-shot-image-classification")``'s sentences stand for.

    The pipeline hands the model one tokenized sentence per candidate label,
    ``hypothesis_template.format(label)``, and never the labels. They are read back so that the
    pipeline ranks the labels exactly as ``set_classes`` + ``forward`` does:

    * sentences of the pipeline's default template (``"This is a photo of {}."``) give back the labels,
      embedded with the model's own templates, as ``model.set_classes(labels)``;
    * sentences of another template that holds a trained name give back the labels and that template,
      as ``model.set_classes(labels, templates=[hypothesis_template])``;
    * otherwise each sentence is one class text, embedded as it is, as
      ``model.set_classes(sentences, templates="{}")`` (the same embeddings as the labels in that
      template: no name in them was trained, so the trained names' offset has nothing to act on).

    A label that reads back as a trained name (after the tokenizer's normalisation: case, accents,
    spacing) is that trained name.
    """
    sentences = [text.strip() for text in tokenizer.batch_decode(input_ids, skip_special_tokens=True)]
    trained = _canonical_names(tokenizer, tuple(model.config.trained_class_names))
    templates: list[str] = [PIPELINE_TEMPLATE]
    templates += [sentence.replace(name, "{}", 1) for sentence in sentences for name in trained if name and name in sentence]
    for template in dict.fromkeys(templates):
        labels = _labels(tokenizer, sentences, template)
        if labels is not None:
            names = [trained.get(label, label) for label in labels]
            if len(set(names)) == len(names):
                return build_vocabulary(model, names, templates=None if template == PIPELINE_TEMPLATE else [template])
    return build_vocabulary(model, [trained.get(s, s) for s in sentences], templates="{}")


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


def conse_logits(
    trained_logits: torch.Tensor, trained_embeddings: torch.Tensor, class_embeddings: torch.Tensor, scale: Any, top_k: int
) -> torch.Tensor:
    """ConSE (Norouzi et al., 2014): the prediction over the trained classes, cut to its ``top_k`` most
    probable classes, averages their (unit, centred) text embeddings by probability; that vector's
    scaled cosine to each class embedding scores the image.

    Args:
        trained_logits: ``(B, trained)`` the model's logits over its trained classes.
        trained_embeddings: ``(trained, dim)`` their embeddings, as the model scores them.
        class_embeddings: ``(K, dim)`` the vocabulary's embeddings, as the model scores them.
        scale: the cosine logits' scale (``1 / temperature``).
        top_k: how many trained classes to average.
    """
    probabilities = trained_logits.float().softmax(-1)
    top = probabilities.topk(min(top_k, probabilities.shape[-1]))
    weights = torch.zeros_like(probabilities).scatter(-1, top.indices, top.values)
    conse_embeds = F.normalize(weights @ trained_embeddings.float(), dim=-1)
    return scale * conse_embeds @ class_embeddings.float().T


__all__ = ["PIPELINE_TEMPLATE", "Vocabulary", "build_vocabulary", "conse_logits", "vocabulary_from_prompts", "vocabulary_texts"]
