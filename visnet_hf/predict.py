"""Predicting with a saved model: what ``visnet predict``, ``visnet zero-shot`` and the page (``visnet app``) share.

One path from an image file to the top-k labels: the same image suffixes, the same parsing of typed
class names, the same switch to new names for a VSENet (scored through a
:class:`~visnet_hf.zero_shot.Vocabulary`, so the model itself is never changed), and the same errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ._paths import IMAGE_SUFFIXES as IMAGE_FILE_SUFFIXES
from .data.folders import images_in
from .data.images import decode
from .errors import ConfigError, DataError, VisnetError
from .hub.loading import load_model
from .image_processing import presized
from .models import is_vsenet
from .zero_shot import Vocabulary

IMAGE_SUFFIXES = tuple(sorted(IMAGE_FILE_SUFFIXES))  # what a training folder's images may be, HEIC included
MAX_NAMES = 1000


def parse_names(text: str | None, known: Sequence[str] = ()) -> list[str]:
    """Class names as a person types them: comma- or line-separated, blanks dropped; a line that is one of the
    ``known`` names is that name, commas and all (Hugging Face's ImageNet names: "tench, Tinca tinca").

    Raises:
        ConfigError: no name, more than :data:`MAX_NAMES`, or a name given twice (the message says which).
    """
    whole = set(known)
    names = [
        name.strip()
        for line in (text or "").split("\n")
        for name in ([line] if line.strip() in whole else line.split(","))
        if name.strip()
    ]
    if not names:
        raise ConfigError('Give at least one class name (comma- or line-separated), e.g. "zebra, lorry, cat".')
    if len(names) > MAX_NAMES:
        raise ConfigError(f"{len(names)} names is too many; give at most {MAX_NAMES}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"Each name once, please: {', '.join(repeated)} {'is' if len(repeated) == 1 else 'are'} repeated.")
    return names


def image_files(paths: Sequence[str | Path]) -> list[Path | str]:
    """The image files among ``paths`` and in the folders among them (recursively, sorted; hidden files such as
    macOS's ``._IMG.jpg`` copies left out, linked folders read: as a training folder is read); a URL
    (``https://...``) as it is, read when it is predicted.

    Raises:
        DataError: a path that does not exist, or no image file at all.
    """
    files: list[Path | str] = []
    for given in paths:
        if isinstance(given, str) and "://" in given:
            files.append(given)
            continue
        path = Path(given)
        if path.is_dir():
            files += images_in(path)
        elif path.exists():
            files.append(path)
        else:
            raise DataError(f"{path} does not exist; give image files or folders of images.")
    if not files:
        raise DataError(f"No image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}.")
    return files


class Predictor:
    """A saved model (folder or Hub id) that classifies images, among its own classes or, for a VSENet,
    among names given per call (each vocabulary embedded once)."""

    def __init__(self, model: str | Path):
        self.source = str(model)
        self.model = load_model(model)
        self.processor = self.model.image_processor()
        self.is_vsenet = is_vsenet(self.model)
        self.class_names = [self.model.config.id2label[i] for i in range(len(self.model.config.id2label))]
        self._last: Vocabulary | None = None  # the last new vocabulary: a page edits its names often

    def vocabulary(self, names: Sequence[str]) -> Vocabulary:
        """``names`` as a vocabulary of this VSENet; its own names need no text encoder.

        Raises:
            ConfigError: the model is not a VSENet.
            VisnetError: new names, and the text encoder cannot be loaded here (the message says how to bundle it).
        """
        if not self.is_vsenet:
            raise ConfigError(f"{self.source} is not a VSENet; only a VSENet can switch to new class names.")
        key = tuple(names)
        if key == tuple(self.class_names):
            return self.model.vocabulary
        if self._last is None or self._last.names != key:
            try:
                self._last = self.model.with_own_examples(self.model.vocabulary_for(key))
            except OSError as error:
                raise VisnetError(
                    f"New class names need the model's text encoder, which cannot be loaded here ({error}). "
                    "Bundle it into the model folder (visnet bundle-text-encoder DIR) for offline use."
                ) from None
        return self._last

    @torch.no_grad()
    def predict(
        self,
        image: str | Path | Image.Image,
        names: Sequence[str] | None = None,
        zero_shot_head: str | None = None,
        calibration: float | None = None,
        top_k: int = 5,
    ) -> list[dict[str, Any]]:
        """The ``top_k`` labels and their probabilities, most probable first.

        Args:
            image: a PIL image or an image file (an unreadable one raises ``BadImageError``).
            names: class names to score among (VSENet); default: the model's own.
            zero_shot_head: VSENet: how new names are scored in this call (default: the model's config).
            calibration: VSENet: the offset on trained names among new ones in this call (default: the config's).
        """
        if not isinstance(image, Image.Image):
            image = decode(image, str(image))
        kwargs: dict[str, Any] = {}
        labels = self.class_names
        if names is not None:
            kwargs["vocabulary"] = self.vocabulary(names)
            labels = list(kwargs["vocabulary"].names)
        if self.is_vsenet and (zero_shot_head is not None or calibration is not None):
            kwargs["zero_shot_config"] = self.model.config.zero_shot_config.updated(head=zero_shot_head, calibration=calibration)
        pixels = self.processor(presized(image, self.processor), return_tensors="pt")
        probabilities = self.model(**pixels, **kwargs).logits.float().softmax(-1)[0]
        top = probabilities.topk(min(int(top_k), probabilities.numel()))
        return [{"label": labels[int(i)], "score": float(p)} for p, i in zip(top.values, top.indices)]


__all__ = ["IMAGE_SUFFIXES", "MAX_NAMES", "Predictor", "image_files", "parse_names"]
