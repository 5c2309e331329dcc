"""What the zero-shot studies share: where they write, and the zero-shot benchmark's setup they start from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark's base config, folds and references (a script, not the library)

from _common import machine  # noqa: E402


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """``results/<name>.json`` beside the studies, with the command and the machine that measured it."""
    import json

    path = HERE / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"study": name, "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path
