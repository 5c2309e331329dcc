"""The public API's types: mypy (as CI runs it) rejects a wrong argument type at a call site."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mypy", reason="pip install -e '.[dev]' for mypy")


@pytest.mark.slow
def test_mypy_rejects_wrong_argument_types(tmp_path):
    snippet = tmp_path / "wrong_calls.py"
    snippet.write_text(
        "import visnet_hf\n"
        "from visnet_hf.training import load_config, train\n"
        "from visnet_hf.training.selection import pseudo_unseen_folds\n"
        "visnet_hf.create_model(3)\n"
        "train('configs/quickstart.yaml')\n"
        "pseudo_unseen_folds(['a', 'b'], folds='2')\n"
        "config = load_config('configs/quickstart.yaml')\n"
        "steps: str = config.log_every_steps\n"
        "model = visnet_hf.VSENetForImageClassification(visnet_hf.VSENetConfig())\n"
        "model.set_classes(['zebra'], descriptions=7)\n"
        "fitted: str = visnet_hf.fit_offset(model, [])\n"
    )
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(ROOT / ".mypy_cache"),
        str(snippet),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    out = result.stdout
    assert result.returncode == 1, out
    assert 'Argument 1 to "create_model" has incompatible type "int"; expected "str"' in out
    assert 'Argument 1 to "train" has incompatible type "str"; expected "TrainConfig"' in out
    assert 'Argument "folds" to "pseudo_unseen_folds" has incompatible type "str"; expected "int"' in out
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in out
    assert 'Argument "descriptions" to "set_classes" of "TextSide" has incompatible type "int"' in out
    assert 'variable has type "str")' in out and "dict[str, float]" in out
    assert out.count("error:") == 6, out
