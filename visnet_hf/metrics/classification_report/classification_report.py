"""Per-class precision, recall and F1 (the seed's classification report), shipped for offline use."""

import datasets
import evaluate
import numpy as np


class ClassificationReport(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Per-class precision, recall, F1 and support, with macro and weighted averages.",
            citation="",
            inputs_description="predictions, references: label ids; num_classes; optional class_names.",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_classes=None, class_names=None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        num_classes = num_classes or (len(class_names) if class_names else int(max(predictions.max(), references.max())) + 1)
        names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        per_class = {}
        for index, name in enumerate(names):
            true_positive = int(((predictions == index) & (references == index)).sum())
            predicted = int((predictions == index).sum())
            support = int((references == index).sum())
            precision = true_positive / predicted if predicted else 0.0
            recall = true_positive / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        supports = np.array([c["support"] for c in per_class.values()], dtype=float)
        report = {"per_class": per_class}
        for key in ("precision", "recall", "f1"):
            values = np.array([c[key] for c in per_class.values()])
            report[f"macro_{key}"] = float(values.mean())
            report[f"weighted_{key}"] = float((values * supports).sum() / supports.sum()) if supports.sum() else 0.0
        return report
