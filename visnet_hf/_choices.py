"""The choices that configs and the ``visnet`` command share, in a module light enough for ``visnet --help``."""

from __future__ import annotations

from typing import Literal, get_args

Source = Literal["auto", "parquet", "imagefolder", "saved", "hub", "fashion_mnist", "webdataset", "csv", "json"]
SOURCES = get_args(Source)  # auto: what data.path is (a folder, a .parquet/.csv/.jsonl file, .tar shards, a Hub id)
FILE_SOURCES = ("parquet", "webdataset", "csv", "json")  # read from data files (data.path, data.eval_path)
LOCAL_SOURCES = (*FILE_SOURCES, "imagefolder", "saved")  # data.eval_path: another file or folder of the same kind
TABLE_SOURCES = ("csv", "json")  # a table of image paths (relative to the table's folder) and labels
ZeroShotHead = Literal["semantic", "conse", "both"]
ZERO_SHOT_HEADS = get_args(ZeroShotHead)
