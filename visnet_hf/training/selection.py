"""Choosing a zero-shot model's defaults without looking at the classes it is scored on.

Zero-shot accuracy is measured on classes the model never trained on; choosing a default on the
classes whose figure is reported makes that figure a training score. The protocol here never looks
at them: the *seen* classes are split into folds; each fold's classes are held out of training
(pseudo-unseen) and the model trained on the others is scored on them, exactly as it would be on
truly new classes. Every candidate setting is trained on every fold; the best by mean pseudo-unseen
zero-shot accuracy wins, and the generalised zero-shot offset is the median of the folds' fitted
offsets. So is the offset beside new names given with photos (``example_calibration``): each fold's
pseudo-unseen classes get a few photos each, drawn from their images, and the offset is fitted on the rest.
Only then is the model trained on all seen classes, and the new classes scored, once.

    folds = pseudo_unseen_folds(class_names, folds=5, per_fold=30)
    table = cross_validate(config, {"linear": [], "mlp": ["model.overrides.projection=mlp"]}, folds,
                           variants={"semantic": {"head": "semantic"}, "both": {}})
    best = table.best()                    # the candidate and variant with the best mean zero-shot top-1
    offset = table.calibration(*best)      # the median fitted offset for that choice

Candidates are training overrides (``key=value``, as on the command line) and are trained once per
fold; variants are zero-shot settings (``VSENetZeroShotConfig`` fields: the head, say) scored on the
same fold models at no training cost, without touching their configs. With ``data.cache_features``
the backbone's features are computed once for every fold and candidate.

One rule picks the best of several settings (:func:`best_choice`), here and in the benchmarks: the
highest mean; a tie (the same images right, up to the float rounding of fold means) goes to the earlier
candidate, the search's starting point or the simpler setting.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import DataConfig, Splits, build_transforms, load_eval_data, load_splits
from ..data.features import FeatureCache, FeatureDataset, OneProcess, collate_features
from ..errors import ConfigError, ModelLoadError, NoClassNamesError
from ..evaluation import Logits, collect_logits, eval_loader, numbered_as_model_classes
from ..models import is_vsenet
from ..scores import top_k_accuracy
from ..zero_shot import ExampleSet, Vocabulary, fit_offset

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..models.vsenet import VSENetForImageClassification
    from .config import TrainConfig

# Fold means closer than this come from the same counts of images right: float32 accuracies, and one image of one
# fold of 2,700 moves the mean of 5 folds by 7e-5.
TIE = 1e-6


def best_choice(scores: dict[str, float]) -> str:
    """The name with the highest score; a tie (within :data:`TIE`) goes to the earlier name."""
    top = max(scores.values())
    return next(name for name, score in scores.items() if score >= top - TIE)


@dataclass(frozen=True)
class Fold:
    """One fold: the seen classes a model trains on, and those it must recognise by name alone."""

    index: int
    held_out: tuple[str, ...]
    trained: tuple[str, ...]


def pseudo_unseen_folds(class_names: Sequence[str], folds: int = 5, per_fold: int | None = None, seed: int = 0) -> list[Fold]:
    """Disjoint sets of ``per_fold`` classes (default: all classes shared out), each held out once.

    Raises:
        ConfigError: more classes asked for than there are, or a fold that would leave nothing to train on.
    """
    names = list(class_names)
    per_fold = per_fold or len(names) // folds
    if folds < 1 or per_fold < 1 or folds * per_fold > len(names) or per_fold >= len(names):
        raise ConfigError(
            f"{folds} folds of {per_fold} pseudo-unseen classes need more than {folds * per_fold} classes; "
            f"there are {len(names)}."
        )
    shuffled = random.Random(seed).sample(names, len(names))
    result = []
    for index in range(folds):
        held_out = set(shuffled[index * per_fold : (index + 1) * per_fold])
        result.append(Fold(index, tuple(n for n in names if n in held_out), tuple(n for n in names if n not in held_out)))
    return result


@dataclass
class FoldScore:
    """One (candidate, variant, fold): pseudo-unseen zero-shot accuracy, seen accuracy, generalised zero-shot."""

    candidate: str
    variant: str
    fold: int
    zero_shot_top1: float
    zero_shot_top5: float
    seen_accuracy: float
    calibration: float
    gzsl_harmonic_mean: float
    gzsl_seen: float
    gzsl_unseen: float
    unseen_images: int
    seen_images: int
    train_seconds: float
    example_calibration: float = float("nan")
    example_harmonic_mean: float = float("nan")


@dataclass
class CrossValidation:
    """Every fold score; the best choice and its calibration."""

    scores: list[FoldScore] = field(default_factory=list)

    def mean(self, candidate: str, variant: str, metric: str) -> float:
        return statistics.fmean(getattr(s, metric) for s in self._of(candidate, variant))

    def _of(self, candidate: str, variant: str) -> list[FoldScore]:
        return [s for s in self.scores if s.candidate == candidate and s.variant == variant]

    def choices(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((s.candidate, s.variant) for s in self.scores))

    def best(self, metric: str = "zero_shot_top1") -> tuple[str, str]:
        """The (candidate, variant) with the highest mean ``metric`` over folds, ties as :func:`best_choice` breaks them."""
        choices = {choice: self.mean(choice[0], choice[1], metric) for choice in self.choices()}
        return dict(zip(map(str, choices), choices))[best_choice({str(choice): mean for choice, mean in choices.items()})]

    def calibration(self, candidate: str, variant: str) -> float:
        """The generalised zero-shot offset for a choice: the median of the offsets its folds fitted."""
        return statistics.median(s.calibration for s in self._of(candidate, variant))

    def example_calibration(self, candidate: str, variant: str) -> float:
        """The offset beside new names given photos (:data:`FEW_SHOT_PHOTOS` each): the median of its folds'."""
        return statistics.median(s.example_calibration for s in self._of(candidate, variant))

    def summary(self) -> list[dict[str, Any]]:
        """One row per choice: the mean of every metric over the folds, and the median offset."""
        metrics = ("zero_shot_top1", "zero_shot_top5", "seen_accuracy", "gzsl_harmonic_mean", "train_seconds")
        return [
            {
                "candidate": candidate,
                "variant": variant,
                "folds": len(self._of(candidate, variant)),
                **{metric: self.mean(candidate, variant, metric) for metric in metrics},
                "calibration": self.calibration(candidate, variant),
                "example_calibration": self.example_calibration(candidate, variant),
            }
            for candidate, variant in self.choices()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"scores": [asdict(s) for s in self.scores], "summary": self.summary()}


