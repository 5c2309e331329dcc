"""Decoding images from datasets: every PIL mode to RGB, and unreadable files named, not hidden."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from ..errors import VisnetError

try:  # HEIC / HEIF photos (what phones save): PIL reads them through pillow-heif's plugin, where it is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    _HEIF_READER = True
except ImportError:
    _HEIF_READER = False

try:  # TorchCodec's image decoders supersede torchvision.io's (deprecated since torchvision 0.29)
    from torchcodec.decoders import decode_jpeg as _torchcodec_decode_jpeg
except Exception:  # not installed, or built for another torch
    _torchcodec_decode_jpeg = None  # type: ignore[assignment]


def _decode_jpeg(data: torch.Tensor) -> torch.Tensor:
    if _torchcodec_decode_jpeg is not None:
        decoded = _torchcodec_decode_jpeg(data)
        return decoded if isinstance(decoded, torch.Tensor) else decoded[0]
    import torchvision.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torchvision.io.decode_jpeg(data, apply_exif_orientation=True)


_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}


class BadImageError(VisnetError, ValueError):
    """An image that cannot be decoded; the message names it and what to do."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB.

    Greyscale and palette images are expanded, transparent ones composited on white (dropping the
    alpha channel would show whatever colour the transparent pixels happen to hold), and 16-bit,
    32-bit integer and float images are scaled to 0-255 instead of being clipped.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode in _SIXTEEN_BIT:
            array = array / 257.0
        elif image.mode == "I":
            array = array / 257.0 if array.max(initial=0) > 255 else array
        elif array.max(initial=0) <= 1.0:
            array = array * 255.0
        return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode(value: Any, where: str, fits: tuple[int, int] | None = None) -> Image.Image:
    """Decode an undecoded ``datasets.Image`` value (``{"bytes", "path"}``), a path, an image file's bytes or a PIL
    image, fully.

    ``fits``: the ``(height, width)`` the image will be resized to; a JPEG many times larger is decoded at a
    reduced scale (:func:`_draft`).

    Raises:
        BadImageError: naming ``where`` (index and file) and the cause.
    """
    try:
        if isinstance(value, Image.Image):
            image = value
        elif isinstance(value, dict):
            source = io.BytesIO(value["bytes"]) if value.get("bytes") else value.get("path")
            if source is None:
                raise BadImageError(f"{where} has neither bytes nor a path")
            image = Image.open(_in_memory(source))
        else:
            image = Image.open(_in_memory(value))
        if fits is not None:
            _draft(image, fits)
        image.load()  # decode everything now: a truncated file fails here, not halfway through a batch
        return to_rgb(upright(image))
    except BadImageError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        if not _HEIF_READER and _is_heif(value):
            raise BadImageError(
                f"{where} is a HEIC/HEIF photo (as phones save them), which needs pillow-heif: pip install "
                "'visnet_hf[heic]' (or pillow-heif), or convert the photo to JPEG."
            ) from error
        if _is_remote(value) and not isinstance(error, UnidentifiedImageError):  # a URL that gave no bytes
            raise BadImageError(f"{where} cannot be downloaded: {type(error).__name__}: {error}") from error
        if isinstance(error, FileNotFoundError):  # nothing to decode: the path is wrong
            named = "" if str(error.filename) in where else f" ({error.filename})"
            raise BadImageError(f"{where} is not there: no such file{named}") from error
        if isinstance(error, UnidentifiedImageError):  # PIL's message names only the in-memory copy it read
            raise BadImageError(f"{where} cannot be decoded: it is in no image format PIL reads") from error
        raise BadImageError(f"{where} cannot be decoded: {type(error).__name__}: {error}") from error


# A photo at least this many times larger than it will be resized to is first reduced in whole steps (a box average,
# or libjpeg's DCT scaling) to no less than this many times that size: Pillow's ``reducing_gap``, "indistinguishable
# from fair resampling in most cases" in its documentation's words.
REDUCING_GAP = 3.0


def _draft(image: Image.Image, fits: tuple[int, int]) -> None:
    """Before ``load``: have libjpeg decode a JPEG at 1/2, 1/4 or 1/8 scale (Pillow's ``draft``) when that leaves
    both sides at least :data:`REDUCING_GAP` times the larger of ``fits``, either way up (the EXIF orientation is
    applied after). A phone's 12 megapixels for a 128-pixel model: a quarter of the time, decoding and resizing,
    for pixels within a tenth of a grey level of the full decode's on average once resized. A phone's MPO file (a
    JPEG with more pictures after it) is a JPEG here too."""
    side = _draft_side(image.size, fits)
    if isinstance(image, JpegImagePlugin.JpegImageFile) and side is not None:
        image.draft(image.mode, (side, side))


