"""What the zero-shot studies share: where they write, and the zero-shot benchmark's setup they start from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark's base config, folds and references (a script, not the library)

import _common  # noqa: E402


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """``results/<name>.json`` beside the studies, with the command and the machine that measured it."""
    return _common.write_result(name, payload, results=HERE / "results", kind="study")
