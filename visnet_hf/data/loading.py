"""Load train and eval splits as ``datasets.Dataset`` with columns ``image`` and ``label``."""

from __future__ import annotations

import gzip
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from ..training.config import DataConfig

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_HUB = "zalando-datasets/fashion_mnist"
FASHION_MNIST_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


class DataError(ValueError):
    """A dataset that cannot be used as configured; the message says what to change."""


@dataclass
class Splits:
    train: datasets.Dataset
    eval: datasets.Dataset
    class_names: list[str]
    descriptions: list[list[str]] | None = None


def load_splits(config: DataConfig, seed: int = 0) -> Splits:
    """The train and eval splits, with ``image`` / ``label`` columns and the class names.

    When the source has no eval split, a stratified ``val_fraction`` of train is held out (fixed
    seed). The split is made before ``include_classes`` filters the classes, so a run on a subset of
    classes and a later evaluation on all of them (zero-shot) hold out the same images.
    """
    train, evaluation = _load_source(config)
    train = _standardise(train, config, "train")
    class_names = _class_names(train, config)
    train = _with_class_label(train, class_names)
    if evaluation is None:
        parts = train.train_test_split(test_size=config.val_fraction, seed=seed, stratify_by_column="label")
        train, evaluation = parts["train"], parts["test"]
    else:
        evaluation = _with_class_label(_standardise(evaluation, config, "eval"), class_names)
    if config.include_classes:
        keep = _class_indices(config.include_classes, class_names)
        train, evaluation = (_keep_classes(split, keep, config.include_classes) for split in (train, evaluation))
        class_names = list(config.include_classes)
    if config.max_train_samples:
        train = train.select(range(min(config.max_train_samples, len(train))))
    if config.max_eval_samples:
        evaluation = evaluation.select(range(min(config.max_eval_samples, len(evaluation))))
    for name, split in (("train", train), ("eval", evaluation)):
        if len(split) == 0:
            raise DataError(f"The {name} split is empty; check data.path / data.{name}_split.")
    descriptions = read_descriptions(config.descriptions_file, class_names) if config.descriptions_file else None
    return Splits(train, evaluation, class_names, descriptions)


