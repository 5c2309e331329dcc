"""Shared by the benchmark scripts: machine description, timing, result files."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def machine() -> dict[str, Any]:
    import accelerate
    import timm
    import torch
    import transformers

    cpu, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpu": cpu,
        # Hosts sold under one name differ: bf16 is fast only with native bf16 instructions, slow when emulated.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def write_result(name: str, payload: dict[str, Any], results: Path = RESULTS, kind: str = "benchmark") -> Path:
    """``results/<name>.json`` with the command and the machine that measured it (a study passes its own folder)."""
    results.mkdir(parents=True, exist_ok=True)
    payload = {kind: name, "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(), **payload}
    path = results / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path


def write_study(name: str, payload: dict[str, Any], folder: Path, markdown: str, report: Callable[[dict], str]) -> Path:
    """A study's ``folder/results/<name>.json`` (:func:`write_result`) and its report, rendered from that file, in
    ``folder/<markdown>``."""
    path = write_result(name, payload, results=folder / "results", kind="study")
    (folder / markdown).write_text(report(json.loads(path.read_text())))
    print(f"wrote {folder / markdown}")
    return path


def machine_text(machine: dict[str, Any] | str) -> str:
    """A result's machine as one line of ``key value`` pairs (older results hold a string)."""
    return machine if isinstance(machine, str) else ", ".join(f"{k} {v}" for k, v in machine.items())


def timed(function: Callable[[], Any], repeat: int) -> float:
    """Seconds for ``repeat`` calls (after the caller's warm-up)."""
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return time.perf_counter() - start


def alternate(candidates: dict[str, Callable[[], Any]], rounds: int, repeat: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time every candidate once per round, in turn, so that drift on a noisy machine hits all alike.
    The order rotates from round to round, so no candidate always runs first or after the same one."""
    for function in candidates.values():
        for _ in range(warmup):
            function()
    names = list(candidates)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(candidates[name], repeat))
    return times


def ratio(times: dict[str, list[float]], name: str, baseline: str) -> float:
    """Median over rounds of the per-round time ratio (each round's pair ran back to back)."""
    return statistics.median(a / b for a, b in zip(times[name], times[baseline]))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
