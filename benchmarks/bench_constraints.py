"""Benchmark 8: Soft Tuning's own claim. The five built-in constraints against none, same budget, three seeds.

A VSENet on timm resnet18, from scratch, 32 px (semantic_structure needs a VSENet's class embeddings),
trained on the first ``--train-images`` images of CIFAR-10's training part for ``--epochs`` epochs with
the quickstart recipe (AdamW, warm-up + cosine, the seed's crop-and-flip augmentation), fp32 and
channels_last (this host's fastest flags), with each constraint at weight 1.0 and its default
parameters: the setting a user gets by naming it. No weight or parameter was tuned, so the table says
whether the default helps at this budget, not whether a tuned one would. Scored on the held-out 10%
of ``train.parquet`` (5,000 images, the split of every CIFAR-10 benchmark here) and on a greyscale copy
of it (the robustness grey_values is about).

    python benchmarks/bench_constraints.py              # 6 x 3 runs, about 40 minutes on 2 cores
    python benchmarks/bench_constraints.py --quick      # every part once, on a few images
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from _common import ROOT, write_result
from bench_cifar10 import CIFAR10

CONSTRAINTS = ("none", "label_deviation", "grey_values", "spatial_position", "filter_values", "semantic_structure")


def greyscale_copy(data, seed: int, folder: Path) -> str:
    """The eval split, each image converted to grey (and back to three channels), as a parquet file."""
    from visnet_hf.data import load_splits

    evaluation = load_splits(data, seed=seed).eval
    grey = evaluation.map(lambda row: {"image": row["image"].convert("L").convert("RGB")}, desc="greyscale")
    path = folder / "grey_eval.parquet"
    grey.select_columns(["image", "label"]).to_parquet(str(path))
    return str(path)


def run(constraint: str, seed: int, args, grey_path: str) -> dict:
    from visnet_hf.data import load_eval_data
    from visnet_hf.evaluation import evaluate_on
    from visnet_hf.training import load_config, make_accelerator, train

    constraints = "[]" if constraint == "none" else f"[{{name: {constraint}, weight: 1.0}}]"
    with tempfile.TemporaryDirectory() as output:
        config = load_config(
            ROOT / "configs" / "quickstart.yaml",
            [
                "model.name=vsenet_resnet18",
                "model.image_size=32",
                "model.channels_last=true",
                f"data.path={CIFAR10}",
                "data.val_fraction=0.1",
                f"data.max_train_samples={args.train_images}",
                f"data.max_eval_samples={args.eval_images or 'null'}",
                f"stages=[{{name: train, epochs: {args.epochs}, constraints: {constraints}}}]",
                f"seed={seed}",
                f"output_dir={output}",
                "trackers=[]",
                "checkpoints=false",
                "export=false",
                "log_every_steps=100000",
            ],
        )
        started = time.perf_counter()
        results = train(config, make_accelerator(config))
        seconds = time.perf_counter() - started
    grey_data = replace(config.data, path=grey_path, max_eval_samples=None)
    grey = evaluate_on(results["model"], load_eval_data(grey_data), grey_data)
    row = {
        "constraint": constraint,
        "seed": seed,
        "accuracy": results["final_eval"]["accuracy"],
        "images": results["final_eval"]["num_examples"],
        "grey_accuracy": grey["accuracy"],
        "grey_images": grey["num_examples"],
        "seconds": seconds,
    }
    print(row, flush=True)
    return row


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard error over the seeds, per constraint, and the difference to no constraint."""

    def mean_se(values):
        return statistics.fmean(values), (statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0)

    table = []
    for constraint in CONSTRAINTS:
        mine = [r for r in rows if r["constraint"] == constraint]
        if not mine:
            continue
        entry = {"constraint": constraint, "seeds": len(mine)}
        for metric in ("accuracy", "grey_accuracy", "seconds"):
            entry[metric], entry[f"{metric}_se"] = mean_se([r[metric] for r in mine])
        table.append(entry)
    base = next(e for e in table if e["constraint"] == "none")
    for entry in table:
        for metric in ("accuracy", "grey_accuracy"):
            entry[f"{metric}_vs_none"] = entry[metric] - base[metric]
            # The standard error of a difference of two independent means.
            entry[f"{metric}_vs_none_se"] = (entry[f"{metric}_se"] ** 2 + base[f"{metric}_se"] ** 2) ** 0.5
    return table


def main() -> None:
    from visnet_hf.training import load_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eval-images", type=int, default=None, help="score only the first N held-out images")
    parser.add_argument("--quick", action="store_true", help="every part once: 1 seed, 256 images, 1 epoch, 200 scored")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.train_images, args.epochs, args.eval_images = 1, 256, 1, 200
    started = time.perf_counter()
    base = load_config(ROOT / "configs" / "quickstart.yaml", [f"data.path={CIFAR10}", "data.val_fraction=0.1"])
    with tempfile.TemporaryDirectory() as folder:
        grey_path = greyscale_copy(replace(base.data, max_eval_samples=args.eval_images), 0, Path(folder))
        # Seed-major order: a drift in the machine's speed spreads over every constraint alike.
        rows = [run(constraint, seed, args, grey_path) for seed in range(args.seeds) for constraint in CONSTRAINTS]
    write_result(
        "constraints_quick" if args.quick else "constraints",
        {
            "model": "vsenet_resnet18 from scratch, 32 px, fp32 + channels_last",
            "train_images": args.train_images,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "weight": 1.0,
            "rows": rows,
            "summary": summary(rows),
            "seconds": time.perf_counter() - started,
        },
    )


if __name__ == "__main__":
    main()