def cross_validate(
    config: TrainConfig,
    candidates: dict[str, list[str]],
    folds: Sequence[Fold],
    variants: dict[str, dict[str, Any]] | None = None,
    log: Callable[[str], Any] = print,
    dev_fraction: float | None = None,
) -> CrossValidation:
    """Train every candidate on every fold and score it on the fold's pseudo-unseen classes.

    Args:
        config: the base :class:`~visnet_hf.training.config.TrainConfig` (a VSENet on the seen classes).
        candidates: name -> ``key=value`` overrides of the base config, each trained once per fold.
        folds: from :func:`pseudo_unseen_folds` over the base config's class names.
        variants: name -> zero-shot settings (``VSENetZeroShotConfig`` fields, e.g. ``{"head": "semantic"}``) to
            score every fold model with. Default: the model as trained.
        log: where each fold's line goes.
        dev_fraction: with it, each fold trains without a stratified ``dev_fraction`` of the training
            part, its seen accuracy is measured there, and the test part is never touched (its
            pseudo-unseen classes are scored on their training part): seen-side settings can then be
            chosen too. Default: the config's ``data.dev_fraction``.
    """
    from . import make_accelerator, override, train

    variants = variants or {"as trained": {}}
    table = CrossValidation()
    for name, overrides in candidates.items():
        candidate = override(config, overrides)
        for fold in folds:
            with tempfile.TemporaryDirectory(prefix="visnet_cv_") as output:
                trained_config = fold_config(candidate, fold, output, dev_fraction)
                started = time.perf_counter()
                model = train(trained_config, make_accelerator(trained_config))["model"].eval()
                seconds = time.perf_counter() - started
            data = fold_data(trained_config.data, fold, trained_config.seed)
            for variant, settings in variants.items():
                score = score_fold(model, trained_config, data, settings)
                table.scores.append(FoldScore(candidate=name, variant=variant, fold=fold.index, train_seconds=seconds, **score))
                log(
                    f"[cv] {name} / {variant} / fold {fold.index}: zero-shot {score['zero_shot_top1']:.3f} "
                    f"(top-5 {score['zero_shot_top5']:.3f}) on {score['unseen_images']} images, seen "
                    f"{score['seen_accuracy']:.3f}, GZSL H {score['gzsl_harmonic_mean']:.3f} ({seconds:.0f}s)"
                )
    return table


