"""A folder of class folders as a ``datasets`` dataset, read as torchvision's ``ImageFolder`` reads one: the class is
the folder under the root (or under a split folder: ``train/``, ``validation/``, ...), the images lie anywhere beneath
it (``n01443537/images/*.JPEG``, as Tiny-ImageNet's training images do).

``datasets``' own imagefolder names each image by the folder it lies in, and drops every label when images lie at
different depths or in one folder name only (Tiny-ImageNet's ``images``, a single class). It still reads a folder
with a ``metadata.csv`` (or ``.jsonl``, ``.parquet``) file, which says the labels itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import datasets
from datasets.data_files import SPLIT_KEYWORDS

from .._paths import IMAGE_SUFFIXES
from ..errors import DataError

SPLIT_FOLDERS = {keyword: str(split) for split, keywords in SPLIT_KEYWORDS.items() for keyword in keywords}
METADATA_FILES = frozenset({"metadata.csv", "metadata.jsonl", "metadata.parquet"})


def image_folder(root: Path) -> datasets.DatasetDict | None:
    """Each split's images (a ``datasets.Image`` column of paths) and their classes (a ``ClassLabel`` of the class
    folders' names, sorted), rows in the order of their paths; None for a folder with a metadata file.

    Raises:
        DataError: images beside the class folders of a split folder.
    """
    splits = split_folders(root)
    rows: dict[str, list[tuple[str, str]]] = {}
    for split, split_root in splits or [("train", root)]:
        split_root = Path(os.path.abspath(split_root))  # absolute paths, as datasets' imagefolder gives them
        for directory, files, images in walk_images(split_root):
            if METADATA_FILES & set(files):
                return None
            if not images:
                continue
            relative = Path(directory).relative_to(split_root)
            if not relative.parts:
                raise DataError(
                    f"{split_root} holds images beside its class folders ({images[0]}), which would leave them without a "
                    f"class; move them into their class folders ({split_root}/cat/*.jpg, {split_root}/dog/*.jpg)."
                )
            rows.setdefault(split, []).extend((os.path.join(directory, name), relative.parts[0]) for name in images)
    if not rows:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put them in one folder per class.")
    names = sorted({name for split_rows in rows.values() for _, name in split_rows})
    number = {name: label for label, name in enumerate(names)}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    loaded = {}
    for split, split_rows in rows.items():
        split_rows.sort()
        paths = [path for path, _ in split_rows]
        labels = [number[name] for _, name in split_rows]
        table = datasets.Dataset.from_dict({"image": paths, "label": labels}, features=features).data
        loaded[split] = datasets.Dataset(table, datasets.DatasetInfo(features=features), fingerprint=_fingerprint(paths, labels))
    return datasets.DatasetDict(loaded)


def split_folders(root: Path) -> list[tuple[str, Path]]:
    """``[(split, folder), ...]`` when ``root``'s folders are split folders (``train/``, ``val/``, ... with class
    folders in them), else ``[]``: a folder named as a split beside other class folders is a class (CIFAR-100 has
    a class ``train``), and so are folders named as splits that each hold their images themselves."""
    folders = class_folders(root)
    if not folders or any(folder.name.lower() not in SPLIT_FOLDERS for folder in folders):
        return []
    if all(_holds_images(folder) for folder in folders):
        return []
    return [(SPLIT_FOLDERS[folder.name.lower()], folder) for folder in folders]


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` has images in it (not only in its subfolders)."""
    with os.scandir(folder) as entries:
        return any(
            entry.is_file() and not _hidden(entry.name) and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES for entry in entries
        )


def class_folders(root: Path) -> list[Path]:
    """The folders in ``root``, sorted, hidden ones left out."""
    return sorted(child for child in root.iterdir() if child.is_dir() and not _hidden(child.name))


def images_in(folder: Path) -> list[Path]:
    """The images at any depth in ``folder``, sorted, as :func:`image_folder` reads them (hidden files left out)."""
    return sorted(Path(directory, name) for directory, _, images in walk_images(folder) for name in images)


def has_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image at any depth (stops at the first folder with one)."""
    return any(images for _, _, images in walk_images(folder))


def has_metadata(root: Path) -> bool:
    """Whether a folder holds a metadata file (``metadata.csv``, ...) that names its images' labels, as ``datasets``'
    ImageFolder reads it, rather than class folders."""
    return any(METADATA_FILES & set(files) for _, files, _ in walk_images(root))


def walk_images(folder: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` with hidden folders and files left out: each folder, its files, and its images (sorted). A linked
    folder is read as torchvision's ``ImageFolder`` reads it (a class folder may be a link), but not one that links
    back to a folder it lies in, which would be read without end."""
    for directory, folders, files in os.walk(folder, followlinks=True):
        here = os.path.realpath(directory)
        folders[:] = [name for name in folders if not _hidden(name) and not _links_back(os.path.join(directory, name), here)]
        files = [name for name in files if not _hidden(name)]
        yield directory, files, sorted(name for name in files if Path(name).suffix.lower() in IMAGE_SUFFIXES)


def _links_back(child: str, here: str) -> bool:
    """Whether the folder ``child`` is, through a link, the folder ``here`` (its parent, resolved) or one above it."""
    target = os.path.realpath(child)
    return here == target or here.startswith(target.rstrip(os.sep) + os.sep)


def _hidden(name: str) -> bool:
    """What ``datasets`` leaves out of a folder too: hidden files and folders (``.DS_Store``, macOS's ``._IMG.jpg``)
    and ``__MACOSX``-style ones."""
    return name.startswith((".", "__"))


def _fingerprint(paths: list[str], labels: list[int]) -> str:
    """What the rows are: their files (path, size, modification time) and classes, so that a feature cache of an
    earlier version of the folder is not taken for this one."""
    digest = hashlib.sha256()
    for path, label in zip(paths, labels, strict=True):
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n".encode())
    return digest.hexdigest()[:32]


__all__ = ["class_folders", "has_images", "image_folder", "images_in", "split_folders", "walk_images"]
