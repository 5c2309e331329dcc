"""Top-k accuracy from per-class scores, shipped with visnet_hf so that it loads offline."""

import datasets
import evaluate
import numpy as np


class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Fraction of references among the k highest-scoring classes.",
            citation="",
            inputs_description="predictions: per-class scores (one list per example); references: true label ids; k.",
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k=5):
        scores, references = np.asarray(predictions), np.asarray(references)
        top = np.argsort(-scores, axis=1)[:, : min(k, scores.shape[1])]
        return {f"top{k}_accuracy": float((top == references[:, None]).any(1).mean()) if len(references) else 0.0}
