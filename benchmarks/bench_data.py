"""Benchmark 3: one epoch of `visnet train` on CIFAR-10 (decode, augment, collate, step) against the
pure model compute for the same steps on pre-decoded tensors, alternated in ABBA order.

    python benchmarks/bench_data.py [--rounds 2] [--num-workers 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import SHARED, write_result

CIFAR10 = SHARED / "data" / "cifar10" / "train.parquet"
BATCH = 128


def framework_epoch(output_dir: str, num_workers: int) -> dict:
    from accelerate.state import AcceleratorState

    from visnet_hf.training import main as train_main

    AcceleratorState._reset_state()
    results = train_main(
        [
            "--config",
            str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"),
            "model.name=frn_resnet18",
            "data.max_train_samples=null",
            "data.val_fraction=0.1",
            f"data.path={CIFAR10}",
            f"batch_size={BATCH}",
            "stages.0.epochs=1",
            f"output_dir={output_dir}",
            "trackers=[]",
            "data.max_eval_samples=256",
            f"data.num_workers={num_workers}",
        ]
    )
    record = results["state"]["history"][-1]
    return {"seconds": record["train_seconds"], "steps": record["step"]}


def compute_only(steps: int, images: torch.Tensor) -> float:
    import visnet_hf

    torch.manual_seed(0)
    model = visnet_hf.create_model("frn_resnet18", num_labels=10, image_size=32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=0.05)
    labels = torch.randint(0, 10, (len(images),))
    order = torch.randperm(len(images))
    start = time.perf_counter()
    for step in range(steps):
        index = order[(step * BATCH) % (len(images) - BATCH) :][:BATCH]
        loss = model(pixel_values=images[index], labels=labels[index]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def predecoded() -> torch.Tensor:
    import datasets
    import numpy as np

    dataset = datasets.Dataset.from_parquet(str(CIFAR10)).select(range(45000))
    array = np.stack([np.asarray(image.convert("RGB")) for image in dataset["image"]])
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (tensor - mean) / std


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of the framework side")
    args = parser.parse_args()
    images = predecoded()
    rows = []
    steps = len(range(0, 45000 - BATCH + 1, BATCH))  # the framework's drop_last batches per epoch

    def framework_side() -> dict:
        with tempfile.TemporaryDirectory() as directory:
            return framework_epoch(directory, args.num_workers)

    sides = {"framework": framework_side, "compute": lambda: compute_only(steps, images)}
    for round_index in range(args.rounds):
        # ABBA order: a machine that speeds up or slows down over the run favours neither side.
        order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
        measured = {side: sides[side]() for side in order}
        framework, compute = measured["framework"], measured["compute"]
        assert framework["steps"] == steps, (framework["steps"], steps)
        rows.append({"framework_seconds": framework["seconds"], "compute_seconds": compute, "steps": framework["steps"]})
        print(rows[-1])
    write_result(
        "data_pipeline" + (f"_workers{args.num_workers}" if args.num_workers else ""),
        {
            "dataset": str(CIFAR10),
            "model": "frn_resnet18 at 32x32, AdamW, batch 128, random crop (padding 4) + flip",
            "num_workers": args.num_workers,
            "order": "ABBA",
            "rows": rows,
            "ratio": statistics.median(r["framework_seconds"] / r["compute_seconds"] for r in rows),
        },
    )


if __name__ == "__main__":
    main()
