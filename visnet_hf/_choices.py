"""The choices that configs and the ``visnet`` command share, in a module light enough for ``visnet --help``."""

from __future__ import annotations

from typing import Literal, get_args

Source = Literal["auto", "parquet", "imagefolder", "hub", "fashion_mnist", "webdataset"]
SOURCES = get_args(Source)  # auto: what data.path is (a folder, a .parquet file, .tar shards, a Hub id)
ZeroShotHead = Literal["semantic", "conse", "both"]
ZERO_SHOT_HEADS = get_args(ZeroShotHead)
