"""Datasets through ``datasets``: Hub ids, local parquet, local imagefolder, Fashion-MNIST; transforms; class names."""

from .loading import DataError, Splits, load_splits, read_descriptions
from .transforms import build_transforms, with_transform

__all__ = ["DataError", "Splits", "build_transforms", "load_splits", "read_descriptions", "with_transform"]