def fold_config(config: TrainConfig, fold: Fold, output: str, dev_fraction: float | None = None) -> TrainConfig:
    """The base config, trained on the fold's trained classes only, leaving nothing behind."""
    dev = config.data.dev_fraction if dev_fraction is None else dev_fraction
    data = replace(config.data, include_classes=list(fold.trained), dev_fraction=dev)
    hub = replace(config.hub, push=False)
    return replace(config, data=data, output_dir=output, checkpoints=False, export=False, trackers=[], hub=hub)


@dataclass
class FoldData:
    """A fold's images: ``seen`` (the trained classes, with the run's held-out split) and ``unseen``
    (every image of the pseudo-unseen classes), and each class's synonyms and WordNet id when the data has them."""

    trained: list[str]
    held_out: list[str]
    seen: Splits
    unseen: Splits
    synonyms: dict[str, list[str]] | None
    synsets: dict[str, str | None] | None = None


_FOLD_DATA: dict[tuple[str, Fold, int], FoldData] = {}


def fold_data(data: DataConfig, fold: Fold, seed: int = 0) -> FoldData:
    """The images a fold is scored on, from the same data section the fold trained with (remembered:
    every candidate with the same data is scored on the same images)."""
    key = (repr(data), fold, seed)
    if key not in _FOLD_DATA:
        _FOLD_DATA[key] = _fold_data(data, fold, seed)
    return _FOLD_DATA[key]


def _fold_data(data: DataConfig, fold: Fold, seed: int) -> FoldData:
    seen = load_splits(replace(data, include_classes=list(fold.trained)), seed=seed)
    unseen = load_splits(replace(data, include_classes=list(fold.held_out), max_train_samples=None), seed=seed)
    return FoldData(
        list(fold.trained),
        list(fold.held_out),
        seen,
        unseen,
        _by_name(seen, unseen, "synonyms"),
        _by_name(seen, unseen, "synsets"),
    )


def _by_name(seen: Splits, unseen: Splits, attribute: str) -> dict[str, Any] | None:
    """A per-class attribute of the splits (``synonyms``, ``synsets``) by class name, if both have it."""
    if getattr(seen, attribute) is None or getattr(unseen, attribute) is None:
        return None
    return {**dict(zip(seen.class_names, getattr(seen, attribute))), **dict(zip(unseen.class_names, getattr(unseen, attribute)))}