def _load_source(config: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    if config.source == "fashion_mnist":
        return _fashion_mnist(config)
    if config.path is None:
        raise DataError(f"data.path is required for source {config.source!r}.")
    if config.source == "parquet":
        files = {"train": config.path}
        if config.eval_path:
            files["eval"] = config.eval_path
        for file in [f for value in files.values() for f in ([value] if isinstance(value, str) else value)]:
            if not Path(file).exists():
                raise DataError(f"Parquet file {file!r} does not exist.")
        loaded = _load_dataset("parquet", data_files=files)
        return loaded["train"], loaded.get("eval")
    if config.source == "imagefolder":
        if not Path(config.path).is_dir():
            raise DataError(f"Image folder {config.path!r} does not exist.")
        loaded = _load_dataset("imagefolder", data_dir=config.path)
    else:
        loaded = _load_dataset(config.path, config.subset)
    if config.train_split not in loaded:
        raise DataError(f"Split {config.train_split!r} not found; the dataset has {sorted(loaded)}.")
    eval_split = config.eval_split if config.eval_split in loaded else None
    if config.eval_split and eval_split is None:
        raise DataError(f"Split {config.eval_split!r} not found; the dataset has {sorted(loaded)}.")
    return loaded[config.train_split], loaded[eval_split] if eval_split else None


def _load_dataset(*args, **kwargs) -> datasets.DatasetDict:
    try:
        return datasets.load_dataset(*args, **kwargs)
    except ValueError as error:
        match = re.search(r'Instruction "(\w+)" corresponds to no data', str(error))
        if match:
            raise DataError(f"The {match.group(1)} split is empty; check data.path and its files.") from error
        raise


def _standardise(dataset: datasets.Dataset, config: DataConfig, split: str) -> datasets.Dataset:
    """Rename the configured columns to ``image`` / ``label`` and drop the rest."""
    for role, column in (("image_column", config.image_column), ("label_column", config.label_column)):
        if column not in dataset.column_names:
            raise DataError(
                f"data.{role}={column!r} is not a column of the {split} split; its columns are {dataset.column_names}."
            )
    dataset = dataset.select_columns([config.image_column, config.label_column])
    renames = {config.image_column: "image", config.label_column: "label"}
    dataset = dataset.rename_columns({k: v for k, v in renames.items() if k != v})
    if not isinstance(dataset.features["image"], datasets.Image):
        dataset = dataset.cast_column("image", datasets.Image())
    return dataset


def _class_names(dataset: datasets.Dataset, config: DataConfig) -> list[str]:
    feature = dataset.features["label"]
    names = list(config.class_names) if config.class_names else getattr(feature, "names", None)
    if not names:
        raise DataError(
            f"Column {config.label_column!r} has no class names (it is {feature}); give data.class_names: [...] "
            "in the config, one name per label."
        )
    return [str(n) for n in names]


def _class_indices(wanted: list[str], class_names: list[str]) -> list[int]:
    import difflib

    unknown = [name for name in wanted if name not in class_names]
    if unknown:
        hints = {n: difflib.get_close_matches(n, class_names, n=1) for n in unknown}
        listed = ", ".join(f"{n!r}" + (f" (did you mean {hints[n][0]!r}?)" if hints[n] else "") for n in unknown)
        raise DataError(f"data.include_classes names classes the dataset does not have: {listed}. Its classes: {class_names}.")
    return [class_names.index(name) for name in wanted]


def _keep_classes(dataset: datasets.Dataset, keep: list[int], names: list[str]) -> datasets.Dataset:
    """Only the examples of the ``keep`` classes, relabelled ``0..len(keep)-1`` in that order."""
    new_label = {old: new for new, old in enumerate(keep)}
    dataset = dataset.filter(lambda labels: [label in new_label for label in labels], input_columns="label", batched=True)
    features = dataset.features.copy()
    features["label"] = datasets.ClassLabel(names=list(names))
    return dataset.map(
        lambda labels: {"label": [new_label[label] for label in labels]},
        input_columns="label",
        batched=True,
        features=features,
    )


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


def read_descriptions(path: str, class_names: list[str]) -> list[list[str]]:
    """A YAML/JSON mapping ``class name -> description or list of descriptions``."""
    import yaml

    mapping = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(mapping) - set(class_names))
    if unknown:
        raise DataError(f"{path}: descriptions for unknown classes {unknown}; the classes are {class_names}.")
    return [[mapping[n]] if isinstance(mapping.get(n), str) else list(mapping.get(n) or []) for n in class_names]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        _, dtype, ndim = struct.unpack(">HBB", handle.read(4))
        shape = struct.unpack(">" + "I" * ndim, handle.read(4 * ndim))
        return np.frombuffer(handle.read(), dtype=np.uint8).reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _fashion_mnist(config: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """Debian's ``dataset-fashion-mnist`` IDX files when installed, else the Hub copy."""
    directory = Path(config.path) if config.path else FASHION_MNIST_DIR
    files = {split: (_find(directory, f"{prefix}-images-idx3-ubyte"), _find(directory, f"{prefix}-labels-idx1-ubyte"))
             for split, prefix in (("train", "train"), ("test", "t10k"))}
    if not all(all(pair) for pair in files.values()):
        loaded = datasets.load_dataset(FASHION_MNIST_HUB)
        return loaded["train"], loaded["test"]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FASHION_MNIST_NAMES)})
    splits = []
    for images_path, labels_path in files.values():
        images, labels = _read_idx(images_path), _read_idx(labels_path)
        splits.append(
            datasets.Dataset.from_dict(
                {"image": [Image.fromarray(a) for a in images], "label": labels.tolist()},
                features=features,
            )
        )
    return splits[0], splits[1]
