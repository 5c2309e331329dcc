"""Load train and eval splits as ``datasets.Dataset`` with columns ``image`` and ``label``.

Two questions are answered here, and every result says which answer it got:

* **training** (:func:`load_splits`): the train split, and the eval split of the source (``eval_split``, or
  its ``validation`` split where it has one: an image folder's ``validation/`` folder) or, when it has
  none, a stratified ``val_fraction`` held out of train with the run's seed;
* **evaluation** (:func:`load_eval_data`): a file, folder or Hub split given for evaluation is scored
  whole; the held-out part of a training set only when asked for (``held_out=True``), and then it is
  exactly the part a training run with the same data section and seed held out.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import datasets
import numpy as np
from PIL import Image

from .._choices import FILE_SOURCES, LOCAL_SOURCES, TABLE_SOURCES, Source
from .._paths import not_here
from .._validation import did_you_mean
from ..errors import DataError, NoClassNamesError, warn_user
from ..text.prompts import plain_name
from ..wordnet import WNID
from .config import DataConfig, detect_source, is_saved_dataset
from .folders import image_folder

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_HUB = "zalando-datasets/fashion_mnist"
FASHION_MNIST_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

T = TypeVar("T")


@dataclass
class Splits:
    """The splits of a training run.

    Every split has a ``source_index`` column: the example's row in ``train_source`` (for ``train``)
    or ``eval_source`` (for ``eval``), the whole standardised source before any split or class filter
    (what a feature cache is computed over).

    Attributes:
        synonyms: more names per class, from ``data.class_texts_column``.
        synsets: each class's WordNet id (``"n01443537"``), from ``data.class_synset_column``.
        eval_description: which images the eval split holds, in words (for reports and cards).
        unused_names: the names of the data's label that no image carries (left out of ``class_names``).
    """

    train: datasets.Dataset
    eval: datasets.Dataset
    class_names: list[str]
    descriptions: list[list[str]] | None = None
    eval_description: str = ""
    synonyms: list[list[str]] | None = None
    train_source: datasets.Dataset | None = None
    eval_source: datasets.Dataset | None = None
    synsets: list[str | None] | None = None
    unused_names: list[str] = field(default_factory=list)


@dataclass
class EvalData:
    """The images an evaluation scores, their class names (and synonyms and WordNet ids), and which part of the data
    they are; ``unused_names``: the names of the data's label that no image carries, left out of ``class_names``."""

    dataset: datasets.Dataset
    class_names: list[str]
    description: str
    synonyms: list[list[str]] | None = None
    synsets: list[str | None] | None = None
    unused_names: list[str] = field(default_factory=list)


def load_splits(config: DataConfig, seed: int = 0) -> Splits:
    """The train and eval splits, with ``image`` / ``label`` columns and the class names.

    When the source has no eval split, a stratified ``val_fraction`` of train is held out (``seed``).
    The split is made before ``include_classes`` filters the classes, so a run on a subset of
    classes and a later evaluation on all of them (zero-shot) hold out the same images.
    ``max_train_samples`` / ``max_eval_samples`` cut the splits after that.
    """
    return _with_fallback(config, lambda section: _load_splits(section, seed))


def load_eval_data(config: DataConfig, seed: int = 0, held_out: bool = False, split: str | None = None) -> EvalData:
    """The images to evaluate on (or, for ``visnet extend``, to learn new classes from).

    Args:
        config: the data section: ``path`` (and ``eval_split`` for a source with several splits).
        seed: the seed of the held-out split (the training run's ``seed``).
        held_out: score the part a training run held out (``val_fraction``, ``seed``, and
            ``include_classes`` if set) instead of the whole file, folder or split.
        split: the split to read from a source with several when ``eval_split`` does not name one (``"train"``:
            the photos to learn from); without it such a source must name its split.
    """
    if held_out:
        splits = load_splits(config, seed)
        return EvalData(
            splits.eval, splits.class_names, splits.eval_description, splits.synonyms, splits.synsets, splits.unused_names
        )
    return _with_fallback(config, lambda section: _load_whole(section, split))


