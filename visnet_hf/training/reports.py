"""What a finished run leaves behind: metrics JSON, a confusion-matrix PNG and a training-curve PNG."""

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
    size = max(4, 0.45 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix (accuracy {evaluation['accuracy']:.3f})")
    if len(class_names) <= 20:
        for row, values in enumerate(matrix):
            for column, value in enumerate(values):
                axes.text(column, row, str(value), ha="center", va="center", fontsize=6)
    figure.tight_layout()
    confusion_png = output_dir / "confusion_matrix.png"
    figure.savefig(confusion_png, dpi=120)
    plt.close(figure)

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [record["epoch"] for record in history]
    loss_axes.plot(epochs, [r.get("train_loss") for r in history], marker="o", label="train")
    loss_axes.plot(epochs, [r["eval_loss"] for r in history], marker="o", label="eval")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    loss_axes.legend()
    accuracy_axes.plot(epochs, [r["eval_accuracy"] for r in history], marker="o", label="top-1")
    accuracy_axes.plot(epochs, [r.get("eval_top5_accuracy") for r in history], marker="o", label="top-5")
    accuracy_axes.set_xlabel("epoch")
    accuracy_axes.set_ylabel("eval accuracy")
    accuracy_axes.legend()
    figure.tight_layout()
    curve_png = output_dir / "training_curves.png"
    figure.savefig(curve_png, dpi=120)
    plt.close(figure)
    return {"metrics_file": str(metrics_file), "confusion_png": str(confusion_png), "curve_png": str(curve_png)}
