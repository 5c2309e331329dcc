"""Few-shot: new names given with a few photos each, scored from their texts and their photos together.

The method, *name-anchored prototypes*, needs no training. Each name's visual prototype is the mean of its
example photos' standardised backbone features, shrunk toward the prototype its name alone would have (the
trained classes' centroids mixed by how alike the name is to them: :mod:`.prototypes`), as if the name were
``name_worth`` more photos:

    prototype(c) = normalise(sum_i z_i + name_worth * borrowed(c))        z_i = the examples' unit standardised features

which is the posterior mean of a class centre under a prior centred on what the text predicts (the shrinkage
of Efron and Morris's empirical Bayes; in few-shot learning, prototypes built from a text prior as in
Xing et al. 2019, "Adaptive cross-modal few-shot learning", and Tip-Adapter's text + example-cache scoring,
Zhang et al. 2022). The image's scaled cosine to it, times ``example_weight``, is added to the zero-shot score
of the names (their text). A name without photos keeps the borrowed prototype; a trained name keeps its
centroid: trained, photographed and named-only classes are scored on one scale.

The example state (per name: the sum of its examples' unit features, and their number) is part of the
:class:`~visnet_hf.zero_shot.Vocabulary` and is saved with the model that makes it its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from .vocabulary import ExampleSet

if TYPE_CHECKING:
    from .prototypes import VisualPrototypes


def unit_features(visual: torch.Tensor, prototypes: VisualPrototypes | None) -> torch.Tensor:
    """Pooled features as the prototypes compare them: standardised by the trained images' statistics when the
    model has fitted prototypes, then unit length."""
    if prototypes is not None and prototypes.fitted:
        return prototypes.standardised(visual)
    return F.normalize(visual.float(), dim=-1)


def example_logits(
    visual: torch.Tensor,
    examples: ExampleSet,
    borrowed: torch.Tensor | None,
    prototypes: VisualPrototypes | None,
    name_worth: float,
    scale: torch.Tensor | float,
) -> torch.Tensor:
    """``(B, K)`` ``scale`` times the images' cosines to each name's anchored prototype.

    Args:
        visual: ``(B, num_features)`` the images' pooled features.
        examples: the names' examples.
        borrowed: ``(K, num_features)`` each name's prototype from its text alone (unit rows), or ``None`` for
            a model without visual prototypes (a name without examples then scores zero here).
        prototypes: the model's visual prototypes (their standardisation), if it has them.
        name_worth: how many examples the name's borrowed prototype counts as.
        scale: the cosine logits' scale.
    """
    sums = examples.sums.to(visual.device, torch.float32)
    anchored = sums if borrowed is None else sums + name_worth * borrowed.to(sums)
    features = unit_features(visual, prototypes)
    return (scale * features) @ F.normalize(anchored, dim=-1).T.to(features)


# -- examples given by the user -------------------------------------------------------------------


def examples_by_name(examples: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    """``{name: [image, ...]}`` from a mapping of names to images (PIL images, paths or arrays), or from a
    ``datasets.Dataset`` with an image column and a label column (a ``ClassLabel`` or the names themselves).

    Raises:
        ValueError: a name that has examples but is not among ``names``; a name with an empty list; a dataset
            without the columns.
    """
    if isinstance(examples, Mapping):
        by_name = {str(name): list(images) for name, images in examples.items()}
    else:
        by_name = _dataset_examples(examples)
    unknown = [name for name in by_name if name not in names]
    if unknown:
        raise ValueError(
            f"Examples were given for {unknown}, which are not among the names {list(names)[:10]}...; "
            "give each class its name in the names too."
        )
    empty = [name for name, images in by_name.items() if not images]
    if empty:
        raise ValueError(f"No example images for {empty}: give at least one image for each class with examples, or leave it out.")
    counts = {name: len(images) for name, images in by_name.items()}
    typical = sorted(counts.values())[len(counts) // 2]
    more = {name: count for name, count in counts.items() if count > 2 * typical}
    if more:
        warnings.warn(
            f"{more} have more examples than the others (most have {typical}); all are used, and the prototypes of "
            "these classes lean on their photos more than on their names.",
            stacklevel=3,
        )
    return by_name


def _dataset_examples(dataset: Any) -> dict[str, list[Any]]:
    columns = getattr(dataset, "column_names", None)
    if columns is None:
        raise ValueError(
            "examples must be a mapping from class name to a list of images, or a datasets.Dataset with image and "
            f"label columns; got {type(dataset).__name__}."
        )
    image_column = next((c for c in ("image", "img", "pixel_values") if c in columns), None)
    label_column = next((c for c in ("label", "labels", "name", "class") if c in columns), None)
    if image_column is None or label_column is None:
        raise ValueError(f"The examples dataset needs an image column and a label column; it has {columns}.")
    if type(dataset.features[image_column]).__name__ == "Image":  # decoded one by one, so a bad file is named
        import datasets

        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    feature = dataset.features[label_column]
    label_names = getattr(feature, "names", None)
    by_name: dict[str, list[Any]] = {}
    for image, label in zip(dataset[image_column], dataset[label_column], strict=True):
        name = label_names[label] if label_names is not None else str(label)
        by_name.setdefault(name, []).append(image)
    return by_name


@torch.no_grad()
def embed_examples(model: Any, by_name: Mapping[str, Sequence[Any]], names: Sequence[str], batch_size: int = 32) -> ExampleSet:
    """Each name's examples through the model as it scores images (eval mode: its test-time views averaged),
    reduced to an :class:`ExampleSet` in the order of ``names`` (zero rows for names without examples).

    Raises:
        ValueError: an image that cannot be read, named with its class.
    """
    from ..data.images import decode

    processor = model.image_processor()
    prototypes = model.zero_shot.prototypes
    sums = torch.zeros(len(names), int(model.config.num_features))
    counts = torch.zeros(len(names))
    was_training = model.training
    model.eval()
    try:
        for row, name in enumerate(names):
            images = list(by_name.get(name, ()))
            pictures = [_picture(image, decode, name) for image in images]
            for start in range(0, len(pictures), batch_size):
                pixel_values = processor(pictures[start : start + batch_size], return_tensors="pt")["pixel_values"]
                _, pooled = model.backbone_features(pixel_values.to(model.device, model.dtype))
                sums[row] += unit_features(pooled, prototypes).sum(0).cpu().float()
            counts[row] = len(pictures)
    finally:
        model.train(was_training)
    return ExampleSet(sums, counts)


def _picture(image: Any, decode: Any, name: str) -> Any:
    """A PIL image of an example given as a PIL image, a path, a ``datasets`` image value or an array."""
    from PIL import Image

    if hasattr(image, "__array__") and not isinstance(image, Image.Image):
        return Image.fromarray(image.__array__()).convert("RGB")
    source = (
        image.get("path")
        if isinstance(image, dict)
        else image
        if isinstance(image, str) or hasattr(image, "__fspath__")
        else None
    )
    where = f"an example of {name!r}" + (f" ({source})" if source else "")
    return decode(image, where)


__all__ = ["ExampleSet", "embed_examples", "example_logits", "examples_by_name", "unit_features"]
