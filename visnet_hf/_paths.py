"""Where visnet_hf keeps what it computes once (backbone features, unpacked text encoders), what a name that is
not a path here could be, and which files are images."""

from __future__ import annotations

import os
import re
from pathlib import Path

# The files an image folder's reader takes as images, by their suffix in lower case (HEIC and HEIF read where
# pillow-heif is installed).
# .jfif and .jpe: JPEG files as some browsers save them (datasets' image folders read them too)
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)


def cache_dir(kind: str) -> Path:
    """``$VISNET_CACHE/<kind>`` (default ``~/.cache/visnet_hf/<kind>``), read when asked, so a changed
    environment variable counts."""
    return Path(os.environ.get("VISNET_CACHE", Path.home() / ".cache" / "visnet_hf")) / kind


# What could name a repo on the Hub ("name" or "owner/name"); a path that is not here and is not one of these is a
# folder that is missing, which the Hub's own message about repo ids would hide.
_HUB_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def not_here(what: str, path: str | os.PathLike) -> str:
    """``"<what> '<path>' does not exist"``, and for a relative path where it was looked for (:func:`looked_in`)."""
    return f"{what} {str(path)!r} does not exist{looked_in(path)}"


def looked_in(path: str | os.PathLike) -> str:
    """For a relative path that is not there, where it was looked for (a run's saved config names its files as the run
    was given them, from the folder it was started in); nothing for an absolute one."""
    return "" if Path(path).is_absolute() else f" (a relative path is read from the working directory, {os.getcwd()})"


def missing_folder(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` is a path that is not here and could be no Hub id (``./model``, ``/data/enc``)."""
    text = str(name_or_path)
    return not Path(text).exists() and not _HUB_REPO_ID.fullmatch(text)
