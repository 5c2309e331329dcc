"""`visnet extend` with photos as phones take them: issue #36 asks for 25 classes from 100 photos in under 30 s.

python benchmarks/bench_extend_photos.py --model outputs/vsenet_tinyimagenet_zeroshot/model

The photos are 4 of each unseen_dev class (its first 4, as BENCHMARKS.md 5e's timing takes them), saved as they are
(64 pixels) and upscaled to --size (4032x3024 by default, a 12-megapixel phone photo: bicubic, with pixel noise so
that each JPEG file is about as large as a phone's); `visnet extend` is then timed on each set as a user runs it, in a
fresh process from the command line to the saved model, --repeats times. Writes
``benchmarks/results/extend_photos.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, write_result

UNSEEN_DEV = SHARED / "data" / "tiny-imagenet" / "unseen_dev.parquet"
PER_CLASS = 4


def write_photos(folder: Path, size: tuple[int, int] | None, seed: int = 0) -> dict:
    """``folder/<class>/<n>.jpg``: the first 4 photos of each unseen_dev class, at ``size`` (width, height) or their own."""
    import datasets

    rng = np.random.default_rng(seed)
    dataset = datasets.Dataset.from_parquet(str(UNSEEN_DEV))
    names = dataset.features["label"].names
    counts: dict[int, int] = {}
    for row in dataset:
        label = row["label"]
        if counts.get(label, 0) == PER_CLASS:
            continue
        counts[label] = counts.get(label, 0) + 1
        image = row["image"].convert("RGB")
        if size is not None:
            upscaled = np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
            noise = rng.integers(-6, 7, (size[1], size[0], 1), dtype=np.int16)  # the grain of a phone's sensor
            image = Image.fromarray(np.clip(upscaled + noise, 0, 255).astype(np.uint8))
        target = folder / names[label]
        target.mkdir(parents=True, exist_ok=True)
        image.save(target / f"{counts[label]}.jpg", quality=92)
    files = list(folder.rglob("*.jpg"))
    return {"photos": len(files), "classes": len(counts), "megabytes": round(sum(f.stat().st_size for f in files) / 1e6, 1)}


def extend_seconds(model: str, photos: Path, output: Path) -> tuple[float, dict]:
    """One `visnet extend` in a fresh process, timed from the command line to the saved model, and what it printed."""
    command = ["visnet", "extend", "--model", model, "--data", str(photos), "--output-dir", str(output)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved VSENet (the shipped Tiny-ImageNet config's, for 5e)")
    parser.add_argument("--size", default="4032x3024", help="the phone photos' width x height")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    size = tuple(int(side) for side in args.size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for label, photo_size in (("their own size (64 px)", None), (f"{size[0]}x{size[1]}", size)):
            folder = Path(work) / label.split()[0]
            made = write_photos(folder, photo_size)  # type: ignore[arg-type]
            runs = [extend_seconds(args.model, folder, Path(work) / "extended") for _ in range(args.repeats)]
            seconds = [run[0] for run in runs]
            reported = runs[-1][1]
            rows.append({"photos_at": label, **made, "seconds": seconds, "reported_seconds": reported["seconds"]})
            print(f"{label}: {made['photos']} photos ({made['megabytes']} MB), {', '.join(f'{s:.1f}' for s in seconds)} s")
    config = json.loads((Path(args.model) / "config.json").read_text())
    described = {
        "backbone": config["backbone"],
        "input_size": config["data_config"]["input_size"],
        "text_encoder": config["text_config"]["encoder"],
        "trained_classes": len(config["trained_class_names"]),
    }
    write_result("extend_photos", {"model": described, "rows": rows})


if __name__ == "__main__":
    main()
