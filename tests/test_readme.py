"""The README's Python snippet runs exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(marker: str) -> str:
    match = re.search(rf"<!-- snippet: {marker} -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, f"README has no snippet marked {marker!r}"
    return match.group(1)


def test_api_snippet_runs_as_written(minilm_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet("api"), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'label': 'cat'" in printed or "'label': 'dog'" in printed or "'label': 'ship'" in printed
    assert "{0: 'zebra', 1: 'lorry', 2: 'cat'}" in printed
    assert (tmp_path / "my-vsenet" / "model.safetensors").exists()


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    commands = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert 'pip install -e ".[test]" && visnet demo' in commands
    assert 'pip install -e ".[test]" && HF_HUB_OFFLINE=1 python -m pytest' in commands
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]"' in ci and "python -m pytest" in ci
