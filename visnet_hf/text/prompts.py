"""What a text encoder reads for a vocabulary: names, synonyms and descriptions in prompt templates.

The template sets are data (``resources/templates.json``): ``photo`` (``"a photo of a {}."``, the
default), ``name`` (the name alone), and CLIP's ``clip7`` and ``clip80`` ensembles for ImageNet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from .._validation import did_you_mean
from ..errors import ConfigError
from ..wordnet import spoken_name

TextAverage = Literal["texts", "names"]
AVERAGES = get_args(TextAverage)
TEMPLATES_FILE = Path(__file__).resolve().parents[1] / "resources" / "templates.json"


@cache
def template_sets() -> dict[str, tuple[str, ...]]:
    """The named template sets (``photo``, ``name``, ``clip7``, ``clip80``)."""
    raw = json.loads(TEMPLATES_FILE.read_text())
    return {name: tuple(templates) for name, templates in raw.items() if not name.startswith("_")}


def default_templates() -> tuple[str, ...]:
    return template_sets()["photo"]


def resolve_templates(templates: str | Sequence[str] | None) -> tuple[str, ...]:
    """Templates by set name (``photo``, ``name``, ``clip7``, ``clip80``), as one template, or as a list.

    Raises:
        ConfigError: an unknown set name, or a template without ``{}`` for the class name.
    """
    if templates is None or (not isinstance(templates, str) and len(templates) == 0):
        return default_templates()
    sets = template_sets()
    if isinstance(templates, str):
        if "{}" in templates:
            return (templates,)
        if templates not in sets:
            raise ConfigError(
                f"Unknown template set {templates!r}.{did_you_mean(templates, sets)} Sets: "
                f"{', '.join(sets)}; or give a list of templates with '{{}}' for the name."
            )
        return sets[templates]
    resolved = tuple(str(t) for t in templates)
    bad = [t for t in resolved if "{}" not in t]
    if bad:
        raise ConfigError(f"Every template needs a '{{}}' for the class name; these have none: {bad}.")
    return resolved


def plain_name(name: str) -> str:
    """A class name without case, underscores or runs of spaces: what two spellings of one class share."""
    return " ".join(name.replace("_", " ").split()).casefold()


def checked_names(names: Any) -> tuple[str, ...]:
    """``names`` as a tuple of class names: a list (or other sequence) of unique, non-empty strings.

    Raises:
        ConfigError: one string instead of a list, no name, a name that is not a string or is empty, a name
            given twice; the message says which and how to give them.
    """
    if isinstance(names, (str, bytes)):
        raise ConfigError(f"Class names come as a list; got the one string {names!r}: give [{names!r}].")
    names = tuple(names)
    if not names:
        raise ConfigError("A vocabulary needs at least one class name; the list of names is empty.")
    wrong = [(index, name) for index, name in enumerate(names) if not isinstance(name, str) or not name.strip()]
    if wrong:
        shown = ", ".join(f"{name!r} (position {index})" for index, name in wrong[:5])
        raise ConfigError(f"Every class name must be a non-empty string; got {shown}. Give each class its name.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"Class names must be unique; repeated: {duplicates}.")
    return names


def per_class(values: Sequence[Any] | None, count: int, what: str) -> tuple[tuple[str, ...], ...] | None:
    """One tuple of strings per class from ``None``, strings or lists of strings.

    Raises:
        ConfigError: not one entry per class.
    """
    if values is None:
        return None
    if len(values) != count:
        raise ConfigError(
            f"Got {len(values)} {what} for {count} class names; give one entry per class (None or [] where a class has none)."
        )
    return tuple(() if v is None else (v,) if isinstance(v, str) else tuple(str(x) for x in v) for v in values)


@dataclass(frozen=True)
class ClassTexts:
    """What the text encoder reads for one vocabulary.

    Each class is described by its name and its ``synonyms`` (other names for it, e.g. WordNet
    lemmas), each put in every template, and by free ``descriptions`` (``"name: description"``).
    The class embedding is the mean of the unit-normalised embeddings of those texts: each text
    counts once (``average="texts"``), or each name counts once whatever its number of templates,
    and the descriptions together as one more (``average="names"``).
    """

    names: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...] | None = None
    descriptions: tuple[tuple[str, ...], ...] | None = None
    templates: tuple[str, ...] = ("a photo of a {}.",)
    average: str = "texts"

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        descriptions: Sequence[str | Sequence[str] | None] | None = None,
        templates: str | Sequence[str] | None = None,
        synonyms: Sequence[str | Sequence[str] | None] | None = None,
        average: str = "texts",
    ) -> ClassTexts:
        """Checked texts: unique names, one entry per class, known templates and averaging.

        Raises:
            ConfigError: naming what is wrong.
        """
        names = checked_names(names)
        if average not in AVERAGES:
            raise ConfigError(f"text_average={average!r} is not one of {list(AVERAGES)}.")
        return cls(
            names=names,
            synonyms=per_class(synonyms, len(names), "synonym lists"),
            descriptions=per_class(descriptions, len(names), "descriptions"),
            templates=resolve_templates(templates),
            average=average,
        )

    def select(self, rows: Sequence[int]) -> ClassTexts:
        """The texts of the classes ``rows`` alone, in that order."""

        def pick(values: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
            return tuple(values[row] for row in rows) if values is not None else None

        return replace(
            self, names=tuple(self.names[row] for row in rows), synonyms=pick(self.synonyms), descriptions=pick(self.descriptions)
        )

    def groups(self, index: int) -> list[list[str]]:
        """The texts of class ``index``, grouped: one group per name (its templates), one for the descriptions; each name
        as the text encoder reads it (:func:`~visnet_hf.wordnet.spoken_name`: a WordNet id as its lemma, "_" as a space)."""
        name = self.names[index]
        aliases = [name, *[s for s in (self.synonyms[index] if self.synonyms else ()) if s and s != name]]
        spoken = dict.fromkeys(spoken_name(alias) for alias in aliases)  # "n01443537" reads "goldfish"
        groups = [[template.format(alias) for template in self.templates] for alias in spoken]
        if self.descriptions is not None and self.descriptions[index]:
            groups.append([f"{spoken_name(name)}: {d}" for d in self.descriptions[index]])
        return groups

    def prompts(self) -> list[list[tuple[str, float]]]:
        """The texts to embed and their weights (summing to one), one list per class."""
        weighted_per_class = []
        for index in range(len(self.names)):
            groups = self.groups(index)
            if self.average == "names":
                weighted = [(text, 1.0 / (len(groups) * len(group))) for group in groups for text in group]
            else:
                count = sum(len(group) for group in groups)
                weighted = [(text, 1.0 / count) for group in groups for text in group]
            weighted_per_class.append(weighted)
        return weighted_per_class

    def flatten(self) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """Every prompt of the vocabulary, its weight within its class, and its class index."""
        prompts = self.prompts()
        flat = [text for texts in prompts for text, _ in texts]
        weights = torch.tensor([weight for texts in prompts for _, weight in texts])
        owner = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor([len(p) for p in prompts]))
        return flat, weights, owner


__all__ = [
    "AVERAGES",
    "ClassTexts",
    "TextAverage",
    "checked_names",
    "default_templates",
    "plain_name",
    "resolve_templates",
    "template_sets",
]
