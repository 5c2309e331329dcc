"""Few-shot: new names given with a few photos each, scored from their texts and their photos together.

The method needs no training. Each name with photos gets a visual prototype, the mean of its photos' pooled
features, and an image is scored by its cosine to that prototype in a space where classes spread alike in
every direction: the features standardised and whitened by the trained classes' within-class covariance
(shrunk toward the identity by ``example_shrinkage``), as the covariance of a new class is best guessed from
those of the classes the model knows well (Mahalanobis nearest class mean with a shared covariance, as in
LDA; transferred from base classes as in Yang et al. 2021, "Free lunch for few-shot learning: distribution
calibration"). The photo weight (``example_weight``; by default as much as the names' scores weigh together,
or what the photos given choose where that is more, :func:`fitted_photo_weight`;
:meth:`~visnet_hf.models.vsenet.VSENetZeroShotConfig.photo_weight`) times that scaled cosine, per square root of the
number of photos, is added to the names' zero-shot score: the names are a prior, the photos the evidence, summed
in logit space as a product of experts (Tip-Adapter, Zhang et al. 2022, adds a cache of the examples to CLIP's
text logits the same way). The photo score grows with the square root of the number of photos as the noise of their mean shrinks: with
one photo the name weighs most, with sixteen the photos do. A trained name kept beside new ones (``keep_trained``)
is scored against its own centroid, fitted on its training images, weighed as the new names' photos are on
average; a name without photos has no photo score. The cosine counts only beyond ``example_threshold``: an image's
cosine to other classes' photos is about 0 ± 0.05, and without it the best of a dozen such cosines would lift names
with photos over one without (studies/few_shot/PARTIAL.md); where every name has as many photos it changes nothing.

Chosen on episodes of the seen classes (BENCHMARKS.md 5e, where one weight for any number of photos, chosen
alike, is measured beside it). A prior in feature space instead (the photos' mean shrunk toward the prototype
the name borrows from the trained classes) scored lower than the photos alone.

The photos' state (per name: the sum of their pooled features, and their number) is part of the
:class:`~visnet_hf.zero_shot.Vocabulary` and is saved with the model that makes it its own.
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..errors import warn_user
from ..text.prompts import plain_name
from .vocabulary import ExampleSet

if TYPE_CHECKING:
    from .prototypes import VisualPrototypes


KEPT_PHOTOS = 16  # of each name's photos, whose features the check of the names reads (the rest only summed)


def unit_features(visual: torch.Tensor, prototypes: VisualPrototypes | None, shrinkage: float = 1.0) -> torch.Tensor:
    """Pooled features as few-shot scoring compares them: standardised and whitened by the trained images'
    statistics when the model has fitted prototypes (:meth:`VisualPrototypes.whitened`), then unit length."""
    if prototypes is not None and prototypes.fitted:
        return prototypes.whitened(visual, shrinkage)
    return F.normalize(visual.float(), dim=-1)


def typical_photos(examples: ExampleSet | None) -> torch.Tensor:
    """The mean number of photos of the names that have some (0 for none), a 0-d tensor (no branch on the counts, so
    an exported graph keeps it): how much a trained name's centroid weighs beside them, and what the scores'
    temperature grows with."""
    if examples is None:
        return torch.zeros(())
    counts = examples.counts.float()
    return counts.sum() / (counts > 0).sum().clamp(min=1)


def example_logits(
    visual: torch.Tensor,
    examples: ExampleSet,
    trained_rows: Sequence[int | None],
    prototypes: VisualPrototypes | None,
    shrinkage: float,
    scale: torch.Tensor | float,
    threshold: float = 0.0,
) -> torch.Tensor:
    """``(B, K)`` ``scale`` times the images' cosines to each name's prototype, the mean of its photos, less
    ``threshold``, times the square root of their number (the mean of n photos is that much less noisy); for a trained
    name without photos, its training images' centroid, weighed as the other names' photos are on average; zero for a
    name with neither. The threshold lowers every name with photos (or a centroid) alike when all have as many: it
    changes only how they stand against names with none, and against names with more or fewer photos.

    Args:
        visual: ``(B, num_features)`` the images' pooled features.
        examples: the names' photos.
        trained_rows: for each name, its row among the trained classes (``None`` for a new name).
        prototypes: the model's visual prototypes (statistics and trained centroids), if it has them.
        shrinkage: the whitening's shrinkage toward the identity.
        scale: the cosine logits' scale.
        threshold: the cosine a name's photos must pass to raise its score (``example_threshold``).
    """
    counts = examples.counts.to(visual.device, torch.float32)
    means = examples.sums.to(visual.device, torch.float32) / counts.clamp(min=1)[:, None]
    anchors = unit_features(means, prototypes, shrinkage) * (counts > 0)[:, None]
    weights = counts.sqrt()
    if prototypes is not None and prototypes.fitted and any(row is not None for row in trained_rows):
        # a trained centroid is stored standardised; whitened, it points where the class's images do
        whitening = prototypes.whitening(shrinkage)
        centroids = prototypes.centroids if whitening is None else F.normalize(prototypes.centroids @ whitening, dim=-1)
        typical = typical_photos(examples).clamp(min=1).sqrt().to(weights)  # 1 where no name has photos
        names = torch.tensor([name for name, row in enumerate(trained_rows) if row is not None], device=anchors.device)
        rows = torch.tensor([row for row in trained_rows if row is not None], device=anchors.device)
        without = counts[names] == 0  # a mask, not a branch: an exported graph keeps it
        anchors[names] = torch.where(without[:, None], centroids[rows].to(anchors), anchors[names])
        weights[names] = torch.where(without, typical, weights[names])
    features = unit_features(visual, prototypes, shrinkage)
    return scale * (features @ anchors.T.to(features) - threshold) * weights.to(features)


WEIGHTS = torch.logspace(-0.3, 2.0, 24).tolist()  # the photo weights the photos given choose from: 0.5 to 100
SCALES = torch.logspace(-3.0, 1.5, 46).tolist()  # each weight's sum is read at its most likely scale
FIT_PHOTOS = 1024  # the photos that choose it, at most
# ... and at least: a handful of photos to leave out (two photos of one name and two of another, beside one of each
# other name) chose the heaviest weight, 100, for every name
FIT_LEAST_PHOTOS = 10


def fitted_photo_weight(
    names_logits: torch.Tensor,
    photos: torch.Tensor,
    rows: torch.Tensor,
    examples: ExampleSet,
    prototypes: VisualPrototypes | None,
    shrinkage: float,
    scale: torch.Tensor | float,
    threshold: float = 0.0,
) -> float | None:
    """The photo weight under which the names' scores plus the photos' give the photos themselves their names most
    likely, each photo left out of its own name's mean (which then has one photo fewer): the weight of
    :data:`WEIGHTS` whose sum, at its most likely scale, has the highest likelihood (smoothed by 0.1, so that photos
    every weight tells apart do not tie at zero loss), to 3 significant digits. ``None`` where fewer than
    :data:`FIT_LEAST_PHOTOS` photos have another of their name's (a photo alone cannot be left out of its mean), or
    only one name has photos (every weight gives its photos that name alike). The
    library uses it where it is above the names' own weight (studies/few_shot/FITTED_WEIGHT.md: a model that reads
    its new names poorly gains 1.06 points over 1 to 16 photos, the shipped Tiny-ImageNet model's fold episodes 0.04).

    Args:
        names_logits: ``(N, K)`` the names' summed scores (before the temperature) of the ``N`` photos, over the
            ``K`` names of ``examples``.
        photos: ``(N, num_features)`` the photos' pooled features; ``rows``: ``(N,)`` each one's name, ``0..K-1``.
        examples: the names' photos (sums and counts: every photo, whether or not among ``photos``).
        prototypes, shrinkage, scale, threshold: as :func:`example_logits` scores the photos.
    """
    counts = examples.counts.to(photos.device, torch.float32)
    left = counts[rows] - 1
    keep = left > 0
    if int(keep.sum()) < FIT_LEAST_PHOTOS or len(counts) < 2:  # the photos of one name tell no two names apart
        return None
    photos, rows, left, names_logits = photos[keep].float(), rows[keep], left[keep], names_logits[keep].float()
    if len(rows) > FIT_PHOTOS:  # a large vocabulary: a fixed sample of its photos chooses as well, in less time
        sample = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:FIT_PHOTOS].to(rows.device)
        photos, rows, left, names_logits = photos[sample], rows[sample], left[sample], names_logits[sample]
    logits = example_logits(photos, examples, [None] * len(counts), prototypes, shrinkage, scale, threshold)
    own_mean = (examples.sums.to(photos)[rows] - photos) / left[:, None]
    cosine = (unit_features(photos, prototypes, shrinkage) * unit_features(own_mean, prototypes, shrinkage)).sum(-1)
    logits[torch.arange(len(rows)), rows] = scale * (cosine - threshold) * left.sqrt()
    least_loss = torch.tensor(
        [  # each weight's negative log-likelihood per photo (smoothed: it stays finite), at its most likely scale
            min(float(F.cross_entropy(scale * (names_logits + weight * logits), rows, label_smoothing=0.1)) for scale in SCALES)
            for weight in WEIGHTS
        ]
    ).nan_to_num(nan=float("inf"))
    if not torch.isfinite(least_loss).any():
        return None
    return float(f"{WEIGHTS[int(least_loss.argmin())]:.3g}")  # 8.25, not 8.254042


# -- examples given by the user -------------------------------------------------------------------


def examples_by_name(examples: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    """``{name: [image, ...]}`` from a mapping of names to images (a list of PIL images, paths or arrays; a folder of
    them; one image), from a folder with a folder of photos per class (named as the class), or from a
    ``datasets.Dataset`` (or a pandas ``DataFrame``) with an image column and a label column (a ``ClassLabel`` or
    the names themselves; of a ``DatasetDict``, its train split).

    Raises:
        ValueError: a name that has examples but is not among ``names``; a name with no image (an empty list or
            folder); a path that is not there; a dataset without the columns.
    """
    if isinstance(examples, (str, os.PathLike)):
        examples = _from_path(Path(examples))
    examples = _one_split(_from_data_frame(examples))
    if isinstance(examples, Mapping):
        by_name = {str(name): _images(images, str(name)) for name, images in examples.items()}
    else:
        by_name = _dataset_examples(examples)
    unknown = [name for name in by_name if name not in names]
    if unknown and all(name.isdigit() for name in by_name) and not any(name.isdigit() for name in names):
        raise ValueError(
            f"The examples' labels are numbers ({unknown[:10]}) without names: make the label column a "
            "datasets.ClassLabel with the class names (dataset.cast_column('label', ClassLabel(names=[...]))), or "
            "give the names themselves as labels."
        )
    if unknown:
        shown = ", ".join(repr(name) for name in list(names)[:10]) + (", ..." if len(names) > 10 else "")
        close = {name: near for name in unknown if (near := _closest(name, names))}
        raise ValueError(
            f"Examples were given for {unknown}, which are not among the names [{shown}]; "
            "give each class its name in the names too" + (f", or name the examples as the names are: {close}." if close else ".")
        )
    empty = [name for name, images in by_name.items() if not images]
    if empty:
        raise ValueError(f"No example images for {empty}: give at least one image for each class with examples, or leave it out.")
    counts = {name: len(images) for name, images in by_name.items()}
    typical = sorted(counts.values())[len(counts) // 2]
    more = {name: count for name, count in counts.items() if count >= 2 * typical}  # at least twice as many
    if more:
        warn_user(
            f"{more} have more examples than the others (most have {typical}); all are used, and the prototypes of "
            "these classes lean on their photos more than on their names."
        )
    return by_name


def _from_data_frame(examples: Any) -> Any:
    """A pandas ``DataFrame`` (a column of image paths or PIL images beside one of names) as a ``datasets.Dataset``
    of the same columns; anything else as it is."""
    if not (hasattr(examples, "columns") and hasattr(examples, "iloc")):
        return examples
    import datasets

    return datasets.Dataset.from_dict({str(column): examples[column].tolist() for column in examples.columns})


def _one_split(examples: Any) -> Any:
    """Of a ``datasets.DatasetDict`` (what ``load_dataset`` returns; streamed too), its train split, or its only one."""
    import datasets

    if not isinstance(examples, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return examples
    if "train" in examples or len(examples) == 1:
        return examples["train" if "train" in examples else next(iter(examples))]
    raise ValueError(f"The examples have the splits {sorted(examples)}; give one of them (examples['{next(iter(examples))}']).")


def _from_path(path: Path) -> Any:
    """The photos at ``path`` as ``visnet extend`` reads them: a folder of class folders by name; a labelled file
    (``.parquet``, ``.csv``, ``.jsonl``), a folder ``save_to_disk`` wrote, a folder of images with a ``metadata.csv``
    that names their labels or a Hub dataset id as a dataset (its train split)."""
    from .._paths import IMAGE_SUFFIXES
    from ..data import DataConfig, load_eval_data
    from ..data.config import HUB_ID, is_saved_dataset
    from ..data.folders import has_metadata
    from ..errors import NoClassNamesError

    if path.is_dir() and not is_saved_dataset(path) and not has_metadata(path):
        return _class_folders(path)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(
            f"{path} is one image, not photos of named classes: give a mapping from name to images "
            f"({{'zebra': ['{path}', ...]}}) or a folder with a folder of photos per class."
        )
    if not path.exists() and not HUB_ID.fullmatch(str(path)):
        raise ValueError(
            f"{path} is not there: give a folder with a folder of photos per class, a labelled file (.parquet, .csv, "
            ".jsonl), a folder save_to_disk wrote, or a mapping from name to images."
        )
    try:
        return load_eval_data(DataConfig(path=str(path)), split="train").dataset
    except NoClassNamesError:
        raise ValueError(
            f"{path} labels its photos with numbers and no names for them; each new class is learned from its name as "
            "well as its photos: give a file whose label column holds the names, or is a ClassLabel with names."
        ) from None


def _class_folders(root: Path) -> dict[str, Path]:
    """A folder's class folders by name (``photos/lion/``, ``photos/truck/``, ...); of a folder of split folders
    (``photos/train/lion/``, ``photos/val/lion/``), those of its train split, as ``visnet extend`` reads it."""
    from ..data.folders import class_folders, split_folders

    splits = dict(split_folders(root))
    if len(splits) > 1 and "train" not in splits:
        raise ValueError(f"{root} has the split folders {sorted(splits)} and no train split: give the one to learn from.")
    if splits:
        root = splits.get("train", next(iter(splits.values())))
        if len(splits) > 1:
            warn_user(f"The photos are those of {root}, the train split of {root.parent}.")
    folders = {folder.name: folder for folder in class_folders(root)}
    if not folders:
        raise ValueError(f"{root} has no class folders: put each class's photos in a folder named as the class.")
    return folders


def _images(value: Any, name: str) -> list[Any]:
    """A name's example images as a list: a folder's image files (sorted, subfolders too), the files a pattern
    matches (``photos/zebra_*.jpg``, sorted), one path, URL, image or image file's bytes as itself, a list (or an
    array of several images) as it is."""
    from PIL import Image

    from ..data.folders import images_in

    if isinstance(value, str) and "://" in value:  # a photo's URL, read when it is embedded
        return [value]
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.is_dir():
            return images_in(path)
        if not path.exists() and glob.has_magic(str(value)):  # a pattern: "photos/zebra_*.jpg"
            files = [Path(match) for match in sorted(glob.glob(str(value), recursive=True)) if Path(match).is_file()]
            if not files:
                raise ValueError(f"The examples of {name!r}: {value} matches no file; give a pattern of image files.")
            return files
        if not path.exists():
            raise ValueError(f"The examples of {name!r}: {path} is not there; give an image file or a folder of them.")
        return [path]
    single_array = hasattr(value, "ndim") and value.ndim in (2, 3)  # one image (H, W[, C]), not a stack of them
    if isinstance(value, (Image.Image, dict, bytes, bytearray)) or single_array:  # bytes: one encoded file's
        return [value]
    return list(value)


def _closest(name: str, names: Sequence[str]) -> str | None:
    """The one of ``names`` that ``name`` is most likely meant as: the same but for case, underscores and spacing,
    else the closest spelling; ``None`` when none is close."""
    same = {plain_name(n): n for n in names}.get(plain_name(name))
    return same or next(iter(difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)), None)


def _dataset_examples(dataset: Any) -> dict[str, list[Any]]:
    columns = getattr(dataset, "column_names", None)
    if columns is None:
        raise ValueError(
            "examples must be a mapping from class name to a list of images, or a datasets.Dataset (or a pandas "
            f"DataFrame) with image and label columns; got {type(dataset).__name__}."
        )
    kinds = {column: type(feature).__name__ for column, feature in (getattr(dataset, "features", None) or {}).items()}
    image_column = next((c for c in ("image", "img", "pixel_values") if c in columns), None) or next(
        (c for c in columns if kinds.get(c) == "Image"), None
    )
    label_column = next((c for c in ("label", "labels", "name", "class") if c in columns), None) or next(
        (c for c in columns if kinds.get(c) == "ClassLabel"), None
    )
    if image_column is None or label_column is None:
        raise ValueError(
            f"The examples dataset needs an image column (an Image feature, or one named image) and a label column (a "
            f"ClassLabel, or one named label holding names); it has {columns}."
        )
    if kinds.get(image_column) == "Image":  # decoded one by one, so a bad file is named
        import datasets

        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    label_names = getattr((dataset.features or {}).get(label_column), "names", None)
    by_name: dict[str, list[Any]] = {}
    for row in dataset.select_columns([image_column, label_column]):  # one pass, a streamed dataset too
        label = row[label_column]
        by_name.setdefault(label_names[label] if label_names is not None else str(label), []).append(row[image_column])
    return by_name


@torch.no_grad()
def embed_examples(model: Any, by_name: Mapping[str, Sequence[Any]], names: Sequence[str], batch_size: int = 32) -> ExampleSet:
    """Each name's examples through the model as it scores images (eval mode: its test-time views averaged),
    reduced to an :class:`ExampleSet` (the sum of their pooled features, and their number) in the order of
    ``names`` (zero rows for names without examples), with the features of up to :data:`KEPT_PHOTOS` of each name's
    photos beside it (``photos``).

    Raises:
        ValueError: an image that cannot be read, named with its class.
    """
    from ..data.images import decode
    from ..image_processing import presized

    processor = model.image_processor()
    sums = torch.zeros(len(names), int(model.config.num_features))
    counts = torch.zeros(len(names))
    kept: list[torch.Tensor] = []  # up to KEPT_PHOTOS of each name's photos' features, for the check of the names
    kept_rows: list[int] = []
    was_training = model.training
    model.eval()
    # Photos are decoded and resized on several cores (Pillow lets go of the interpreter while it does either); at
    # most 8 at once, so that a large machine does not hold dozens of decoded 12-megapixel photos.
    readers = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        for row, name in enumerate(names):
            images = list(by_name.get(name, ()))

            def read(image: Any, name: str = name) -> Any:
                return presized(_picture(image, decode, name), processor)

            for start in range(0, len(images), batch_size):  # decoded a batch at a time: a large class fits in memory
                pictures = list(readers.map(read, images[start : start + batch_size]))  # an unreadable one raises here
                pixel_values = processor(pictures, return_tensors="pt")["pixel_values"]
                _, pooled = model.backbone_features(pixel_values.to(model.device, model.dtype))
                pooled = pooled.cpu().float()
                sums[row] += pooled.sum(0)
                room = max(0, KEPT_PHOTOS - start)
                kept.append(pooled[:room])
                kept_rows += [row] * len(kept[-1])
            counts[row] = len(images)
    finally:
        readers.shutdown(cancel_futures=True)
        model.train(was_training)
    photos = torch.cat(kept) if kept else torch.zeros(0, sums.shape[1])
    return ExampleSet(sums, counts, photos=(photos, torch.tensor(kept_rows, dtype=torch.long)))


def _picture(image: Any, decode: Any, name: str) -> Any:
    """A PIL image of an example given as a PIL image, a path, an image file's bytes, a ``datasets`` image value or an
    array."""
    from PIL import Image

    from ..data.images import BadImageError

    if hasattr(image, "__array__") and not isinstance(image, Image.Image):
        return _array_picture(image.__array__(), name)
    source = (
        image.get("path")
        if isinstance(image, dict)
        else image
        if isinstance(image, str) or hasattr(image, "__fspath__")
        else None
    )
    where = f"an example of {name!r}" + (f" ({source})" if source else "")
    try:
        return decode(image, where)
    except BadImageError as error:  # nothing is saved or changed yet: the fix is the photo's, then a rerun
        missing = isinstance(error.__cause__, FileNotFoundError)
        fix = "Fix its path or remove it" if missing else "Replace it with a readable photo or remove it"
        raise BadImageError(f"{str(error).rstrip('.')}. {fix}, then run again.") from None


def _array_picture(array: Any, name: str) -> Any:
    """A PIL image of an array as NumPy and PIL lay images out, ``(H, W)`` or ``(H, W, C)``, or as torch does,
    ``(C, H, W)``; whole numbers in 0..255, or fractions in 0..1 (``ToTensor``'s).

    Raises:
        ValueError: an array that is no image (another shape, or normalised: values below 0), named with its class.
    """
    import numpy as np
    from PIL import Image

    array = np.asarray(array)
    channels = (1, 3, 4)
    if array.ndim == 3 and array.shape[0] in channels and array.shape[-1] not in channels:
        array = array.transpose(1, 2, 0)  # torch's channels first
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in channels):
        raise ValueError(
            f"An example of {name!r} is an array of shape {tuple(np.shape(array))}, which is no image: give each "
            "image as (height, width, 3) or (3, height, width), or as a PIL image or a file."
        )
    if array.dtype.kind == "f" and array.min(initial=0.0) < 0:
        raise ValueError(
            f"An example of {name!r} has values below 0, as an image normalised for a model has (an image "
            "processor's pixel_values): give the image itself (a file, a PIL image, or an array of 0..255 or 0..1), "
            "which the model's processor then reads as it reads every image."
        )
    if array.dtype.kind == "f":
        array = np.clip(array * (255.0 if array.max(initial=0.0) <= 1.0 else 1.0), 0, 255).round()
    return Image.fromarray(array.astype(np.uint8)).convert("RGB")


__all__ = [
    "ExampleSet",
    "embed_examples",
    "example_logits",
    "examples_by_name",
    "fitted_photo_weight",
    "typical_photos",
    "unit_features",
]
