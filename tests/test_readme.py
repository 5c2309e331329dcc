"""The README's Python snippet runs exactly as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(marker: str) -> str:
    match = re.search(rf"<!-- snippet: {marker} -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, f"README has no snippet marked {marker!r}"
    return match.group(1)


@pytest.mark.slow
def test_api_snippet_runs_as_written(minilm_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet("api"), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'label': 'cat'" in printed or "'label': 'dog'" in printed or "'label': 'ship'" in printed
    assert "{0: 'zebra', 1: 'lorry', 2: 'cat'}" in printed
    assert "'label': 'zebra'" in printed and "'label': 'lorry'" in printed  # the zero-shot pipeline's answer
    assert (tmp_path / "my-vsenet" / "model.safetensors").exists()
    saved = json.loads((tmp_path / "my-vsenet" / "config.json").read_text())
    assert saved["text_config"]["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"  # portable: no path of this machine
    assert "get_model_path" not in snippet("api")


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    commands = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert (
        'pip install -e ".[test]" && HF_HUB_OFFLINE=1 accelerate launch --cpu train.py --config configs/quickstart.yaml'
        in commands
    )
    assert 'pip install -e ".[test,dev]" && HF_HUB_OFFLINE=1 python -m pytest' in commands
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -e ".[test,dev]"' in ci and "python -m pytest" in ci and "export HF_HUB_OFFLINE=1" in ci
    assert all(check in ci for check in ("ruff check .", "ruff format --check .", "mypy"))


def test_constraint_snippet_is_a_working_constraint():
    from types import SimpleNamespace

    import torch

    from visnet_hf.constraints import Constraint

    namespace: dict = {}
    exec(compile(snippet("constraint"), "README.md", "exec"), namespace)
    constraint = namespace["LogitNorm"](target=1.0)
    assert isinstance(constraint, Constraint)
    value = constraint(None, {}, SimpleNamespace(logits=torch.tensor([[3.0, 4.0]])))
    assert value.item() == pytest.approx(16.0)
    with pytest.raises(ValueError, match="params.targt: unknown key. Did you mean 'target'"):
        namespace["LogitNorm"](targt=1.0)