@torch.no_grad()
def score_fold(
    model: VSENetForImageClassification, config: TrainConfig, data: FoldData, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Zero-shot on the fold's pseudo-unseen classes, seen accuracy on the held-out images of its
    trained classes, and the generalised zero-shot figures with the offset fitted on this fold.

    ``settings`` are zero-shot settings for this scoring only (``{"head": "semantic"}``,
    ``{"prototype_hierarchy": 2.5}``, say); the model is not changed. The offset fitted here
    (:func:`~visnet_hf.zero_shot.fit_offset`) is the whole offset, whatever the model's config holds.
    """
    zero_shot = model.config.zero_shot_config.updated(**(settings or {}))
    held_out = fold_vocabulary(model, data.held_out, data)
    mixed = fold_vocabulary(model, data.trained + data.held_out, data)
    # the backbone's features of the fold's images, read (or computed) once for every score below
    seen_images = _pooled(model, fold_batches(model, data.seen, "eval", config))
    unseen_images = _pooled(model, fold_batches(model, data.unseen, "both", config))
    seen = collect_logits(model, _batches(*seen_images))
    unseen = collect_logits(model, _batches(*unseen_images), vocabulary=held_out, zero_shot_config=zero_shot)
    shift = len(data.trained)  # the pseudo-unseen classes follow the trained ones in the mixed vocabulary
    mixed_batches = itertools.chain(_batches(*seen_images), _batches(unseen_images[0], unseen_images[1] + shift))
    gzsl = fit_offset(model, mixed_batches, mixed, zero_shot)
    with_photos = few_shot_offset(model, config.seed, seen_images, unseen_images, mixed, zero_shot)
    return {
        "zero_shot_top1": top_k_accuracy(unseen.scores, unseen.labels, 1),
        "zero_shot_top5": top_k_accuracy(unseen.scores, unseen.labels, 5),
        "seen_accuracy": top_k_accuracy(seen.scores, seen.labels, 1),
        "calibration": gzsl["calibration"],
        "gzsl_harmonic_mean": gzsl["harmonic_mean"],
        "gzsl_seen": gzsl["seen_accuracy"],
        "gzsl_unseen": gzsl["unseen_accuracy"],
        "unseen_images": len(unseen),
        "seen_images": len(seen),
        "example_calibration": with_photos["calibration"],
        "example_harmonic_mean": with_photos["harmonic_mean"],
    }


FEW_SHOT_PHOTOS = 4  # photos per pseudo-unseen class when the offset beside names with photos is fitted (one holds for 1 to 16)


def few_shot_offset(
    model: VSENetForImageClassification,
    seed: int,
    seen: tuple[torch.Tensor, torch.Tensor],
    unseen: tuple[torch.Tensor, torch.Tensor],
    mixed: Vocabulary,
    zero_shot: Any,
) -> dict[str, float]:
    """The offset beside new names given photos: each pseudo-unseen class gets :data:`FEW_SHOT_PHOTOS` of its images
    (drawn with ``seed``; fewer for a class with fewer than twice as many, none for one with one image) as photos,
    and the offset is fitted (:func:`~visnet_hf.zero_shot.fit_offset`) on its other images and the trained classes'
    held-out ones. ``seen`` and ``unseen``: those images' pooled features and labels (the pseudo-unseen classes'
    numbered from 0, after the trained ones in ``mixed``)."""
    generator = torch.Generator().manual_seed(seed)
    is_photo = torch.zeros(len(unseen[1]), dtype=torch.bool)
    for label in unseen[1].unique().tolist():
        rows = (unseen[1] == label).nonzero().flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        is_photo[rows[: min(FEW_SHOT_PHOTOS, len(rows) // 2)]] = True
    shift = int(mixed.trained.sum())  # the pseudo-unseen classes follow the trained ones in the mixed vocabulary
    photo_labels = unseen[1][is_photo] + shift
    sums = torch.zeros(len(mixed), unseen[0].shape[1]).index_add_(0, photo_labels, unseen[0][is_photo])
    counts = torch.zeros(len(mixed)).index_add_(0, photo_labels, torch.ones(len(photo_labels)))
    vocabulary = replace(mixed, examples=ExampleSet(sums, counts))
    queries = itertools.chain(_batches(*seen), _batches(unseen[0][~is_photo], unseen[1][~is_photo] + shift))
    return fit_offset(model, queries, vocabulary, zero_shot)


def _batches(features: torch.Tensor, labels: torch.Tensor, size: int = 256) -> Iterator[dict[str, torch.Tensor]]:
    """Pooled features and their labels as the model's input batches."""
    for start in range(0, len(labels), size):
        yield {"image_features": features[start : start + size], "labels": labels[start : start + size]}


