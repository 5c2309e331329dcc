"""Training the heads of a frozen backbone on features computed once (``data.cache_features``).

A frozen backbone in eval mode maps an image to the same pooled features every epoch, so they can be
computed once (with the eval transform: no augmentation) and the heads trained on them, in seconds
instead of minutes. The features of every image of a data source are kept on disk, keyed by the
backbone's weights, its data config and the source, so that later runs on the same data (another
fold, another candidate setting) reuse them. A model with test-time augmentation (``test_time_flip``,
``test_time_zoom``) caches (and trains its heads on) the average over each image's views, the features
it scores at eval time.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import weakref
from pathlib import Path
from typing import Any, ClassVar

import datasets
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .._paths import cache_dir
from .._torch import eval_mode
from ..errors import ConfigError
from .transforms import TransformedDataset, collate


def check_cacheable(model: torch.nn.Module, freeze: str, constraints: list) -> None:
    """The conditions under which cached features train the model exactly as images would.

    Raises:
        ConfigError: listing each condition that does not hold.
    """
    problems = []
    if freeze != "backbone":
        problems.append("data.cache_features needs optim.freeze: backbone (a backbone that trains changes its features)")
    if not getattr(model, "accepts_image_features", False):
        problems.append(f"{type(model).__name__} with this head cannot take pooled features (its head reads the feature map)")
    for constraint in constraints:
        if getattr(constraint, "uses_images", False):
            problems.append(f"constraint {constraint.name!r} transforms the images, which cached features do not have")
    if problems:
        raise ConfigError("data.cache_features cannot be used: " + "; ".join(problems) + ".")


_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def backbone_digest(model: torch.nn.Module) -> str:
    """A hash of the backbone's weights and buffers: features of other weights are other features.

    Remembered for the model with its tensors' version counters (which every in-place change bumps),
    so asking again for an unchanged backbone costs nothing."""
    versions = tuple(t._version for t in model.backbone.state_dict().values())
    known = _DIGESTS.get(model)
    if known is None or known[0] != versions:
        known = _DIGESTS[model] = (versions, _hash_state(model))
    return known[1]


def _hash_state(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class FeatureCache:
    """Pooled backbone features of every image of a data source, computed once and kept on disk
    (and, once read, in memory for the rest of the process)."""

    _read: ClassVar[dict[Path, dict[str, torch.Tensor]]] = {}

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else cache_dir("features")

    def key(self, model: torch.nn.Module, source: datasets.Dataset) -> str:
        described = {
            "backbone": model.config.backbone,
            "weights": backbone_digest(model),
            "data_config": model.config.data_config,
            "source": source._fingerprint,
            "rows": len(source),
        }
        # Only when set, so that caches of features without test-time augmentation stay valid.
        if getattr(model.config, "test_time_flip", False):
            described["test_time_flip"] = True
        if getattr(model.config, "test_time_zoom", None) is not None:
            described["test_time_zoom"] = model.config.test_time_zoom
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]

    def features(self, model, source: datasets.Dataset, transform, accelerator, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """``{"features": (rows, num_features), "readable": (rows,) bool}`` for ``source``, from disk when there.

        The main process computes and writes them; the others read them afterwards. ``accelerator``
        may be an ``Accelerator`` or a :class:`OneProcess`.
        """
        path = self.directory / f"{self.key(model, source)}.safetensors"
        if path not in self._read:
            with accelerator.main_process_first():
                if not path.exists() and accelerator.is_main_process:
                    self._compute(model, source, transform, accelerator, batch_size, path)
            self._read[path] = load_file(path)
        return self._read[path]

    @torch.no_grad()
    def _compute(self, model, source, transform, accelerator, batch_size: int, path: Path) -> None:
        dataset = TransformedDataset(source, transform, on_bad_image="skip", substitute=False, split="cached", with_indices=True)
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
        features = torch.zeros(len(source), model.config.num_features)
        readable = torch.zeros(len(source), dtype=torch.bool)
        views = model.test_time_views  # each image, its zoomed crop, their mirrors
        accelerator.print(
            f"Computing the frozen backbone's features of {len(source)} images ({views} view{'s' * (views > 1)} each), "
            f"once: later runs on the same images and backbone read them from {self.directory}."
        )
        batches = tqdm(loader, desc="Backbone features", unit="batch", disable=None, leave=False)  # None: on a terminal
        with eval_mode(model):
            pooled_features = _pooled_features_fn(model, len(source) * views * _pixels(model.config.data_config))
            for batch in batches:
                if len(batch["labels"]) == 0:
                    continue
                pixels = batch["pixel_values"].to(accelerator.device)
                count = len(pixels)
                if count < batch_size:  # one shape for every batch: a compiled backbone compiles once
                    pixels = torch.cat([pixels, pixels[-1:].expand(batch_size - count, *pixels.shape[1:])])
                features[batch["indices"]] = pooled_features(pixels)[:count].float().cpu()
                readable[batch["indices"]] = True
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        save_file({"features": features, "readable": readable}, str(temporary))
        temporary.rename(path)


# Compiling the backbone costs about a minute on a 2-core CPU and runs it about 2.5 times faster
# (EfficientNet-Lite0 at 128 px): it pays from a few thousand 128-px images on.
COMPILE_FROM_PIXELS = 4096 * 128 * 128


def _pixels(data_config: dict) -> int:
    _, height, width = data_config["input_size"]
    return height * width


def _pooled_features_fn(model, total_pixels: int):
    """The pooled features the model's heads read in eval mode (``backbone_features``: with test-time
    augmentation, averaged over each image's views), compiled when the extraction is large
    enough to pay for it (eager when the compiler is not available)."""

    def pooled(pixels: torch.Tensor) -> torch.Tensor:
        return model.backbone_features(pixels)[1]

    if total_pixels < COMPILE_FROM_PIXELS:
        return pooled
    compiled = torch.compile(pooled, dynamic=False)

    def pooled_or_eager(pixels: torch.Tensor) -> torch.Tensor:
        nonlocal compiled
        try:
            return compiled(pixels)
        except Exception:  # no C compiler, an unsupported op...: the features are the same, only slower
            compiled = pooled
            return pooled(pixels)

    return pooled_or_eager


class OneProcess:
    """What :meth:`FeatureCache.features` needs of an accelerator, for code that runs in one process."""

    is_main_process = True

    def __init__(self, device: torch.device):
        self.device = device

    @staticmethod
    def print(*args: Any) -> None:
        builtins.print(*args)

    def main_process_first(self):
        return contextlib.nullcontext()


class FeatureDataset(Dataset):
    """A split as ``image_features`` / ``labels`` pairs, looked up in its source's cached features.

    Images that could not be read (``data.on_bad_image: skip``) are left out, and listed in ``bad``.
    """

    def __init__(self, split: datasets.Dataset, cached: dict[str, torch.Tensor]):
        rows = torch.as_tensor(split["source_index"][:], dtype=torch.long)
        labels = torch.as_tensor(split["label"][:], dtype=torch.long)
        keep = cached["readable"][rows]
        self.bad = int((~keep).sum())
        self.features = cached["features"][rows[keep]]
        self.labels = labels[keep]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image_features": self.features[index], "labels": self.labels[index]}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return {"image_features": self.features[indices], "labels": self.labels[indices]}

    def set_epoch(self, epoch: int) -> None:
        """Features need no per-epoch seed (no augmentation)."""


def collate_features(batch: Any) -> dict[str, torch.Tensor]:
    """``__getitems__`` already returns the batch; single examples are stacked."""
    if isinstance(batch, dict):
        return batch
    return {key: torch.stack([example[key] for example in batch]) for key in batch[0]}
