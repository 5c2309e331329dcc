"""Evaluate a saved model on a dataset: what ``visnet eval`` runs.

A VSENet evaluated on a dataset whose class names differ from its own switches to the dataset's
names first (zero-shot); when they mix trained and new names, the report adds the accuracy on
images of trained classes, on images of new classes, and their harmonic mean (generalised zero-shot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from .data import TransformedDataset, build_transforms, collate, load_splits
from .training.config import DataConfig
from .training.loop import evaluate_model
from .training.reports import write_reports


def evaluate_saved_model(
    model_dir: str,
    data: DataConfig,
    seed: int = 0,
    batch_size: int = 128,
    output_dir: str | None = None,
    calibration: float | None = None,
) -> dict[str, Any]:
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    splits = load_splits(data, seed=seed)
    model_names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    if model_names != splits.class_names:
        if not hasattr(model, "set_classes"):
            raise ValueError(
                f"The model's classes {model_names[:5]}... differ from the data's {splits.class_names[:5]}...; "
                "only a VSENet can switch to other class names."
            )
        model.set_classes(splits.class_names)
    if calibration is not None:
        model.config.calibration = calibration
    _, eval_transform = build_transforms(model.config.data_config, data.augment)
    loader = DataLoader(
        TransformedDataset(splits.eval, eval_transform, on_bad_image=data.on_bad_image, substitute=False, split="eval"),
        batch_size=batch_size,
        collate_fn=collate,
    )
    accelerator = Accelerator()
    prepared_model, loader = accelerator.prepare(model, loader)
    results = evaluate_model(accelerator, prepared_model, loader, splits.class_names)

    trained = set(getattr(model.config, "trained_class_names", None) or model_names)
    seen = torch.tensor([name in trained for name in splits.class_names])
    if not seen.all() and seen.any():
        results["generalised_zero_shot"] = _seen_unseen(results["confusion_matrix"], seen)

    output = Path(output_dir or Path(model_dir) / "eval")
    output.mkdir(parents=True, exist_ok=True)
    files = write_reports(output, results, [], splits.class_names)
    summary = {k: results[k] for k in ("accuracy", "top5_accuracy", "loss") if k in results}
    if "generalised_zero_shot" in results:
        summary["generalised_zero_shot"] = results["generalised_zero_shot"]
    return {**summary, **files}


def _seen_unseen(confusion: list[list[int]], seen: torch.Tensor) -> dict[str, float]:
    matrix = torch.tensor(confusion, dtype=torch.float64)
    correct, support = matrix.diagonal(), matrix.sum(1)
    seen_accuracy = float(correct[seen].sum() / support[seen].sum().clamp_min(1))
    unseen_accuracy = float(correct[~seen].sum() / support[~seen].sum().clamp_min(1))
    total = seen_accuracy + unseen_accuracy
    return {
        "seen_accuracy": seen_accuracy,
        "unseen_accuracy": unseen_accuracy,
        "harmonic_mean": 0.0 if total == 0 else 2 * seen_accuracy * unseen_accuracy / total,
    }
