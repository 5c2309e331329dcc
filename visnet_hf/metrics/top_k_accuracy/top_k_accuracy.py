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
        from visnet_hf.scores import top_k_accuracy  # the project's one top-k, so every report agrees

        scores = np.asarray(predictions, dtype=np.float32).reshape(len(references), -1)
        return {f"top{k}_accuracy": top_k_accuracy(scores, np.asarray(references, dtype=np.int64), k)}
