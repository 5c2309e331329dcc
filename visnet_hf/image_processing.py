"""The image processor that travels with every saved model.

A timm backbone's data config (input size, mean, std, interpolation, crop) is turned into
transformers' ``BitImageProcessor`` (resize the shortest edge, centre-crop, rescale, normalise),
which reproduces timm's eval transform, saves as ``preprocessor_config.json`` and is what
``AutoImageProcessor`` and ``pipeline("image-classification")`` load.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import BitImageProcessor
from transformers.image_utils import PILImageResampling

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
