"""Benchmark 5d: Mixup / CutMix and layer-wise learning-rate decay, each against its absence, at the same budget.

The recipe is the CIFAR-10 fine-tune of 5a (FRN on ImageNet-pretrained tf_efficientnet_lite0, 64x64, AdamW,
head 2e-3 / backbone 5e-4, warm-up + cosine, crop + flip), shortened to fit a CPU: the first 10,000 images of
5a's training part, 2 epochs (156 optimizer steps, the first 15 warm-up). Each arm changes one thing, to the value timm's fine-tuning recipes use, fixed
before any run (nothing is chosen here, so the test part is only scored):

    neither          the recipe as it is
    mixup + cutmix   mixup: {mixup_alpha: 0.8, cutmix_alpha: 1.0}  (switch_prob 0.5, prob 1.0: timm's defaults)
    layer decay      optim.layer_decay: 0.75  (each backbone layer group below the top learns 0.75x slower)

Every arm runs the same seeds; each is scored on 5a's fixed test part (5,000 images, never trained on).
The table gives each arm's mean top-1 with its standard error over seeds, and each knob's paired
difference from "neither" (same seed, same data order) with its standard error.

    python benchmarks/bench_recipes.py --seeds 0 1 2        # about 30 min on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import write_result
from bench_cifar10 import CIFAR10, framework, split_files

TRAIN_IMAGES, EPOCHS, WARMUP = 10000, 2, 15
ARMS = {
    "neither": [],
    "mixup + cutmix": ["mixup={mixup_alpha: 0.8, cutmix_alpha: 1.0}"],
    "layer decay 0.75": ["optim.layer_decay=0.75"],
}


def standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if not CIFAR10.exists():
        raise SystemExit(f"CIFAR-10 not found at {CIFAR10}")
    budget = [
        f"data.max_train_samples={TRAIN_IMAGES}",
        f"stages=[{{name: train, epochs: {EPOCHS}}}]",
        f"optim.warmup_steps={WARMUP}",
        "export=false",
    ]
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as directory:
        train, test = split_files(Path(directory))
        for seed in args.seeds:
            for arm, overrides in ARMS.items():
                result = framework("efficientnet_lite0_finetune", train, test, seed, "fp32", [*budget, *overrides])
                result.pop("model")
                runs[arm].append(result)
                print(f"seed {seed}  {arm:18s} top-1 {result['accuracy']:.4f} on {result['num_examples']} images")
    baseline = [run["accuracy"] for run in runs["neither"]]
    summary = {}
    for arm, results in runs.items():
        accuracy = [run["accuracy"] for run in results]
        differences = [a - b for a, b in zip(accuracy, baseline, strict=True)]
        summary[arm] = {
            "overrides": ARMS[arm],
            "accuracy_mean": statistics.mean(accuracy),
            "accuracy_se": standard_error(accuracy),
            "difference_mean": statistics.mean(differences),
            "difference_se": standard_error(differences),
            "train_seconds_mean": statistics.mean(run["train_seconds"] for run in results),
            "num_examples": results[0]["num_examples"],
            "runs": results,
        }
    write_result(
        "recipes_mixup_layer_decay",
        {
            "recipe": {
                "config": "configs/frn_efficientnet_lite0_cifar10.yaml",
                "train_images": TRAIN_IMAGES,
                "epochs": EPOCHS,
                "warmup_steps": WARMUP,
                "test_split": "5a's fixed test part: a stratified 10% of train.parquet, seed 0",
            },
            "seeds": args.seeds,
            "arms": summary,
        },
    )


if __name__ == "__main__":
    main()
