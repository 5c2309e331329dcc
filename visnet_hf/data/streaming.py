"""Data that does not fit on one disk: ``datasets`` streaming, split across processes and workers.

``data.streaming: true`` reads the source as a ``datasets.IterableDataset`` (``hub``, ``parquet``,
``imagefolder``, ``webdataset``: tar shards, local or URLs) instead of converting it to a local Arrow
cache. Each process reads its own part (``datasets.distributed.split_dataset_by_node``: whole shards
per process when the shard count divides by the number of processes, as the ``datasets`` docs
recommend; every n-th example otherwise), DataLoader workers split it further by shards, a shuffle
buffer mixes each part (a new order every epoch), and the same decoding and transforms as the
map-style path run on each example.

A stream has no index to seed an example's augmentation with, so the seed is drawn from
``(seed, epoch, the example's bytes)``: the same image gets the same crop in the same epoch on any
process or worker, before and after a resume. The stream's position, the shuffle buffer's contents
and its random state are the loader's ``state_dict()`` (``torchdata``'s ``StatefulDataLoader``),
saved in every checkpoint, so a killed run continues with exactly the next example. (``datasets``'
own shuffle buffer is not used: its contents are not part of its state, so a resume would lose them.)
"""

from __future__ import annotations

import copy
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._paths import not_here
from ..errors import DataError
from .config import DataConfig
from .folders import image_folder
from .images import BadImageError, decode, decode_tensor
from .transforms import RecipeTransform, collate


@dataclass
class Streams:
    """The streamed splits of a run (each already this process's part) and the class names."""

    train: Any  # datasets.IterableDataset
    eval: Any
    class_names: list[str]
    eval_description: str
    synonyms: list[list[str]] | None = None


def load_streams(config: DataConfig, rank: int = 0, world_size: int = 1) -> Streams:
    """The train and eval streams of this process (its shards, in order), with ``image`` / ``label`` columns.

    Raises:
        DataError: no eval split (a held-out fraction cannot be drawn from a stream), no class names,
            a missing column or file.
    """
    from datasets.distributed import split_dataset_by_node

    streams = _open(config)
    train_split = "train" if config.source in ("parquet", "webdataset") else config.train_split
    eval_split = "eval" if config.source in ("parquet", "webdataset") else config.eval_split
    if eval_split not in streams:
        raise DataError(
            "data.streaming needs an eval split: give data.eval_path (parquet, webdataset) or data.eval_split "
            f"(hub, imagefolder, saved; the source has {sorted(streams)}). A held-out fraction cannot be drawn from a stream."
        )
    train, evaluation = streams[train_split], streams[eval_split]
    class_names = _stream_class_names(train, config)
    train, evaluation = (_standardise(split, config, name) for split, name in ((train, "train"), (evaluation, "eval")))
    if world_size > 1:  # each process its part: disjoint, and all of it together
        train = split_dataset_by_node(train, rank=rank, world_size=world_size)
        evaluation = split_dataset_by_node(evaluation, rank=rank, world_size=world_size)
    where = config.eval_path or config.eval_split
    return Streams(train, evaluation, class_names, f"the streamed eval split ({where})")


def _open(config: DataConfig) -> dict[str, Any]:
    import datasets

    if config.source in ("parquet", "webdataset"):
        given = {"train": config.path, "eval": config.eval_path}
        files = {k: ([v] if isinstance(v, str) else list(v)) for k, v in given.items() if v}
        for name in [f for group in files.values() for f in group]:
            if "://" not in name and not Path(name).exists():
                raise DataError(not_here(f"{config.source.capitalize()} file", name) + ".")
        return datasets.load_dataset(config.source, data_files=files, streaming=True)
    if config.source == "imagefolder":
        if not Path(str(config.path)).is_dir():
            raise DataError(not_here("Image folder", str(config.path)) + ".")
        by_class_folder = image_folder(Path(str(config.path)))  # paths: each image is read when it comes
        if by_class_folder is None:  # a metadata file says the labels
            return datasets.load_dataset("imagefolder", data_dir=config.path, streaming=True)
        return _streamed(by_class_folder)
    if config.source == "saved":
        from .loading import load_saved

        return _streamed(load_saved(str(config.path)))
    if config.source == "hub":
        try:
            return datasets.load_dataset(config.path, config.subset, streaming=True)
        except (ConnectionError, FileNotFoundError) as error:
            raise DataError(f"The Hub dataset {config.path!r} cannot be streamed ({error}).") from error
    raise DataError(f"data.streaming is for the hub, parquet, imagefolder, saved and webdataset sources, not {config.source!r}.")


def _streamed(loaded: Any) -> Any:
    """A local ``DatasetDict`` as streams (up to 64 shards each, for the processes and workers to split)."""
    import datasets

    return datasets.IterableDatasetDict(
        {split: rows.to_iterable_dataset(num_shards=min(len(rows), 64)) for split, rows in loaded.items()}
    )