def _draft_side(size: tuple[int, int], fits: tuple[int, int]) -> int | None:
    """The least side a reduced decode keeps, where at least a halving keeps it; else None."""
    side = int(REDUCING_GAP * max(fits))
    return side if min(size) >= 2 * side else None


def _drafts(data: bytes, fits: tuple[int, int] | None) -> bool:
    """Whether :func:`decode` would decode these JPEG bytes at a reduced scale (only their header is read)."""
    if fits is None:
        return False
    size = _jpeg_size(data)
    return size is not None and _draft_side(size, fits) is not None


# Start-of-frame markers: each holds the image's height and width (0xC4, 0xC8 and 0xCC are other segments).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of JPEG bytes from their frame header, stepping from segment to segment (a few
    microseconds, where opening them with PIL costs as much as decoding a small image); None where the header
    cannot be read (the decode then says why)."""
    position = 2
    while position + 9 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker in _SOF_MARKERS:
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            return width, height
        if marker == 0xFF:  # a fill byte before the marker
            position += 1
            continue
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


def upright(image: Image.Image) -> Image.Image:
    """The image as viewers show it: turned by its EXIF orientation (a phone's portrait photo is stored sideways and
    tagged), as ``datasets``, transformers' pipelines and TorchCodec's decoder turn it, so that an image reads the
    same in training, in ``visnet predict`` and in a pipeline."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


def _in_memory(source: Any) -> Any:
    """A path's bytes, read and closed (PIL keeps the file of an image that may hold several frames, a GIF or a
    TIFF, open after ``load``, one handle per photo until the garbage collector finds it), or bytes given, as a file."""
    if isinstance(source, (bytes, bytearray)):  # an encoded file's bytes, as read or downloaded
        return io.BytesIO(source)
    return io.BytesIO(_file_bytes(source)) if isinstance(source, (str, os.PathLike)) else source


def _file_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes: a local path's, or a remote one's (a URL in a table of photos, a streamed Hub dataset's
    ``hf://`` or ``zip://`` path) through ``datasets``' opener, as ``datasets.Image`` reads it."""
    if _is_remote(path):
        from datasets.utils.file_utils import xopen

        with xopen(str(path), "rb") as file:
            return file.read()
    return Path(path).read_bytes()


def _is_remote(value: Any) -> bool:
    """Whether an image value names a file by URL (``scheme://...``) rather than a local path."""
    path = value.get("path") if isinstance(value, dict) and not value.get("bytes") else value
    return isinstance(path, str) and "://" in path


HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")


def _is_heif(value: Any) -> bool:
    """Whether an image's bytes open as a HEIF file does: an ISO ``ftyp`` box of a HEIF brand."""
    head = (_encoded_bytes(value) or b"")[:12]
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def decode_tensor(value: Any, where: str, fits: tuple[int, int] | None = None) -> torch.Tensor:
    """As :func:`decode`, but an RGB ``uint8`` tensor of shape ``(3, H, W)``; ``fits`` as there (a JPEG it
    reduces goes through :func:`decode`).

    Whole greyscale or colour JPEG bytes (most photo datasets) go through TorchCodec's libjpeg
    decoder (torchvision's where TorchCodec is missing): the same pixels as PIL in a third of the
    time, without building a PIL image. Anything else, including a JPEG that libjpeg rejects
    (truncated, CMYK, ...), goes through :func:`decode`, which converts it or raises the named
    :class:`BadImageError`.
    """
    data = _encoded_bytes(value)
    if data is not None and data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9" and not _drafts(data, fits):
        try:
            image = _decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        except RuntimeError:
            image = None
        if image is not None and image.shape[0] in (1, 3):
            return image.expand(3, -1, -1) if image.shape[0] == 1 else image
    source = value if data is None else {"bytes": data}  # a file already read is not read again
    return torch.from_numpy(np.array(decode(source, where, fits))).permute(2, 0, 1)


def _encoded_bytes(value: Any) -> bytes | None:
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        value = value.get("path")
    if isinstance(value, (str, Path)):
        try:
            return _file_bytes(value)
        except OSError:
            return None  # decode() names the problem
    return None
