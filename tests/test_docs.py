"""The docs point at what exists: every test that docs/reliability.md cites as proof is a test of the suite."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"`((?:[a-z_]+/)*test_[a-z_0-9]+\.py)?(?:::([a-z_0-9]+))?`")


def test_every_test_the_reliability_page_cites_exists():
    cited = []
    for line in (ROOT / "docs" / "reliability.md").read_text().splitlines():
        file = None  # a bare `::name` belongs to the file cited before it on the same line
        for match in CITATION.finditer(line):
            file = match.group(1) or file
            if match.group(1) or match.group(2):
                assert file, f"{line[:60]}...: `::{match.group(2)}` with no test file before it"
                cited.append((file, match.group(2)))
    assert len(cited) > 40
    for file, name in cited:
        path = ROOT / "tests" / file
        assert path.exists(), f"docs/reliability.md cites {file}, which is not a test file"
        if name:
            defined = {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)}
            assert name in defined, f"docs/reliability.md cites {file}::{name}, which that file does not define"
