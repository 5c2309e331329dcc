"""Streaming against the map-style path: images/s for one CIFAR-10 epoch, and the memory a stream holds.

CIFAR-10's training set (``../shared/data``; a stratified 10% kept as the eval file) is written as 16
parquet shards. One epoch of ``visnet train`` (frn_resnet18 at 32x32, batch 128, the seed's
augmentation) runs map-style and streamed (``data.streaming: true``, the same shards), in ABBA order;
the ratio of their training times is the streaming overhead (goal <= 1.10). Then the streamed run's
peak memory after the same number of steps, with the shards once and four times over: a stream holds
a shuffle buffer and a few batches, not the dataset, so it must not grow with the data.

    python benchmarks/bench_streaming.py [--rounds 2] [--memory-steps 150]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, SHARED, write_result

CIFAR10 = SHARED / "data" / "cifar10" / "train.parquet"
SHARDS = 16
TRAIN_IMAGES, BATCH = 45_000, 128


def write_shards(folder: Path, copies: int = 1) -> tuple[list[str], str]:
    import datasets

    parts = datasets.Dataset.from_parquet(str(CIFAR10)).train_test_split(test_size=0.1, seed=0, stratify_by_column="label")
    shards = []
    for index in range(SHARDS):
        path = folder / f"train-{index:05d}.parquet"
        parts["train"].shard(num_shards=SHARDS, index=index, contiguous=True).to_parquet(str(path))
        shards.append(str(path))
    eval_file = folder / "eval.parquet"
    parts["test"].to_parquet(str(eval_file))
    return shards * copies, str(eval_file)


def run(shards: list[str], eval_file: str, streaming: bool, steps: int | None, output: str) -> dict:
    """One `visnet train` in a fresh process; its training seconds, steps and peak RSS (MiB)."""
    config = {
        "model": {"name": "frn_resnet18", "image_size": 32},
        "data": {
            "source": "parquet",
            "path": shards,
            "eval_path": eval_file,
            "streaming": streaming,
            "shuffle_buffer": 1000,
            "max_eval_samples": None,
        },
        "optim": {"optimizer": "adamw", "lr": 0.002, "warmup_steps": 50},
        "stages": [{"name": "train", "steps": steps} if steps else {"name": "train", "epochs": 1}],
        "batch_size": BATCH,
        "output_dir": output,
        "trackers": [],
        "checkpoints": False,
        "export": False,
        "log_every_steps": 10**9,
    }
    code = (
        "import json, resource, sys, yaml; from visnet_hf.training import config_from_dict, train;"
        f"results = train(config_from_dict(json.loads({json.dumps(json.dumps(config))})));"
        "history = results['state']['history'];"
        "print('RESULT', json.dumps({'train_seconds': sum(h['train_seconds'] for h in history), 'steps': results['state']['counter']['step'],"
        " 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-steps", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        shards, eval_file = write_shards(Path(folder))
        rounds = []
        # A stream has no length: it runs the map-style epoch's number of steps (whose loader drops the last, short batch).
        epoch_steps = TRAIN_IMAGES // BATCH
        for index in range(args.rounds):  # ABBA: map-style first in odd rounds, the stream first in even ones
            order = (False, True) if index % 2 == 0 else (True, False)
            timed = {
                streaming: run(shards, eval_file, streaming, epoch_steps if streaming else None, f"{folder}/out")
                for streaming in order
            }
            if timed[False]["steps"] != epoch_steps:
                raise RuntimeError(f"the map-style epoch took {timed[False]['steps']} steps, not {epoch_steps}")
            rounds.append(
                {
                    "map_style": timed[False],
                    "streaming": timed[True],
                    "ratio": timed[True]["train_seconds"] / timed[False]["train_seconds"],
                }
            )
            print(rounds[-1], flush=True)
        memory = {f"{copies}x": run(shards * copies, eval_file, True, args.memory_steps, f"{folder}/out") for copies in (1, 4)}
        print(memory, flush=True)
    write_result(
        "streaming",
        {
            "model": "frn_resnet18",
            "image_size": 32,
            "batch": BATCH,
            "shards": SHARDS,
            "train_images": TRAIN_IMAGES,
            "rounds": rounds,
            "median_ratio": statistics.median(r["ratio"] for r in rounds),
            "memory_steps": args.memory_steps,
            "memory": memory,
        },
    )


if __name__ == "__main__":
    main()
