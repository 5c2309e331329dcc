"""The image processor that travels with every saved model.

A timm backbone's data config (input size, mean, std, interpolation, crop) is turned into
transformers' ``BitImageProcessor`` (resize the shortest edge, centre-crop, rescale, normalise),
which reproduces timm's eval transform, saves as ``preprocessor_config.json`` and is what
``AutoImageProcessor`` and ``pipeline("image-classification")`` load.

A photo many times larger than the processor's size (a phone's 12 megapixels for a 128-pixel model) is first
resized by :func:`presized`, in Pillow's two steps, wherever visnet_hf hands a photo to the processor itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image
from transformers import BitImageProcessor
from transformers.image_transforms import get_resize_output_image_size
from transformers.image_utils import ChannelDimension, PILImageResampling

from .data.images import REDUCING_GAP

_RESAMPLING = {
    "nearest": PILImageResampling.NEAREST,
    "bilinear": PILImageResampling.BILINEAR,
    "bicubic": PILImageResampling.BICUBIC,
    "lanczos": PILImageResampling.LANCZOS,
    "box": PILImageResampling.BOX,
    "hamming": PILImageResampling.HAMMING,
}


def image_processor_from_data_config(data_config: dict[str, Any]) -> BitImageProcessor:
    """Build the eval-time image processor that matches ``timm.data.create_transform`` for a data config."""
    _, height, width = data_config["input_size"]
    crop_pct = float(data_config.get("crop_pct") or 1.0)
    crop_mode = data_config.get("crop_mode", "center")
    if crop_mode != "center":
        raise ValueError(f"Unsupported crop_mode {crop_mode!r} in the data config; only 'center' is supported.")
    resample = _RESAMPLING.get(str(data_config.get("interpolation", "bilinear")), PILImageResampling.BILINEAR)
    if height == width:
        size = {"shortest_edge": math.floor(height / crop_pct)}
    else:
        size = {"height": math.floor(height / crop_pct), "width": math.floor(width / crop_pct)}
    return BitImageProcessor(
        do_resize=True,
        size=size,
        resample=resample,
        do_center_crop=True,
        crop_size={"height": height, "width": width},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(data_config["mean"]),
        image_std=list(data_config["std"]),
        do_convert_rgb=True,
    )


def presized(image: Image.Image, processor: Any) -> Image.Image:
    """``image`` already at the size ``processor`` resizes it to, when it is at least :data:`REDUCING_GAP` times
    larger each way, resized in Pillow's two steps; else ``image`` itself.

    The processor resizes a 12-megapixel photo in one step, at a quarter of a second on a CPU core (most of the time
    ``visnet extend`` took for a hundred phone photos); in two steps it takes a twentieth, and the model reads pixels
    within about a thousandth of their range on average of the one-step ones (``tests/models/test_common.py``).
    """
    target = _resized_size(image, processor)
    if target is None or image.height < REDUCING_GAP * target[0] or image.width < REDUCING_GAP * target[1]:
        return image
    height, width = target
    return image.resize((width, height), resample=Image.Resampling(int(processor.resample)), reducing_gap=REDUCING_GAP)


def _resized_size(image: Image.Image, processor: Any) -> tuple[int, int] | None:
    """``(height, width)`` the processor resizes ``image`` to; None where it does not resize or sizes otherwise."""
    size = getattr(processor, "size", None)
    if not getattr(processor, "do_resize", False) or size is None:
        return None
    if size.get("shortest_edge") and not size.get("longest_edge"):
        shape_only = np.broadcast_to(np.zeros((), np.uint8), (image.height, image.width, 3))  # no copy of the photo
        height, width = get_resize_output_image_size(
            shape_only, size=size["shortest_edge"], default_to_square=False, input_data_format=ChannelDimension.LAST
        )
        return int(height), int(width)
    if size.get("height") and size.get("width"):
        return int(size["height"]), int(size["width"])
    return None
