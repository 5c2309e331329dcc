"""Datasets through ``datasets``: Hub ids, local parquet, local imagefolder, Fashion-MNIST; transforms; class names."""

from .loading import DataError, Splits, load_splits, read_descriptions
from .transforms import RecipeTransform, TransformedDataset, build_transforms, collate

__all__ = [
    "DataError",
    "RecipeTransform",
    "Splits",
    "TransformedDataset",
    "build_transforms",
    "collate",
    "load_splits",
    "read_descriptions",
]
