"""What an evaluation leaves behind: metrics JSON, a confusion-matrix PNG and, for a training run, a training-curve PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_reports(output_dir: Path, evaluation: dict[str, Any], history: list[dict], class_names: list[str]) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir = Path(output_dir)
    metrics_file = output_dir / "eval_results.json"
    metrics_file.write_text(json.dumps({**evaluation, "class_names": class_names, "history": history}, indent=2))

    matrix = evaluation["confusion_matrix"]
    size = min(16, max(4, 0.45 * len(class_names) + 2))  # a few hundred classes stay a readable picture
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues", interpolation="nearest")
    if len(class_names) <= 60:
        axes.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
        axes.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix (accuracy {evaluation['accuracy']:.3f}, {evaluation['num_examples']} images)")
    if len(class_names) <= 20:
        for row, values in enumerate(matrix):
            for column, value in enumerate(values):
                axes.text(column, row, str(value), ha="center", va="center", fontsize=6)
    figure.tight_layout()
    confusion_png = output_dir / "confusion_matrix.png"
    figure.savefig(confusion_png, dpi=100)
    plt.close(figure)

    files = {"metrics_file": str(metrics_file), "confusion_png": str(confusion_png)}
    if history:
        files["curve_png"] = str(_training_curves(plt, history, output_dir / "training_curves.png"))
    return files


def _training_curves(plt, history: list[dict], path: Path) -> Path:
    """Loss and eval accuracy at each evaluation, against optimizer steps."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(9, 3.5))
    steps = [record["step"] for record in history]
    loss_axes.plot(steps, [r.get("train_loss") for r in history], marker="o", label="train")
    loss_axes.plot(steps, [r["eval_loss"] for r in history], marker="o", label="eval")
    loss_axes.set_xlabel("optimizer step")
    loss_axes.set_ylabel("loss")
    loss_axes.legend()
    accuracy_axes.plot(steps, [r["eval_accuracy"] for r in history], marker="o", label="top-1")
    accuracy_axes.plot(steps, [r.get("eval_top5_accuracy") for r in history], marker="o", label="top-5")
    accuracy_axes.set_xlabel("optimizer step")
    accuracy_axes.set_ylabel("eval accuracy")
    accuracy_axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
