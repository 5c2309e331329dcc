"""What the data section of a config says: where the images come from and how they are augmented.

These dataclasses belong to the data layer; the training config composes them, and ``visnet eval``
builds one for the file it scores.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .._choices import SOURCES, TABLE_SOURCES, Source
from .._paths import IMAGE_SUFFIXES


@dataclass(frozen=True)
class AugmentConfig:
    """The seed's augmentation (random crop with padding, horizontal flip) or timm's ``create_transform`` options."""

    random_crop_padding: int = 4
    hflip: bool = True
    timm: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.random_crop_padding < 0:
            raise ValueError(f"random_crop_padding={self.random_crop_padding} must be >= 0")


@dataclass(frozen=True)
class DataSource:
    """Where else the same data lies: the location fields of a data section, used as its ``fallback``."""

    source: Source = "hub"
    path: str | list[str] | None = None
    eval_path: str | list[str] | None = None
    subset: str | None = None
    train_split: str = "train"
    eval_split: str | None = None
    image_column: str = "image"
    label_column: str = "label"


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from.

    ``source``: ``auto`` (the default: what ``path`` is, :func:`detect_source`), ``parquet`` (``path``: a file
    or list of files), ``imagefolder`` (``path``: a folder of class folders, or of split folders of class folders),
    ``saved`` (``path``: a folder ``datasets``' ``save_to_disk`` wrote),
    ``hub`` (``path``: a Hub dataset id, ``subset``: its config name), ``webdataset`` (``path``: tar
    shards, local or URLs; columns named by file extension: ``image_column: jpg``, ``label_column: cls``),
    ``csv`` / ``json`` (``path``: a ``.csv`` / ``.tsv`` or ``.json`` / ``.jsonl`` table whose image column holds
    image paths, relative to the table's folder (or the working directory) or absolute, and whose label column holds class names or numbers;
    an absent ``image`` column is read from ``file_name`` where the table has one, as an image folder's ``metadata.csv``)
    or ``fashion_mnist`` (Debian's ``dataset-fashion-mnist`` files when present, the Hub otherwise).

    ``streaming: true`` reads the source as a stream instead of a local copy (see
    :mod:`visnet_hf.data.streaming`): each process reads its own shards, through a
    ``shuffle_buffer`` of examples; it needs an eval split (``eval_path`` / ``eval_split``) and a
    run counted in steps (``stages: [{steps: N}]``). ``include_classes`` trains on
    a subset of the classes (by name, in that order), e.g. to keep others for zero-shot evaluation.
    ``class_texts_column`` names a column with more names for each example's class (``synonyms``:
    ``"goldfish, Carassius auratus"``, split on ``class_texts_separator``); a VSENet embeds them with
    its templates next to the class name. ``class_synset_column`` names a column with each example's
    class's WordNet id (ImageNet's wnid, ``"n01443537"``): a VSENet then describes (``describe_classes``)
    and places in WordNet (``prototype_hierarchy``) that sense instead of guessing it from the name; unset, a
    column named ``wnid`` of WordNet ids only (ImageNet-derived data) is read as it.
    Without an eval split (``eval_path``: another file or folder of a local source, its classes matched to the
    training data's by name; or ``eval_split``) a stratified ``val_fraction`` of the training data is held out,
    with the run's seed.

    ``dev_fraction`` (with the run's seed) holds a stratified part of the *training* split out as
    the eval split: a development split on which to choose settings, while the test part (the eval
    split or the held-out ``val_fraction``) is neither trained nor scored on. The selection protocol
    (:mod:`visnet_hf.training.selection`) uses it; a final run leaves it at 0 and is scored on the test part.

    Loading: ``num_workers`` processes decode and augment; ``pin_memory`` (``null``: on with CUDA) pins
    batches so that the copy to the GPU does not block; ``persistent_workers`` and ``prefetch_factor``
    (batches each worker keeps ready) apply with workers.

    ``cache_features`` (with ``optim.freeze: backbone``) computes the frozen backbone's pooled features
    of every image once, without augmentation, and trains the heads on them: a linear probe or a
    VSENet's heads train in seconds instead of minutes. They are kept in ``feature_cache_dir``
    (default ``$VISNET_CACHE`` or ``~/.cache/visnet_hf/features``), keyed by the backbone's weights,
    its input size and the data, so later runs on the same data reuse them. With the model's
    test-time augmentation (``test_time_flip``, ``test_time_zoom``) they are the average over each
    image's views, as the model scores.

    ``fallback`` says where else the same data lies, used when this section's files do not exist or
    its Hub dataset cannot be reached; every other setting stays (the quickstart reads
    ``../shared/data`` when it is there and CIFAR-10 from the Hub otherwise).
    """

    source: Source = "auto"
    path: str | list[str] | None = None
    eval_path: str | list[str] | None = None
    subset: str | None = None
    train_split: str = "train"
    eval_split: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    class_names: list[str] | None = None
    include_classes: list[str] | None = None
    class_texts_column: str | None = None
    class_texts_separator: str = ","
    class_synset_column: str | None = None
    descriptions_file: str | None = None
    val_fraction: float = 0.1
    dev_fraction: float = 0.0
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    num_workers: int = 0
    pin_memory: bool | None = None
    persistent_workers: bool = True
    prefetch_factor: int | None = None
    on_bad_image: Literal["skip", "stop"] = "stop"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    streaming: bool = False
    shuffle_buffer: int = 1000
    cache_features: bool = False
    feature_cache_dir: str | None = None
    fallback: DataSource | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.source == "auto" and self.path is not None:
            try:
                object.__setattr__(self, "source", detect_source(self.path))
            except ValueError as error:
                if self.fallback is None:  # with one, the data may well be missing here and found there
                    problems.append(str(error))
        folder = self.path if isinstance(self.path, str) else None
        if self.source == "imagefolder" and folder and self.fallback is None and Path(folder).is_dir():
            problems += [problem for problem in [folder_problem(folder)] if problem]
        for name in ("class_names", "include_classes"):
            names = getattr(self, name)
            if isinstance(names, tuple):  # any sequence of names, kept as the list the field holds
                object.__setattr__(self, name, names := list(names))
            if names is not None and not (isinstance(names, list) and all(isinstance(n, str) and n.strip() for n in names)):
                quoted = [str(n) for n in names] if isinstance(names, list) else names
                problems.append(
                    f"{name}={names!r} must be a list of non-empty strings (a YAML file reads unquoted numbers as "
                    f"numbers: quote them, {name}: {quoted!r})"
                )
        if not 0 < self.val_fraction < 1:
            problems.append(f"val_fraction={self.val_fraction} must lie in (0, 1)")
        if not 0 <= self.dev_fraction < 1:
            problems.append(f"dev_fraction={self.dev_fraction} must lie in [0, 1)")
        if self.dev_fraction and self.streaming:
            problems.append("dev_fraction splits a local copy of the training data; it does not go with streaming")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.num_workers < 0:
            problems.append(f"num_workers={self.num_workers} must be >= 0")
        if self.shuffle_buffer < 1:
            problems.append(f"shuffle_buffer={self.shuffle_buffer} must be >= 1")
        if self.streaming and self.cache_features:
            problems.append("cache_features needs the whole dataset at hand; it does not go with streaming")
        if self.eval_path is not None and self.source in ("hub", "fashion_mnist"):
            problems.append(
                f"data.eval_path is another file or folder of a local source; a {self.source} source names its eval split "
                "with data.eval_split"
            )
        if self.streaming and self.eval_path is not None and self.source in ("imagefolder", "saved"):
            problems.append(
                f"a streamed {self.source} source takes its eval split from its own splits (data.eval_split: validation, "
                "for a validation/ folder beside train/ or a saved DatasetDict's validation split); drop data.eval_path, "
                "or data.streaming"
            )
        if self.streaming and self.source in TABLE_SOURCES:
            problems.append(
                f"a {self.source} table of image paths is read as it is, each image when it is needed; drop data.streaming"
            )
        if self.streaming and self.source == "fashion_mnist":
            problems.append(
                "fashion_mnist is read from local IDX files; streaming is for hub, parquet, imagefolder, saved and webdataset"
            )
        if self.prefetch_factor is not None and (self.prefetch_factor < 1 or self.num_workers == 0):
            problems.append(f"prefetch_factor={self.prefetch_factor} needs num_workers > 0 and must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))

    def with_fallback(self) -> DataConfig:
        """This section with its fallback's location in place of its own."""
        if self.fallback is None:
            raise ValueError("this data section has no fallback")
        return replace(self, **asdict(self.fallback), fallback=None)


def is_saved_dataset(folder: Path) -> bool:
    """Whether ``folder`` is what ``datasets``' ``save_to_disk`` writes (a ``Dataset`` or a ``DatasetDict``)."""
    return (folder / "dataset_dict.json").is_file() or all((folder / n).is_file() for n in ("dataset_info.json", "state.json"))


def detect_source(path: str | list[str]) -> Source:
    """The source ``path`` is: a folder of images (``imagefolder``), a folder ``save_to_disk`` wrote (``saved``),
    ``.parquet`` files, ``.tar`` shards
    (``webdataset``, local or URLs), a table of image paths and labels (``.csv`` / ``.tsv``: ``csv``; ``.json`` /
    ``.jsonl``: ``json``), or a Hub dataset id (``owner/name``, where no such local path exists).

    Raises:
        ValueError: a path that does not exist and is no Hub id, or a file of another kind, saying what to give.
    """
    first = str(path[0] if isinstance(path, list) and path else path)
    suffix = Path(first.split("?")[0]).suffix.lower()
    if "://" in first:
        return "webdataset" if suffix == ".tar" or ".tar}" in first else "parquet"
    local = Path(first)
    if local.is_dir():
        return "saved" if is_saved_dataset(local) else "imagefolder"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".tar":
        return "webdataset"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".json", ".jsonl"):
        return "json"
    if local.exists():
        archive = " (an archive: unpack it and give the folder it holds)" if first.lower().endswith(ARCHIVE_SUFFIXES) else ""
        raise ValueError(
            f"data.path={first!r} is a file visnet_hf does not read as a dataset{archive}; give a folder with one folder of "
            "images per class, a .parquet file, a .csv or .jsonl file of image paths and labels, .tar shards, or a Hub "
            "dataset id"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if HUB_ID.fullmatch(first) and not offline:  # offline, "owner/name" that is not here is a local path mistyped
        return "hub"
    hub_offline = (
        " (with HF_HUB_OFFLINE set, an owner/name that is not a path here is not looked up on the Hub: unset it, or "
        "give --source hub to read the copy in the local Hugging Face cache)"
        if HUB_ID.fullmatch(first)
        else ""
    )
    raise ValueError(
        f"data.path={first!r} does not exist{hub_offline}; give a folder with one folder of images per class "
        "(my_photos/cat/*.jpg, my_photos/dog/*.jpg), a .parquet file, a .csv or .jsonl file of image paths and labels, "
        ".tar shards, or a Hub dataset id (owner/name)"
    )


def folder_problem(path: str) -> str | None:
    """Why a folder is not images in class folders (``path/cat/*.jpg``, or split folders of those) nor images with
    a metadata file that names their labels (``metadata.csv``, as ``datasets``' ImageFolder reads it), or ``None``.
    Stops at the first image in a class folder, so a folder of a million images costs no more than a small one
    (the folder's own files are listed first, so images loose beside the class folders are seen before)."""
    from .folders import METADATA_FILES, walk_images  # the image folder reader's own walk: hidden files are no images

    root, loose = Path(path), None
    layout = f"one folder per class: {path}/cat/*.jpg, {path}/dog/*.jpg"
    for directory, files, images in walk_images(root):
        if METADATA_FILES & set(files):  # a metadata.csv says the labels (datasets' ImageFolder), not the folders
            return None
        if Path(directory) == root:
            loose = images[0] if images else None
        elif not images:
            continue
        elif loose is None:
            return None
        else:  # datasets reads no labels at all when some images lie beside the class folders
            return (
                f"data.path={path!r} holds images beside its class folders ({loose}), which would leave every image "
                f"without a label; move them into their class folders ({layout}) or out of {path}"
            )
    if loose:
        return f"data.path={path!r} holds images but no class folders, so they have no labels; move them into {layout}"
    return f"data.path={path!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put them in {layout}"


# Archives of photos as they are downloaded or shared; .tar is read as WebDataset shards.
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".7z", ".rar")

# A Hub dataset id: "owner/name", letters, digits, "-", "_", "." (no path separators beyond the one).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")

__all__ = ["SOURCES", "AugmentConfig", "DataConfig", "DataSource", "detect_source"]