def _stream_class_names(stream, config: DataConfig) -> list[str]:
    if config.class_names:
        return [str(n) for n in config.class_names]
    feature = (stream.features or {}).get(config.label_column)
    names = getattr(feature, "names", None)
    if not names:
        raise DataError(
            f"The stream's label column {config.label_column!r} has no class names (its feature is {feature}); "
            "give data.class_names: [...] in the config, one name per label."
        )
    return list(names)


def _standardise(stream, config: DataConfig, split: str):
    """Keep the configured image and label columns, as ``image`` and ``label``."""
    columns = stream.column_names
    if columns is not None:
        for role, column in (("image_column", config.image_column), ("label_column", config.label_column)):
            if column not in columns:
                raise DataError(
                    f"data.{role}={column!r} is not a column of the streamed {split} split; its columns are {columns}."
                )
    stream = stream.select_columns([config.image_column, config.label_column])
    renames = {config.image_column: "image", config.label_column: "label"}
    renames = {k: v for k, v in renames.items() if k != v}
    return stream.rename_columns(renames) if renames else stream


def example_seed(seed: int, epoch: int, image: Any) -> int:
    """A per-example seed from its content: the same on every process and worker, and after a resume."""
    data = image.get("bytes") if isinstance(image, dict) else None
    if data is None and isinstance(image, dict) and image.get("path"):
        data = str(image["path"]).encode()
    digest = zlib.crc32(data or b"")
    return ((seed * 1_000_003 + epoch) * 1_000_003 + digest) % 2**63


class StreamExamples(torch.utils.data.IterableDataset):
    """A stream's examples, mixed by a shuffle buffer, decoded and transformed as the map-style path
    does them. One torch ``IterableDataset``: DataLoader workers each read their own shards of it."""

    def __init__(
        self,
        stream,
        transform: Callable,
        seed: int = 0,
        on_bad_image: str = "stop",
        train: bool = True,
        buffer_size: int = 1,
        rank: int = 0,
    ):
        import datasets

        self.stream = stream.cast_column("image", datasets.Image(decode=False))
        self.transform = transform
        self.seed, self.rank = seed, rank
        self.epoch = 0
        self.on_bad_image = on_bad_image
        self.train = train
        self.buffer_size = buffer_size if train else 1
        self._tensor_route = isinstance(transform, RecipeTransform)
        self._buffer: list[dict[str, Any]] = []
        self._random = random.Random()
        self._restored: dict[str, Any] | None = None
        # datasets starts every later pass where a loaded state left it: a new epoch loads the start.
        self._start = copy.deepcopy(self.stream.state_dict())

    def set_epoch(self, epoch: int) -> None:
        """A new order of the stream and new augmentation draws (a resumed position is kept)."""
        if self._restored is None or self._restored["epoch"] != epoch:
            self._restored = None
        self.epoch = epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "stream": self.stream.state_dict(),
            "buffer": list(self._buffer),
            "random": self._random.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self._restored = state["epoch"], state

    def _rows(self) -> Iterator[dict[str, Any]]:
        """The stream's rows through the shuffle buffer, resuming a restored position exactly."""
        worker = torch.utils.data.get_worker_info()
        if self._restored is not None:
            self.stream.load_state_dict(self._restored["stream"])
            self._buffer = list(self._restored["buffer"])
            self._random.setstate(self._restored["random"])
            self._restored = None
        else:
            self.stream.load_state_dict(copy.deepcopy(self._start))
            self._buffer = []
            self._random.seed(repr((self.seed, self.epoch, self.rank, worker.id if worker else 0)))
        for row in self.stream:
            if len(self._buffer) < self.buffer_size:
                self._buffer.append(row)
                continue
            index = self._random.randrange(len(self._buffer))
            picked, self._buffer[index] = self._buffer[index], row
            yield picked
        while self._buffer:
            yield self._buffer.pop(self._random.randrange(len(self._buffer)))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        generator = torch.Generator()
        for row in self._rows():
            image = row["image"]
            where = f"An image of the streamed {'train' if self.train else 'eval'} split" + (
                f" ({image.get('path')})" if isinstance(image, dict) and image.get("path") else ""
            )
            try:
                decoded = (decode_tensor if self._tensor_route else decode)(image, where)
            except BadImageError as error:
                if self.on_bad_image == "stop":
                    raise BadImageError(f"{error}. Fix or remove it, or set data.on_bad_image: skip.") from None
                yield {"bad_images": [str(error)]}
                continue
            if self._tensor_route:
                generator.manual_seed(example_seed(self.seed, self.epoch, image) if self.train else 0)
                pixel_values = self.transform(decoded, generator)
            else:
                pixel_values = self.transform(decoded)
            yield {"pixel_values": pixel_values, "labels": int(row["label"])}


def stream_loader(examples: StreamExamples, batch_size: int, num_workers: int = 0, **loader_kwargs: Any):
    """A ``StatefulDataLoader`` (torchdata) over the examples: its ``state_dict`` is the stream's position,
    exact with or without workers."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    return StatefulDataLoader(examples, batch_size=batch_size, collate_fn=collate, num_workers=num_workers, **loader_kwargs)


__all__ = ["StreamExamples", "Streams", "example_seed", "load_streams", "stream_loader"]
