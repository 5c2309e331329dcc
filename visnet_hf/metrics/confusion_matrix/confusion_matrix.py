"""Confusion matrix (rows: true class, columns: predicted class), shipped for offline use."""

import datasets
import evaluate
import numpy as np


class ConfusionMatrix(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Counts of (true, predicted) label pairs.",
            citation="",
            inputs_description="predictions, references: label ids; num_classes.",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_classes=None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        num_classes = num_classes or int(max(predictions.max(), references.max())) + 1
        matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(matrix, (references, predictions), 1)
        return {"confusion_matrix": matrix.tolist()}
