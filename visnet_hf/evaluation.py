"""Scoring a model on a dataset: used by training (each evaluation) and by ``visnet eval``.

Every result states how many images it was computed on (``num_examples``) and which part of the
data they are (``scored``). ``visnet eval`` scores a given file, folder or Hub split whole; the part
a training run held out only when asked (``held_out=True``), and then with that run's own data
section and seed read from the model folder's ``training_config.yaml``, so it is exactly the run's
eval split.

A dataset whose classes are all among the model's (in any order, or only some of them: a test folder
without one class, the new classes of a model extended beside its trained ones) is scored among the
model's classes, each image's label matched to the model's class of the same name: the question the model
answers in ``visnet predict`` and the pipelines. A VSENet evaluated on a dataset with other class names is
scored among the dataset's names (zero-shot), without changing the model. Whenever the names scored mix
trained and new ones and the images include both, the report adds the accuracy on images of trained
classes, on images of new classes, and their harmonic mean (generalised zero-shot).

:func:`collect_logits` is the one loop that turns a loader into logits: training's evaluation,
``visnet eval``, the selection protocol and calibration all call it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ._validation import validate
from .data import DataConfig, EvalData, TransformedDataset, build_transforms, collate, load_eval_data, relabelled
from .errors import ConfigError, DataError, ModelLoadError, NoClassNamesError
from .hub.loading import TRAINING_CONFIG, load_model, model_file
from .metrics import compute_all
from .models import is_vsenet
from .reports import write_reports
from .scores import seen_unseen_accuracy


def eval_loader(dataset, transform, batch_size: int, data: DataConfig, **loader_kwargs: Any) -> DataLoader:
    """A loader over ``dataset`` with the eval transform; unreadable images are dropped or stop the run.
    ``loader_kwargs`` (workers, pinned memory) default to ``data.num_workers`` workers."""
    return DataLoader(
        TransformedDataset(dataset, transform, on_bad_image=data.on_bad_image, substitute=False, split="eval"),
        batch_size=batch_size,
        collate_fn=collate,
        **{"num_workers": data.num_workers, **loader_kwargs},
    )


@dataclass
class Logits:
    """What :func:`collect_logits` returns: one row of scores per readable image, and its label."""

    scores: torch.Tensor
    labels: torch.Tensor
    bad_images: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@torch.no_grad()
def collect_logits(
    model,
    loader,
    accelerator: Accelerator | None = None,
    memory_format: torch.memory_format | None = None,
    **forward_kwargs: Any,
) -> Logits:
    """The model's logits (float32, on the CPU) for every image of ``loader``, in its order.

    Batches are dicts with ``pixel_values`` (or ``image_features``) and ``labels``, as the data
    pipeline and the feature cache make them; ``forward_kwargs`` go to every forward call (a VSENet's
    ``vocabulary``, ``zero_shot_config``). With an ``accelerator`` (a prepared model and
    loader) every process's images are gathered and each image is counted once: ``gather_for_metrics``
    drops the samples accelerate repeats to make the last batch even; a loader whose processes hold
    different images (a stream, ``per_process``) is gathered once, at the end.
    """
    per_process = getattr(loader, "per_process", False)
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    model.eval()
    rows: list[tuple[torch.Tensor, int]] = []
    bad_images: list[str] = []
    for batch in loader:
        bad_images += batch.get("bad_images", [])
        local: list[tuple[torch.Tensor, int]] = []
        if len(batch["labels"]):
            inputs = {key: batch[key].to(device) for key in ("pixel_values", "image_features") if key in batch}
            if memory_format is not None and "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].contiguous(memory_format=memory_format)
            with accelerator.autocast() if accelerator is not None else contextlib.nullcontext():
                logits = model(**inputs, **forward_kwargs).logits.float().cpu()
            local = list(zip(logits, batch["labels"].cpu().tolist()))
        # Objects, not tensors: batches may be ragged where unreadable images were dropped.
        if accelerator is None or per_process:
            rows += local
        else:
            rows += accelerator.gather_for_metrics(local, use_gather_object=True)
    if per_process and accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    scores = torch.stack([row[0] for row in rows]) if rows else torch.empty(0, 0)
    return Logits(scores, torch.tensor([row[1] for row in rows], dtype=torch.long), bad_images)


def evaluate_model(
    accelerator: Accelerator,
    model,
    loader,
    class_names: list[str],
    memory_format: torch.memory_format | None = None,
    **forward_kwargs: Any,
) -> dict[str, Any]:
    """Loss, top-1, top-5, per-class report and confusion matrix over the whole loader (all ranks).

    When the model scores a vocabulary that mixes trained and new names (``forward_kwargs``'
    ``vocabulary``), the results add ``generalised_zero_shot``: seen, new and harmonic-mean accuracy.
    """
    collected = collect_logits(model, loader, accelerator, memory_format, **forward_kwargs)
    if not len(collected):
        raise DataError("No image could be scored: every image of the eval split was unreadable.")
    results = compute_all(collected.scores.numpy(), collected.labels.numpy(), class_names, k=5)
    results["loss"] = float(torch.nn.functional.cross_entropy(collected.scores, collected.labels))
    results["num_examples"] = len(collected)
    if collected.bad_images:
        results["bad_images"] = collected.bad_images
    vocabulary = forward_kwargs.get("vocabulary")
    if vocabulary is not None and vocabulary.mixes_trained_and_new:
        figures = seen_unseen_accuracy(collected.scores.argmax(1), collected.labels, vocabulary.trained)
        if figures["seen_images"] and figures["unseen_images"]:  # one side without images has no accuracy to show
            results["generalised_zero_shot"] = figures
    return results


def run_data_config(model_dir: str | Path) -> tuple[DataConfig, int]:
    """The data section and seed of the run that trained the model in ``model_dir``.

    Raises:
        ModelLoadError: the folder has no ``training_config.yaml`` (it was not written by ``visnet train``).
    """
    path = model_file(model_dir, TRAINING_CONFIG)
    if path is None:
        raise ModelLoadError(
            f"{model_dir} has no {TRAINING_CONFIG}, so the run's held-out split is unknown; give the training "
            "data with --data (and its --val-fraction and --seed) instead."
        )
    run = yaml.safe_load(Path(path).read_text()) or {}
    data = validate(DataConfig, run.get("data") or {}, ConfigError, f"the data section of {path}")
    return data, int(run.get("seed", 0))


def evaluate_saved_model(
    model_dir: str,
    data: DataConfig | None = None,
    seed: int | None = None,
    held_out: bool = False,
    all_classes: bool = False,
    max_samples: int | None = None,
    batch_size: int = 128,
    output_dir: str | None = None,
    calibration: float | None = None,
) -> dict[str, Any]:
    """What ``visnet eval`` runs.

    Args:
        model_dir: a folder written by ``save_pretrained`` / ``visnet train``, or a Hub id.
        data: the data to score; ``None`` with ``held_out=True`` takes the run's own data section.
        seed: the seed of the held-out split (default: the run's, else 0).
        held_out: score only the part a training run held out, instead of the whole file or split.
        all_classes: with the run's data section, drop its ``include_classes`` (zero-shot evaluation
            on the held-out images of every class).
        max_samples: score only the first ``max_samples`` images.
        calibration: VSENet: the offset on trained classes' scores in a mixed vocabulary.

    Returns:
        The summary (accuracy, top-5, loss, ``num_examples``, ``scored``, generalised zero-shot
        figures where they apply) and the paths of the files written.
    """
    if data is None:
        if not held_out:
            raise ConfigError("Give the data to evaluate (--data), or --held-out for the training run's held-out split.")
        data, run_seed = run_data_config(model_dir)
        seed = run_seed if seed is None else seed
        if all_classes:
            data = replace(data, include_classes=None)
    if max_samples is not None:
        data = replace(data, max_eval_samples=max_samples)
    try:
        evaluation = load_eval_data(data, seed=seed or 0, held_out=held_out)
        model = load_model(model_dir)  # the data first: a wrong path is reported before the model loads
    except NoClassNamesError:
        model = load_model(model_dir)
        evaluation = numbered_as_model_classes(data, model, seed=seed or 0, held_out=held_out)
    results = evaluate_on(model, evaluation, data, batch_size=batch_size, calibration=calibration)
    output = Path(output_dir) if output_dir else (Path(model_dir) / "eval" if Path(model_dir).is_dir() else Path("eval"))
    output.mkdir(parents=True, exist_ok=True)
    files = write_reports(output, results, [], results["class_names"])
    summary_keys = ("accuracy", "top5_accuracy", "loss", "num_examples", "scored", "generalised_zero_shot")
    return {**{k: results[k] for k in summary_keys if k in results}, **files}


def evaluate_on(model, evaluation: EvalData, data: DataConfig, batch_size: int = 128, calibration: float | None = None):
    """Score ``model`` on ``evaluation``: among the model's classes when the data's are all among them
    (:func:`among_model_classes`), else a VSENet among the data's class names. The results name the classes
    scored among (``class_names``)."""
    model_names = _class_names(model)
    evaluation = among_model_classes(evaluation, model_names)
    forward_kwargs: dict[str, Any] = {}
    if model_names != evaluation.class_names and not is_vsenet(model):
        raise ConfigError(
            f"The model's classes {model_names[:5]}... differ from the data's {evaluation.class_names[:5]}...; "
            "only a VSENet can switch to other class names."
        )
    if is_vsenet(model):
        vocabulary = model.vocabulary
        if model_names != evaluation.class_names:
            vocabulary = model.with_own_examples(
                model.vocabulary_for(evaluation.class_names, synonyms=evaluation.synonyms, synsets=evaluation.synsets)
            )
            evaluation = replace(evaluation, description=f"{evaluation.description}, {_among_data_names(vocabulary)}")
        forward_kwargs["vocabulary"] = vocabulary
        if calibration is not None:
            # the offset of this evaluation, beside names with photos too
            settings = model.config.zero_shot_config.updated(calibration=calibration, example_calibration=calibration)
            forward_kwargs["zero_shot_config"] = settings
    _, eval_transform = build_transforms(model.config.data_config, data.augment)
    accelerator = Accelerator()
    prepared_model, loader = accelerator.prepare(model, eval_loader(evaluation.dataset, eval_transform, batch_size, data))
    results = evaluate_model(accelerator, prepared_model, loader, evaluation.class_names, **forward_kwargs)
    results["scored"] = evaluation.description
    results["class_names"] = evaluation.class_names
    return results


def _among_data_names(vocabulary) -> str:
    """What a VSENet scored the data's images among, when the data's class names are not all the model's: its names,
    and how many of them are scored with the model's photos, as trained classes, or by their names alone."""
    scored = f"among its {len(vocabulary)} class names"
    if vocabulary.examples is None:
        return scored
    photos = vocabulary.examples.counts.cpu() > 0
    trained = vocabulary.trained.cpu() & ~photos
    alone = len(vocabulary) - int(photos.sum()) - int(trained.sum())
    parts = [f"{int(photos.sum())} with the model's photos"]
    parts += [f"{int(trained.sum())} as trained classes"] if trained.any() else []
    parts += [f"{alone} by their names alone"] if alone else []
    return f"{scored} ({', '.join(parts)})"


