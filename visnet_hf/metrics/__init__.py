"""Offline ``evaluate`` modules: accuracy, top-k accuracy, per-class report, confusion matrix.

``evaluate.load("accuracy")`` fetches from the Hub; these load from the installed package.
"""

from __future__ import annotations

from pathlib import Path

import evaluate

METRICS = ("accuracy", "top_k_accuracy", "classification_report", "confusion_matrix")
_HERE = Path(__file__).parent


def load_metric(name: str) -> evaluate.EvaluationModule:
    """``evaluate.load`` of a metric shipped in this package (works offline)."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; shipped metrics: {list(METRICS)}.")
    return evaluate.load(str(_HERE / name))


def compute_all(scores, references, class_names: list[str], k: int = 5) -> dict:
    """Every shipped metric for per-class ``scores`` (N, K) and true labels (N,)."""
    import numpy as np

    scores, references = np.asarray(scores, dtype=np.float32), np.asarray(references)
    predictions = scores.argmax(1)
    num_classes = len(class_names)
    results = {}
    results.update(load_metric("accuracy").compute(predictions=predictions, references=references))
    results.update(load_metric("top_k_accuracy").compute(predictions=scores, references=references, k=k))
    results["report"] = load_metric("classification_report").compute(
        predictions=predictions, references=references, num_classes=num_classes, class_names=class_names
    )
    results.update(
        load_metric("confusion_matrix").compute(predictions=predictions, references=references, num_classes=num_classes)
    )
    return results
