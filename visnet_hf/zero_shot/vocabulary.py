"""The vocabulary a VSENet scores against, as a value, and the builder that embeds one with a text encoder.

As open_clip's ``build_zero_shot_classifier`` does, the class-embedding matrix is built by a free
function and handed to the model, rather than kept as state the model flips back and forth. The
builder takes a text encoder, never the model::

    vocabulary = model.vocabulary_for(["zebra", "lorry", "cat"])      # the model's encoder and text settings
    logits = model(pixel_values, vocabulary=vocabulary).logits        # the model is not changed
    model.set_classes(["zebra", "lorry", "cat"])                       # or make it the model's own

A :class:`Vocabulary` knows which of its names the model trained on: while it *is* the trained
vocabulary (same names, same order) both of VSENet's heads take part; otherwise the zero-shot scorer
(:class:`~visnet_hf.zero_shot.scorer.ZeroShotScorer`) scores it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ..text.prompts import ClassTexts
from ..wordnet import fill_descriptions, glosses, senses_or_none


class TextEncoderLike(Protocol):
    """What the builder needs of a text encoder (a :class:`~visnet_hf.text.TextEncoder`, or a model's own tower)."""

    def embed_classes(self, texts: ClassTexts) -> torch.Tensor: ...

    def encode(self, texts: Sequence[str]) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class ExampleSet:
    """The example photos of a vocabulary's names, reduced to what scoring needs.

    Args:
        sums: ``(len(names), num_features)`` the sum of each name's examples' pooled features (as the model
            scores images: its test-time views averaged); zero rows for names without examples.
        counts: ``(len(names),)`` how many examples each name has.
        photos: pooled features of photos and their names' rows, ``((N, num_features), (N,))``, as
            :func:`~visnet_hf.zero_shot.few_shot.embed_examples` read them (up to 16 of each name's): what a check of
            the names against the photos reads; not saved, and not kept by :meth:`plus` or :meth:`for_names`.
    """

    sums: torch.Tensor
    counts: torch.Tensor
    photos: tuple[torch.Tensor, torch.Tensor] | None = None

    def plus(self, other: ExampleSet | None) -> ExampleSet:
        """Both sets' photos together (sets over the same names, in the same order)."""
        if other is None:
            return self
        return ExampleSet(self.sums + other.sums.to(self.sums), self.counts + other.counts.to(self.counts))

    def for_names(self, own: Sequence[str], names: Sequence[str]) -> ExampleSet | None:
        """The examples of ``names`` among those of ``own`` (this set's names, in order); zero rows for the
        others; ``None`` when none of ``names`` has examples here."""
        row = {name: index for index, name in enumerate(own)}
        rows = [row.get(name) for name in names]
        if not any(index is not None and self.counts[index] > 0 for index in rows):
            return None
        sums, counts = torch.zeros(len(names), self.sums.shape[1]).to(self.sums), torch.zeros(len(names))
        for target, index in enumerate(rows):
            if index is not None:
                sums[target], counts[target] = self.sums[index], self.counts[index]
        return ExampleSet(sums, counts)


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Class names embedded in a text space, and what else scoring them needs.

    Args:
        names: the class names, in the order the logits' columns follow.
        embeddings: ``(len(names), dim)`` unit rows, as the text encoder gave them (uncentred).
        trained: ``(len(names),)`` boolean mask of the names the model trained on.
        is_trained_vocabulary: the names are the trained ones in the trained order: both heads apply.
        texts: what was embedded (synonyms, descriptions, templates); ``None`` for given embeddings.
        synsets: the WordNet sense of each name (``"n01443537"``): the one given where WordNet knows it,
            else the one guessed from the name and its synonyms; None where WordNet does not know the name.
        glosses: ``(len(names), dim)`` each sense's WordNet definition embedded by the same encoder (zero
            rows where there is none), for ``prototype_glosses``; ``None`` when not asked for.
        examples: the names' example photos, reduced (:class:`ExampleSet`), for
            few-shot scoring; ``None`` for names alone.
    """

    names: tuple[str, ...]
    embeddings: torch.Tensor
    trained: torch.Tensor
    is_trained_vocabulary: bool
    texts: ClassTexts | None = None
    synsets: tuple[str | None, ...] | None = None
    glosses: torch.Tensor | None = None
    mixes_trained_and_new: bool = False  # some names trained, some not: the generalised zero-shot offset applies
    examples: ExampleSet | None = None

    @classmethod
    def of(cls, names: Sequence[str], embeddings: torch.Tensor, trained_names: Sequence[str], **parts: Any) -> Vocabulary:
        """A vocabulary of ``names`` for a model that trained on ``trained_names`` (``parts``: the other fields).

        What the model decides by (which names were trained, whether they mix with new ones) is settled here, in
        Python, so that scoring inspects no tensor: the same code runs eagerly, compiled and exported."""
        trained_set = set(trained_names)
        flags = [name in trained_set for name in names]
        return cls(
            names=tuple(names),
            embeddings=embeddings,
            trained=torch.tensor(flags, dtype=torch.bool),
            is_trained_vocabulary=tuple(names) == tuple(trained_names),
            mixes_trained_and_new=any(flags) and not all(flags),
            **parts,
        )

    def __len__(self) -> int:
        return len(self.names)

    def select(self, names: Sequence[str], trained_names: Sequence[str]) -> Vocabulary:
        """This vocabulary's rows for ``names`` (each one of its names), in that order, for a model that trained on
        ``trained_names``: nothing is embedded again. Its photos are not taken (:meth:`ExampleSet.for_names`)."""
        index = {name: row for row, name in enumerate(self.names)}
        rows = [index[name] for name in names]
        picked = torch.as_tensor(rows, dtype=torch.long)
        return Vocabulary.of(
            names,
            self.embeddings[picked],
            trained_names,
            texts=self.texts.select(rows) if self.texts is not None else None,
            synsets=tuple(self.synsets[row] for row in rows) if self.synsets is not None else None,
            glosses=self.glosses[picked] if self.glosses is not None else None,
        )


def build_vocabulary(
    encoder: TextEncoderLike | None,
    names: Sequence[str],
    *,
    trained_names: Sequence[str] = (),
    descriptions: Sequence[str | Sequence[str] | None] | None = None,
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    synsets: Sequence[str | None] | None = None,
    templates: str | Sequence[str] | None = None,
    average: str = "texts",
    describe: str | None = None,
    embed_glosses: bool = False,
    embeddings: torch.Tensor | None = None,
    width: int | None = None,
    known: Vocabulary | None = None,
    context_synsets: Sequence[str | None] = (),
) -> Vocabulary:
    """Embed class names with ``encoder``.

    Args:
        encoder: the text encoder (not needed with ``embeddings`` and without ``embed_glosses``).
        names: the class names; may include trained names (generalised zero-shot).
        trained_names: the names the model trained on, in the order it trained on them.
        descriptions: optional per-class descriptions (a string or list of strings per class).
        synonyms: optional other names per class, each put in every template (e.g. WordNet lemmas).
        synsets: optional WordNet id per class (``"n01443537"``, or None): its sense, instead of the one
            guessed from its name.
        templates: prompt templates (a list, one template, or a set name: ``clip7``, ``clip80``).
        average: ``texts`` or ``names`` (see :class:`~visnet_hf.text.ClassTexts`).
        describe: ``"wordnet"``: each class given no description is described by its WordNet sense; ``"none"``:
            WordNet off altogether (no senses either, even those given).
        embed_glosses: also embed each sense's WordNet definition (``Vocabulary.glosses``).
        embeddings: precomputed ``(len(names), dim)`` embeddings instead of the text encoder.
        width: the text space's width the model expects, checked.
        known: a vocabulary already embedded with the same encoder and texts (the trained classes): its names'
            embeddings (and glosses) are taken from it, and only the other names are encoded.
        context_synsets: the WordNet senses of other classes beside the names (a model's trained classes, for new
            names): a name whose senses are of several kinds is guessed in the kind most of them share.

    Raises:
        ValueError: ``embeddings`` or ``synsets`` that do not fit the names, or a width the model cannot score.
    """
    if synsets is not None and len(synsets) != len(names):
        raise ValueError(f"{len(synsets)} synsets for {len(names)} class names: give one WordNet id (or None) per name.")
    senses = senses_or_none(describe, names, synonyms, synsets, context_synsets)
    texts = ClassTexts.build(
        names, fill_descriptions(describe, names, descriptions, synonyms, senses), templates, synonyms, average
    )
    if embeddings is None:
        embeddings = _known_or_encoded(
            texts.names, known, "embeddings", lambda rows: _encoder(encoder).embed_classes(texts.select(rows))
        )
    if embeddings.ndim != 2 or len(embeddings) != len(texts.names) or (width is not None and embeddings.shape[1] != width):
        expected = f"({len(texts.names)}, {width if width is not None else 'dim'})"
        raise ValueError(
            f"Class embeddings of shape {tuple(embeddings.shape)} do not fit this model, which expects {expected}: the "
            "text encoder must be the one the model was trained with, or one with the same width."
        )
    embeddings = F.normalize(embeddings.float(), dim=-1)
    all_senses = senses or (None,) * len(texts.names)
    gloss_embeddings = (
        _known_or_encoded(
            texts.names,
            known,
            "glosses",
            lambda rows: gloss_matrix(_encoder(encoder), [all_senses[i] for i in rows], embeddings.shape[1]),
        )
        if embed_glosses
        else None
    )
    return Vocabulary.of(texts.names, embeddings, trained_names, texts=texts, synsets=senses, glosses=gloss_embeddings)


def _known_or_encoded(
    names: Sequence[str], known: Vocabulary | None, part: str, encode: Callable[[list[int]], torch.Tensor]
) -> torch.Tensor:
    """One row per name: ``known``'s ``part`` (``embeddings`` or ``glosses``) where it has the name, ``encode(rows)``
    for the other rows (all of them without ``known``)."""
    given = getattr(known, part) if known is not None else None
    index = {name: row for row, name in enumerate(known.names)} if known is not None and given is not None else {}
    rows = [row for row, name in enumerate(names) if name not in index]
    if given is None or len(rows) == len(names):
        return encode(rows)
    matrix = torch.zeros(len(names), given.shape[1])
    if rows:
        matrix[rows] = encode(rows).float()
    taken = [row for row, name in enumerate(names) if name in index]
    matrix[taken] = given[[index[names[row]] for row in taken]].float()
    return matrix


def gloss_matrix(encoder: TextEncoderLike, senses: Sequence[str | None], width: int) -> torch.Tensor:
    """Each sense's WordNet gloss (its definition alone: no name, template or hypernym) embedded by ``encoder``;
    zero rows where WordNet has none."""
    texts = glosses(senses)
    rows = torch.zeros(len(texts), width)
    known = [i for i, text in enumerate(texts) if text is not None]
    if known:
        rows[known] = encoder.encode([str(texts[i]) for i in known]).float()
    return rows


def _encoder(encoder: TextEncoderLike | None) -> TextEncoderLike:
    if encoder is None:
        raise ValueError("Embedding class texts needs a text encoder; give one, or the embeddings themselves.")
    if hasattr(encoder, "vocabulary_for"):  # a VSENet, as visnet_hf 0.2's build_vocabulary(model, names) took
        raise TypeError(
            "build_vocabulary takes a text encoder, not a model; for a model's own settings use model.vocabulary_for(names)."
        )
    return encoder


__all__ = ["ExampleSet", "TextEncoderLike", "Vocabulary", "build_vocabulary", "gloss_matrix"]
