"""Datasets through ``datasets``: Hub ids, local parquet, image folders, saved datasets, tables of image paths,
Fashion-MNIST, WebDataset shards; transforms; class names.

The data layer imports nothing from training: the training config composes :class:`DataConfig`.
"""

from ..errors import DataError
from .config import AugmentConfig, DataConfig, DataSource
from .loading import (
    EvalData,
    Splits,
    load_eval_data,
    load_splits,
    names_alike_note,
    per_class_sample,
    read_descriptions,
    relabelled,
    unused_names_note,
)
from .transforms import RecipeTransform, TransformedDataset, build_transforms, collate

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "DataError",
    "DataSource",
    "EvalData",
    "RecipeTransform",
    "Splits",
    "TransformedDataset",
    "build_transforms",
    "collate",
    "load_eval_data",
    "load_splits",
    "names_alike_note",
    "per_class_sample",
    "read_descriptions",
    "relabelled",
    "unused_names_note",
]