def _stratified_split(
    dataset: datasets.Dataset, fraction: float, seed: int, setting: str, where: str
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``dataset`` split in two, ``fraction`` of each class held out; a split that cannot give every class an image
    on both sides is said, with the setting that fixes it."""
    try:
        parts = dataset.train_test_split(test_size=fraction, seed=seed, stratify_by_column="label")
    except ValueError as error:
        counts = np.bincount(np.asarray(dataset["label"]))
        classes, smallest, total = int((counts > 0).sum()), int(counts[counts > 0].min()), len(dataset)
        enough = math.ceil(100 * classes / total) / 100  # the least fraction that holds out one image per class
        larger = (
            f"data.{setting} of at least {enough:g} (data.{setting}={enough:g} on the command line), "
            if smallest >= 2 and total - math.ceil(enough * total) >= classes
            else ""
        )
        raise DataError(
            f"{where} has {total} images of {classes} classes (the smallest with {smallest}): holding out "
            f"{_percent(fraction)} of each class for evaluation cannot leave every class an image on both sides "
            f"({error}). Give more images, {larger}or an eval split of its own (data.eval_path, or data.eval_split "
            "for a source with several)."
        ) from None
    return parts["train"], parts["test"]


def _load_splits(config: DataConfig, seed: int) -> Splits:
    raw_train, raw_eval, where = _load_source(config)
    raw_train, raw_eval = _names_as_labels(config, raw_train, raw_eval)
    train = _standardise(raw_train, config, "train")
    class_names = _class_names(train, config)
    train = train_source = _with_class_label(train, class_names)
    synonyms = _class_texts(raw_train, config, class_names)
    synsets = _class_synsets(raw_train, config, class_names)
    if raw_eval is None:
        train, evaluation = _stratified_split(train, config.val_fraction, seed, "val_fraction", where["train"])
        eval_source = train_source
        eval_description = f"a stratified {_percent(config.val_fraction)} held out of {where['train']} (seed {seed})"
    else:
        evaluation = _labels_by_name(_standardise(raw_eval, config, "eval"), class_names, where["eval"])
        evaluation = eval_source = _with_class_label(evaluation, class_names)
        eval_description = where["eval"]
    if config.dev_fraction:  # choose on part of the training split; the test part stays out of both
        train, evaluation = _stratified_split(train, config.dev_fraction, seed, "dev_fraction", where["train"])
        eval_source = train_source
        eval_description = (
            f"a development split: a stratified {_percent(config.dev_fraction)} of the training part of "
            f"{where['train']} (seed {seed}); the test part ({eval_description}) is left out"
        )
    own_eval = None if raw_eval is None else eval_source
    unused = [] if config.include_classes else _names_without_images(class_names, train_source, own_eval)
    kept = config.include_classes or ([name for name in class_names if name not in unused] if unused else None)
    if kept:
        keep = _class_indices(kept, class_names)
        train, evaluation = (_keep_classes(split, keep, kept) for split in (train, evaluation))
        synonyms, synsets = _picked(synonyms, keep), _picked(synsets, keep)
        if config.include_classes:
            listed = f"classes {', '.join(kept)}" if len(kept) <= 5 else f"{len(kept)} of its {len(class_names)} classes"
            eval_description += f", {listed} only"
        class_names = list(kept)
    if config.max_train_samples:
        train = train.select(range(min(config.max_train_samples, len(train))))
    if config.max_eval_samples and config.max_eval_samples < len(evaluation):
        evaluation = evaluation.select(range(config.max_eval_samples))
        eval_description += f", its first {config.max_eval_samples} images"
    for name, split in (("train", train), ("eval", evaluation)):
        if len(split) == 0:
            raise DataError(f"The {name} split is empty; check data.path / data.{name}_split.")
    descriptions = read_descriptions(config.descriptions_file, class_names) if config.descriptions_file else None
    return Splits(
        train, evaluation, class_names, descriptions, eval_description, synonyms, train_source, eval_source, synsets, unused
    )


def unused_names_note(unused: list[str], kept: int, learned: str = "the model learns") -> str:
    """What is said of the names of the data's label that no image carries, which are left out."""
    listed = ", ".join(repr(name) for name in unused[:5]) + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
    return (
        f"The data's label names {kept + len(unused)} classes; no image carries {len(unused)} of them ({listed}), so "
        f"{learned} the other {kept}. A file filtered from a larger one keeps every name of its label."
    )


def _picked(per_class: list[T] | None, keep: list[int]) -> list[T] | None:
    """A per-class list (synonyms, WordNet ids) for the ``keep`` classes only, in that order; ``None`` stays so."""
    return [per_class[i] for i in keep] if per_class else None


def _names_without_images(class_names: list[str], *sources: datasets.Dataset | None) -> list[str]:
    """The class names no image of ``sources`` carries: a file filtered from a larger one (``Dataset.filter``, then
    ``to_parquet``) keeps every name of its label's ``ClassLabel``, and a class without an image cannot be learned."""
    present = {int(label) for source in sources if source is not None for label in source.unique("label")}
    return [name for i, name in enumerate(class_names) if i not in present]


def _load_whole(config: DataConfig, preferred: str | None = None) -> EvalData:
    """Every image of the file, folder or chosen split (``max_eval_samples`` cuts it)."""
    loaded, where = _load_dataset_dict(config)
    split = config.eval_split or (preferred if preferred in loaded else None)
    if split is None:
        if len(loaded) > 1:
            raise DataError(
                f"{where} has the splits {sorted(loaded)}; choose the one to evaluate with --split "
                "(data.eval_split), or --held-out for the part a training run held out."
            )
        split = next(iter(loaded))
    elif split not in loaded:
        raise DataError(f"Split {split!r} not found in {where}; it has {sorted(loaded)}.{did_you_mean(split, loaded)}")
    raw, _ = _names_as_labels(config, loaded[split])
    dataset = _standardise(raw, config, split)
    class_names = _class_names(dataset, config)
    dataset = _with_class_label(dataset, class_names)
    synonyms = _class_texts(raw, config, class_names)
    synsets = _class_synsets(raw, config, class_names)
    description = f"all of {where}" if len(loaded) == 1 else f"the {split!r} split of {where}"
    unused = _names_without_images(class_names, dataset)
    if unused and len(unused) < len(class_names):
        keep = [i for i, name in enumerate(class_names) if name not in unused]
        description += f", the {len(keep)} of its label's {len(class_names)} classes it has images of"
        class_names = [class_names[i] for i in keep]
        dataset = _keep_classes(dataset, keep, class_names)
        synonyms, synsets = _picked(synonyms, keep), _picked(synsets, keep)
    if config.max_eval_samples and config.max_eval_samples < len(dataset):
        dataset = dataset.select(range(config.max_eval_samples))
        description += f", its first {config.max_eval_samples} images"
    if len(dataset) == 0:
        raise DataError(f"{where} holds no images; check --data.")
    if note := names_alike_note(class_names):
        warn_user(note)
    return EvalData(dataset, class_names, description, synonyms, synsets, unused)


def _with_fallback(config: DataConfig, load: Callable[[DataConfig], T]) -> T:
    """``load(config)``; when its files are missing (or its Hub dataset out of reach), the same from its fallback."""
    try:
        return load(config)
    except DataError as error:
        if config.fallback is None:
            raise
        first = str(error)
    try:
        return load(config.with_fallback())
    except DataError as error:
        raise DataError(
            f"No data could be loaded. {first} The fallback failed too: {error} "
            "Point data.path at a local copy (e.g. data.path=/path/to/train.parquet), or go online."
        ) from None


def _load_source(config: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset | None, dict[str, str]]:
    """The train split, the source's own eval split (or ``None``), and a description of each."""
    if config.source == "fashion_mnist":
        return _fashion_mnist(config)
    if config.source in LOCAL_SOURCES and config.eval_path:
        loaded, where = _load_dataset_dict(config)
        evaluation, eval_where = _load_dataset_dict(replace(config, path=config.eval_path, eval_path=None, source=_kind(config)))
        if len(evaluation) > 1 and config.eval_split not in evaluation:
            raise DataError(
                f"data.eval_path: {eval_where} has the splits {sorted(evaluation)}; name the one to evaluate on with "
                "data.eval_split, or point data.eval_path at that split's folder."
            )
        eval_split = config.eval_split if len(evaluation) > 1 else next(iter(evaluation))
        train = loaded[config.train_split] if config.train_split in loaded else loaded[next(iter(loaded))]
        return train, evaluation[eval_split], {"train": where, "eval": f"all of {eval_where}"}
    loaded, where = _load_dataset_dict(config)
    if config.train_split not in loaded:
        raise DataError(
            f"Split {config.train_split!r} not found in {where}; it has {sorted(loaded)}."
            f"{did_you_mean(config.train_split, loaded)}"
        )
    described = {"train": f"the {config.train_split!r} split of {where}" if len(loaded) > 1 else where}
    if config.eval_split is None and "validation" in loaded and config.train_split != "validation":
        config = replace(config, eval_split="validation")  # a source's own validation split (a validation/ folder)
    if config.eval_split is None:
        return loaded[config.train_split], None, described
    if config.eval_split not in loaded:
        raise DataError(
            f"Split {config.eval_split!r} not found in {where}; it has {sorted(loaded)}.{did_you_mean(config.eval_split, loaded)}"
        )
    return (
        loaded[config.train_split],
        loaded[config.eval_split],
        {**described, "eval": f"the {config.eval_split!r} split of {where}"},
    )


def _kind(config: DataConfig) -> Source:
    """The source ``data.eval_path`` is: of its own kind (an eval parquet file beside a training folder), else the
    training data's."""
    try:
        return detect_source(config.eval_path) if config.eval_path else config.source
    except ValueError:
        return config.source


METADATA_FILE_COLUMN = "file_name"  # datasets' ImageFolder reads the image paths of metadata.csv from it


def _load_dataset_dict(config: DataConfig) -> tuple[datasets.DatasetDict, str]:
    """The source as a ``DatasetDict``, and its name in words."""
    if config.source == "fashion_mnist":
        train, test, _ = _fashion_mnist(config)
        return datasets.DatasetDict(train=train, test=test), "Fashion-MNIST"
    if config.path is None:
        raise DataError(f"data.path is required for source {config.source!r}.")
    if config.source in FILE_SOURCES:
        files = [config.path] if isinstance(config.path, str) else list(config.path)
        for file in files:
            if "://" not in file and not Path(file).exists():
                raise DataError(not_here(f"{config.source.capitalize()} file", file) + ".")
        named = ", ".join(Path(f).name for f in files) if len(files) <= 3 else f"{len(files)} {config.source} files"
        if config.source in TABLE_SOURCES:
            loaded = _load_dataset(config.source, data_files={"train": files}, **table_options(files))
            loaded = datasets.DatasetDict({k: with_metadata_file_names(v, config) for k, v in loaded.items()})
            return datasets.DatasetDict({k: with_image_paths(v, config.image_column, files) for k, v in loaded.items()}), named
        loaded = _load_dataset(config.source, data_files={"train": files})
        if config.source == "parquet":  # a column of image paths is read from the file's folder, as a table's is
            loaded = datasets.DatasetDict({k: with_image_paths(v, config.image_column, files) for k, v in loaded.items()})
        return loaded, named
    if config.source == "imagefolder":
        if not Path(str(config.path)).is_dir():
            raise DataError(not_here("Image folder", str(config.path)) + ".")
        by_class_folder = image_folder(Path(str(config.path)))  # None: a metadata file says the labels
        loaded = by_class_folder if by_class_folder is not None else _load_dataset("imagefolder", data_dir=config.path)
        return loaded, f"the image folder {config.path}"
    if config.source == "saved":
        return load_saved(str(config.path)), f"the saved dataset {config.path}"
    try:
        loaded = _load_dataset(config.path, config.subset)
    except (ConnectionError, FileNotFoundError) as error:  # offline, or no such dataset
        raise DataError(
            f"The Hub dataset {config.path!r} cannot be loaded ({error}). If it is meant as a local folder or file, it does "
            "not exist here."
        ) from error
    return loaded, f"the Hub dataset {config.path}" + (f" ({config.subset})" if config.subset else "")


def load_saved(path: str) -> datasets.DatasetDict:
    """A folder written by ``save_to_disk`` (a ``Dataset``, as its one split ``train``, or a ``DatasetDict``)."""
    if not is_saved_dataset(Path(path)):
        raise DataError(
            f"{path!r} is not a dataset saved with save_to_disk (it has no dataset_info.json and state.json, nor "
            "dataset_dict.json); give the folder save_to_disk wrote."
        )
    loaded = datasets.load_from_disk(path)
    return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict(train=loaded)


def table_options(files: list[str]) -> dict[str, Any]:
    """``load_dataset`` options for a table of image paths: tab-separated for ``.tsv`` files; for a local ``.csv``
    file whose header has no comma, the separator it has instead (``;``, as spreadsheets save CSV where the comma is
    the decimal mark, a tab or ``|``)."""
    if all(Path(f.split("?")[0]).suffix.lower() == ".tsv" for f in files):
        return {"delimiter": "\t"}
    first = Path(files[0])
    if "://" in files[0] or first.suffix.lower() != ".csv" or not first.is_file():
        return {}
    with first.open(encoding="utf-8-sig", errors="replace") as table:
        header = table.readline()
    separator = next((s for s in (";", "\t", "|") if s in header), None) if "," not in header else None
    return {"delimiter": separator} if separator else {}


def with_metadata_file_names(dataset: datasets.Dataset, config: DataConfig) -> datasets.Dataset:
    """A table whose image paths are in ``file_name`` (the column an image folder's ``metadata.csv`` names them in, for
    ``datasets``' ImageFolder) read as its image column, where the image column is left at its default and is absent."""
    default = DataConfig.__dataclass_fields__["image_column"].default
    columns = dataset.column_names
    if config.image_column != default or default in columns or METADATA_FILE_COLUMN not in columns:
        return dataset
    return dataset.rename_column(METADATA_FILE_COLUMN, default)


def with_image_paths(dataset: datasets.Dataset, image_column: str, files: list[str]) -> datasets.Dataset:
    """A table's image column with each relative path read from the (first) table's folder, as ``metadata.csv`` paths
    are in an image folder, so a table works from any working directory; a path found only from the working
    directory is taken from there. Absolute paths and URLs stay as they are, and so does a column of images (a
    parquet file's ``Image`` column)."""
    if "://" in files[0]:
        return dataset
    folder = Path(files[0]).resolve().parent

    def resolved(path: Any) -> Any:
        if not isinstance(path, str) or not path or "://" in path or Path(path).is_absolute():
            return path
        beside = folder / path
        return str(beside if beside.exists() or not Path(path).exists() else Path(path).resolve())

    if image_column not in dataset.column_names:
        return dataset  # said by the column check, with the table's columns
    if not isinstance(dataset.features[image_column], datasets.Value):
        return dataset  # the images themselves (a parquet file's Image column), not their paths
    return dataset.map(lambda batch: {image_column: [resolved(p) for p in batch[image_column]]}, batched=True)


def _load_dataset(*args, **kwargs) -> datasets.DatasetDict:
    try:
        return datasets.load_dataset(*args, **kwargs)
    except ValueError as error:
        match = re.search(r'Instruction "(\w+)" corresponds to no data', str(error))
        if match:
            raise DataError(f"The {match.group(1)} split is empty; check data.path and its files.") from error
        raise


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


COLUMN_FLAGS = ("image_column", "label_column", "class_synset_column")  # named by flag in visnet eval, extend, calibrate


def _standardise(dataset: datasets.Dataset, config: DataConfig, split: str) -> datasets.Dataset:
    """Rename the configured columns to ``image`` / ``label``, drop the rest, number the rows (``source_index``)."""
    columns = [("image_column", config.image_column), ("label_column", config.label_column)]
    for role in ("class_texts_column", "class_synset_column"):
        if getattr(config, role):
            columns.append((role, getattr(config, role)))
    for role, column in columns:
        if column not in dataset.column_names:
            flag = f" (--{role.replace('_', '-')} for visnet eval, extend and calibrate)" if role in COLUMN_FLAGS else ""
            raise DataError(
                f"data.{role}={column!r} is not a column of the {split} split; its columns are {dataset.column_names}."
                f"{did_you_mean(column, dataset.column_names)} Name the column with data.{role}{flag}."
            )
    dataset = dataset.select_columns([config.image_column, config.label_column])
    renames = {config.image_column: "image", config.label_column: "label"}
    dataset = dataset.rename_columns({k: v for k, v in renames.items() if k != v})
    if not isinstance(dataset.features["image"], datasets.Image):
        dataset = dataset.cast_column("image", datasets.Image())
    return dataset.add_column("source_index", np.arange(len(dataset)))


def _class_texts(dataset: datasets.Dataset, config: DataConfig, class_names: list[str]) -> list[list[str]] | None:
    """More names for each class from ``data.class_texts_column``: the distinct texts of its examples,
    split on the separator, in order of appearance."""
    if not config.class_texts_column:
        return None
    per_class: list[dict[str, None]] = [{} for _ in class_names]
    labels = dataset[config.label_column][:]
    for label, value in zip(labels, dataset[config.class_texts_column][:]):
        for text in str(value or "").split(config.class_texts_separator):
            if text.strip() and 0 <= label < len(class_names):
                per_class[label][text.strip()] = None
    return [list(texts) for texts in per_class]


def _class_synsets(dataset: datasets.Dataset, config: DataConfig, class_names: list[str]) -> list[str | None] | None:
    """Each class's WordNet id from ``data.class_synset_column`` (the first of its examples that has
    one; None for a class none of them has); when that is not set, from a column named ``wnid`` (ImageNet's name
    for it) whose every value is a WordNet id."""
    column = config.class_synset_column or ("wnid" if "wnid" in dataset.column_names else None)
    if not column:
        return None
    values = ["" if value is None else str(value).strip() for value in dataset[column][:]]
    if not config.class_synset_column and not (any(values) and all(WNID.fullmatch(v) for v in values if v)):
        return None  # a wnid column of other values is read only when named
    per_class: list[str | None] = [None] * len(class_names)
    labels = dataset[config.label_column][:]
    for label, wnid in zip(labels, values):
        if not wnid or not 0 <= label < len(class_names) or per_class[label]:
            continue
        if not WNID.fullmatch(wnid):
            raise DataError(
                f"data.class_synset_column={config.class_synset_column!r} holds {wnid!r} for class "
                f"{class_names[label]!r}, which is not a WordNet noun id such as 'n01443537' (ImageNet's wnid); "
                "point it at such a column, or set it to null."
            )
        per_class[label] = wnid
    return per_class


def _names_as_labels(
    config: DataConfig, train: datasets.Dataset, other: datasets.Dataset | None = None
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """A label column that holds class names (strings, as a CSV or a hand-made parquet file has them) as a
    ``ClassLabel``: its classes ``data.class_names`` when given, else the distinct names of ``train``, sorted (as
    an image folder's class folders are); ``other`` (an eval split) is read with the same classes."""
    column = config.label_column
    feature = train.features.get(column)
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        return train, other
    values = train[column][:]
    if any(value is None or str(value).strip() == "" for value in values):
        raise DataError(f"Column {column!r} has rows without a class name; give every image its class, or remove those rows.")
    train, values = _without_spaces_around(train, column, values)
    if other is not None:
        other, _ = _without_spaces_around(other, column, other[column][:])
    names = [str(n) for n in config.class_names] if config.class_names else sorted({str(v) for v in values})

    def encoded(dataset: datasets.Dataset, split: str, values: list) -> datasets.Dataset:
        unknown = sorted({str(v) for v in values} - set(names))
        if unknown:
            raise DataError(
                f"The {split} split's {column!r} names classes that are not among {names[:10]}: {unknown[:10]}; "
                "fix the names, or list every class in data.class_names."
            )
        return dataset.cast_column(column, datasets.ClassLabel(names=names))

    return encoded(train, "train", values), encoded(other, "eval", other[column][:]) if other is not None else None


def _without_spaces_around(dataset: datasets.Dataset, column: str, values: list) -> tuple[datasets.Dataset, list[str]]:
    """A label column of names without the spaces around them: "cat " (a spreadsheet's stray space) is "cat"."""
    names = [str(value).strip() for value in values]
    if names == [str(value) for value in values]:
        return dataset, names
    stripped = dataset.map(lambda labels: {column: [str(v).strip() for v in labels]}, input_columns=column, batched=True)
    return stripped, names


def names_alike_note(class_names: list[str]) -> str | None:
    """What is said of classes that differ only in case, underscores or spacing ("Cat" and "cat"): each is a class
    of its own, though a text encoder reads their names alike, so a VSENet can hardly tell them apart by name.
    ``None`` where there are none."""
    spellings: dict[str, list[str]] = {}
    for name in class_names:
        spellings.setdefault(plain_name(name), []).append(name)
    alike = [names for names in spellings.values() if len(names) > 1]
    if not alike:
        return None
    listed = "; ".join(" and ".join(repr(name) for name in names) for names in alike[:5])
    more = f" (and {len(alike) - 5} more such groups)" if len(alike) > 5 else ""
    return (
        f"Classes of the data differ only in case, underscores or spacing: {listed}{more}. Each is a class of its own, "
        "though their names read alike; if they are one class, write its name one way in the data."
    )


def _class_names(dataset: datasets.Dataset, config: DataConfig) -> list[str]:
    feature = dataset.features["label"]
    names = list(config.class_names) if config.class_names else getattr(feature, "names", None)
    if not names:
        raise NoClassNamesError(
            f"Column {config.label_column!r} has no class names (it is {feature}); give data.class_names: [...] "
            "in the config, one name per label, or a label column that holds the names (--label-column for visnet "
            "eval, extend and calibrate)."
        )
    return [str(n) for n in names]


def _class_indices(wanted: list[str], class_names: list[str]) -> list[int]:
    unknown = [name for name in wanted if name not in class_names]
    if unknown:
        hints = {n: did_you_mean(n, class_names, n=1).strip() for n in unknown}
        listed = ", ".join(f"{n!r} ({hints[n]})" if hints[n] else repr(n) for n in unknown)
        raise DataError(f"data.include_classes names classes the dataset does not have: {listed}. Its classes: {class_names}.")
    return [class_names.index(name) for name in wanted]


def _keep_classes(dataset: datasets.Dataset, keep: list[int], names: list[str]) -> datasets.Dataset:
    """Only the examples of the ``keep`` classes, relabelled ``0..len(keep)-1`` in that order."""
    new_label = {old: new for new, old in enumerate(keep)}
    dataset = dataset.filter(lambda labels: [label in new_label for label in labels], input_columns="label", batched=True)
    return relabelled(dataset, new_label, names)


def relabelled(dataset: datasets.Dataset, new_label: Mapping[int, int], names: list[str]) -> datasets.Dataset:
    """``dataset`` with each label ``old`` replaced by ``new_label[old]``, a ``ClassLabel`` of ``names``."""
    features = dataset.features.copy()
    features["label"] = datasets.ClassLabel(names=list(names))
    return dataset.map(
        lambda labels: {"label": [new_label[label] for label in labels]},
        input_columns="label",
        batched=True,
        features=features,
    )


def _labels_by_name(dataset: datasets.Dataset, class_names: list[str], where: str) -> datasets.Dataset:
    """An eval split whose labels name its classes otherwise than the training split (an eval folder without one
    class, or a file whose classes come in another order) numbered as the training split's classes of the same
    names; as it is when its label has no names (numbers mean the training split's classes).

    Raises:
        DataError: an eval image of a class the training split does not have.
    """
    own = getattr(dataset.features["label"], "names", None)
    if own is None or list(own) == class_names:
        return dataset
    used = sorted(set(np.asarray(dataset["label"][:]).tolist()))
    unknown = [own[label] for label in used if own[label] not in class_names]
    if unknown:
        raise DataError(
            f"The eval split ({where}) has images of classes the training data has not: {unknown[:10]}. Its classes are "
            f"{class_names[:10]}{'...' if len(class_names) > 10 else ''}; name the eval classes (folders) as the "
            "training ones, or leave those images out."
        )
    return relabelled(dataset, {label: class_names.index(own[label]) for label in used}, class_names)


def _with_class_label(dataset: datasets.Dataset, class_names: list[str]) -> datasets.Dataset:
    """Check the labels, and make ``label`` a ``ClassLabel`` with the run's names (stratified splits need it)."""
    labels = np.asarray(dataset["label"][:])  # [:] reads the column at once; iterating it goes row by row
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        bad = sorted({int(v) for v in labels if v < 0 or v >= len(class_names)})[:10]
        raise DataError(
            f"Labels {bad} lie outside the {len(class_names)} classes {class_names[:5]}...; fix the labels or class_names."
        )
    feature = dataset.features["label"]
    if isinstance(feature, datasets.ClassLabel) and list(feature.names) == class_names:
        return dataset
    return dataset.cast_column("label", datasets.ClassLabel(names=class_names))


def per_class_sample(dataset: datasets.Dataset, per_class: int, seed: int) -> datasets.Dataset:
    """Up to ``per_class`` rows of each label, drawn at random (``seed``); the whole dataset when no class has more."""
    labels = np.asarray(dataset["label"][:])
    if labels.size == 0 or np.bincount(labels).max() <= per_class:
        return dataset
    order = np.random.default_rng(seed).permutation(labels.size)
    taken: dict[int, int] = {}
    rows = []
    for row in order:
        label = int(labels[row])
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            rows.append(int(row))
    return dataset.select(sorted(rows))


def read_descriptions(path: str, class_names: list[str]) -> list[list[str]]:
    """A YAML/JSON mapping ``class name -> description or list of descriptions``."""
    import yaml

    if not Path(path).exists():
        raise DataError(f"Descriptions file {path!r} does not exist.")
    mapping = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(mapping) - set(class_names))
    if unknown:
        raise DataError(f"{path}: descriptions for unknown classes {unknown}; the classes are {class_names}.")
    return [[mapping[n]] if isinstance(mapping.get(n), str) else list(mapping.get(n) or []) for n in class_names]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        _, _dtype, ndim = struct.unpack(">HBB", handle.read(4))
        shape = struct.unpack(">" + "I" * ndim, handle.read(4 * ndim))
        return np.frombuffer(handle.read(), dtype=np.uint8).reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _fashion_mnist(config: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset, dict[str, str]]:
    """Debian's ``dataset-fashion-mnist`` IDX files when installed, else the Hub copy."""
    directory = Path(str(config.path)) if config.path else FASHION_MNIST_DIR
    files = {
        split: (_find(directory, f"{prefix}-images-idx3-ubyte"), _find(directory, f"{prefix}-labels-idx1-ubyte"))
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }
    described = {"train": "the Fashion-MNIST training set", "eval": "the Fashion-MNIST test set"}
    if not all(all(pair) for pair in files.values()):
        loaded, _ = _load_dataset_dict(replace(config, source="hub", path=FASHION_MNIST_HUB, subset=None))
        return loaded["train"], loaded["test"], described
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FASHION_MNIST_NAMES)})
    splits = []
    for images_path, labels_path in files.values():
        assert images_path is not None and labels_path is not None  # checked above
        images, labels = _read_idx(images_path), _read_idx(labels_path)
        splits.append(
            datasets.Dataset.from_dict(
                {"image": [Image.fromarray(a) for a in images], "label": labels.tolist()},
                features=features,
            )
        )
    return splits[0], splits[1], described