def numbered_as_model_classes(data: DataConfig, model, seed: int, held_out: bool) -> EvalData:
    """The data of a label column of numbers without names, read as the model's classes in its order (what
    ``visnet eval`` and ``visnet calibrate`` do with them), and said so in its description."""
    evaluation = load_eval_data(replace(data, class_names=_class_names(model)), seed=seed, held_out=held_out)
    return replace(evaluation, description=f"{evaluation.description}, its label numbers as the model's classes")


def _class_names(model) -> list[str]:
    """The model's classes, in the order of its logits."""
    return [model.config.id2label[i] for i in range(len(model.config.id2label))]


def among_model_classes(evaluation: EvalData, model_names: list[str]) -> EvalData:
    """``evaluation`` with its labels numbered as the model's classes of the same names, when every class of the
    data is one of the model's (in another order, or some of them only); as it is otherwise."""
    names = evaluation.class_names
    if names == model_names or not set(names) <= set(model_names):
        return evaluation
    dataset = relabelled(evaluation.dataset, {label: model_names.index(name) for label, name in enumerate(names)}, model_names)
    held = f"all {len(names)}" if len(names) == len(model_names) else f"{len(names)}"
    description = f"{evaluation.description}, among the model's {len(model_names)} classes (the data holds {held} of them)"
    return replace(
        evaluation, dataset=dataset, class_names=list(model_names), description=description, synonyms=None, synsets=None
    )