def _pooled(model: VSENetForImageClassification, batches: Iterator[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The backbone's pooled features of every batch (cached ones as they are, images through the model's views), and
    the labels."""
    features, labels = [], []
    for batch in batches:
        if "image_features" in batch:
            pooled = batch["image_features"]
        else:
            pooled = model.backbone_features(batch["pixel_values"].to(model.device, model.dtype))[1]
        features.append(pooled.float().cpu())
        labels.append(torch.as_tensor(batch["labels"]).cpu())
    return torch.cat(features), torch.cat(labels)


def fold_vocabulary(model: VSENetForImageClassification, names: list[str], data: FoldData) -> Vocabulary:
    """``names`` embedded by the model, with the synonyms and WordNet ids the data gives for them."""
    synonyms = [data.synonyms.get(name, []) for name in names] if data.synonyms else None
    synsets = [data.synsets.get(name) for name in names] if data.synsets else None
    return model.vocabulary_for(names, synonyms=synonyms, synsets=synsets)


def fold_batches(
    model: VSENetForImageClassification, splits: Splits, part: str, config: TrainConfig, batch_size: int = 256
) -> Iterator[dict[str, Any]]:
    """Batches of ``splits.train``, ``splits.eval`` or ``both`` (in that order): the cached backbone features
    when the config caches them, else the images at the eval transform."""
    from torch.utils.data import DataLoader

    device = next(model.parameters()).device
    assert model.config.data_config is not None  # set when the model is built
    _, transform = build_transforms(model.config.data_config, config.data.augment)
    for name, dataset, source in (("train", splits.train, splits.train_source), ("eval", splits.eval, splits.eval_source)):
        if part not in (name, "both"):
            continue
        if config.data.cache_features:
            cached = FeatureCache(config.data.feature_cache_dir).features(model, source, transform, OneProcess(device))
            yield from DataLoader(FeatureDataset(dataset, cached), batch_size=batch_size, collate_fn=collate_features)
        else:
            yield from eval_loader(dataset, transform, batch_size, config.data)


def fold_logits(
    model: VSENetForImageClassification, splits: Splits, part: str, config: TrainConfig, **forward_kwargs: Any
) -> Logits:
    """Logits and labels of :func:`fold_batches`; ``forward_kwargs`` as :func:`~visnet_hf.evaluation.collect_logits`."""
    return collect_logits(model, fold_batches(model, splits, part, config), **forward_kwargs)


def calibrate_saved_model(
    model_dir: str,
    offset: float | None = None,
    data: DataConfig | None = None,
    held_out: bool = False,
    pseudo_unseen: int | None = None,
    folds: int = 5,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, Any]:
    """What ``visnet calibrate`` runs: fit a VSENet's generalised zero-shot offset and save it in the model.

    One of:
        offset: set it as given (e.g. the one the selection protocol chose); on a model whose classes carry
            photos, the offset beside them (``example_calibration``).
        data: images of trained *and* new classes (their class names form the mixed vocabulary);
            the offset maximises the harmonic mean of seen- and new-class accuracy on them. Where those names
            carry photos (a model extended with ``visnet extend --keep-trained``), it is the offset for names with
            photos (``example_calibration``), and the zero-shot one stays.
        pseudo_unseen: no new-class images at all: the run's own training config (the folder's
            ``training_config.yaml``) is trained ``folds`` times, each time without ``pseudo_unseen``
            of its classes, and the median of the offsets fitted on those held-out classes is kept; so is
            the median of those fitted with :data:`FEW_SHOT_PHOTOS` photos of each, as ``example_calibration``.

    Returns:
        The offset, how it was fitted and on how many images; also written to ``calibration.json``.
    """
    from ..hub import TRAINING_CONFIG, load_model, model_file, write_card

    chosen = [
        name for name, value in (("--offset", offset), ("--data", data), ("--pseudo-unseen", pseudo_unseen)) if value is not None
    ]
    if len(chosen) != 1:
        raise ConfigError(f"Give exactly one of --offset, --data and --pseudo-unseen (got {chosen or 'none'}).")
    if not Path(model_dir).is_dir():
        raise ModelLoadError(f"{model_dir} is not a model folder; calibration is saved into the folder, so it must be local.")
    model = load_model(model_dir)
    if not is_vsenet(model):
        raise ConfigError(f"{model_dir} is not a VSENet; only a VSENet switches to new class names and has an offset.")
    trained = list(model.config.trained_class_names)
    if offset is not None:
        result: dict[str, Any] = {"calibration": float(offset), "method": "given"}
        if model.vocabulary.examples is not None:  # the model's own classes carry photos: their offset
            result["setting"] = "example_calibration"
    elif data is not None:
        try:
            evaluation = load_eval_data(data, seed=seed, held_out=held_out)
        except NoClassNamesError:
            evaluation = numbered_as_model_classes(data, model, seed=seed, held_out=held_out)
        seen_columns = torch.tensor([name in trained for name in evaluation.class_names])
        if seen_columns.all() or not seen_columns.any():
            raise ConfigError(
                f"The data's classes must mix trained and new names to calibrate; it has "
                f"{int(seen_columns.sum())} trained and {int((~seen_columns).sum())} new ones."
            )
        vocabulary = model.with_own_examples(
            model.vocabulary_for(evaluation.class_names, synonyms=evaluation.synonyms, synsets=evaluation.synsets)
        )
        assert model.config.data_config is not None  # set when the model is built
        _, transform = build_transforms(model.config.data_config, data.augment)
        fitted = fit_offset(model, eval_loader(evaluation.dataset, transform, batch_size, data), vocabulary)
        result = {**fitted, "method": f"fitted on {evaluation.description}"}
        if vocabulary.examples is not None:
            result["setting"] = "example_calibration"  # the offset beside names given with photos
    else:
        from . import load_config

        path = model_file(model_dir, TRAINING_CONFIG)
        if path is None:
            raise ModelLoadError(
                f"{model_dir} has no {TRAINING_CONFIG}: --pseudo-unseen retrains the run, which needs its config."
            )
        config = load_config(path)
        table = cross_validate(config, {"run": []}, pseudo_unseen_folds(trained, folds, pseudo_unseen, seed=seed))
        summary = table.summary()[0]
        result = {
            "calibration": table.calibration("run", "as trained"),
            "method": f"median over {folds} folds, each holding {pseudo_unseen} of the {len(trained)} trained classes out of training",
            "harmonic_mean": summary["gzsl_harmonic_mean"],
            "fold_offsets": [score.calibration for score in table.scores],
            "example_calibration": table.example_calibration("run", "as trained"),
            "example_fold_offsets": [score.example_calibration for score in table.scores],
        }
        model.config.zero_shot_config.example_calibration = float(result["example_calibration"])
    setting = result.setdefault("setting", "calibration")
    setattr(model.config.zero_shot_config, setting, float(result["calibration"]))  # the command's purpose: saved with the model
    model.save_pretrained(model_dir)
    (Path(model_dir) / "calibration.json").write_text(json.dumps(result, indent=2) + "\n")
    write_card(model_dir)
    return result


__all__ = [
    "TIE",
    "CrossValidation",
    "Fold",
    "FoldData",
    "FoldScore",
    "best_choice",
    "calibrate_saved_model",
    "cross_validate",
    "fold_batches",
    "fold_config",
    "fold_data",
    "fold_logits",
    "fold_vocabulary",
    "pseudo_unseen_folds",
    "score_fold",
]
