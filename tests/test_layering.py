"""The layers point one way: models, data, metrics and evaluation import nothing from training."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "visnet_hf"
LOWER_LAYERS = ["models", "data", "metrics", "constraints", "zero_shot", "text", "evaluation.py", "reports.py", "backbones.py"]


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the visnet_hf modules a file imports (relative imports resolved)."""
    package = ["visnet_hf", *path.relative_to(PACKAGE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("layer", LOWER_LAYERS)
def test_lower_layers_do_not_import_training(layer):
    files = [PACKAGE / layer] if layer.endswith(".py") else sorted((PACKAGE / layer).rglob("*.py"))
    offenders = {
        str(file.relative_to(PACKAGE)): sorted(m for m in imported_modules(file) if m.startswith("visnet_hf.training"))
        for file in files
    }
    assert {file: modules for file, modules in offenders.items() if modules} == {}


def test_the_check_sees_relative_imports():
    training_setup = PACKAGE / "training" / "setup.py"
    assert "visnet_hf.training.steps" in imported_modules(training_setup)
    assert "visnet_hf.data" in imported_modules(training_setup)


@pytest.mark.parametrize("module", ["evaluation.py", "hub/loading.py", "predict.py"])
def test_scoring_and_loading_do_not_import_the_package_root(module):
    """They import the submodules they use; ``import visnet_hf`` inside them hid a cycle (the root imports them)."""
    assert "visnet_hf" not in imported_modules(PACKAGE / module)


@pytest.mark.parametrize("part", ["zero_shot", "text"])
def test_the_scoring_parts_and_the_text_adapter_do_not_reach_up_into_the_models(part):
    """The model calls them; they never call back (a vocabulary builder takes a text encoder, not the model)."""
    files = sorted((PACKAGE / part).rglob("*.py"))
    offenders = {
        str(f.relative_to(PACKAGE)): sorted(m for m in imported_modules(f) if m.startswith("visnet_hf.models")) for f in files
    }
    assert {file: modules for file, modules in offenders.items() if modules} == {}


def test_data_does_not_import_the_models():
    files = sorted((PACKAGE / "data").rglob("*.py"))
    assert not [f.name for f in files if any(m.startswith("visnet_hf.models") for m in imported_modules(f))]


def test_hub_is_split_by_job():
    assert {p.name for p in (PACKAGE / "hub").glob("*.py")} == {"__init__.py", "loading.py", "cards.py", "sharing.py"}
    assert "visnet_hf.hub.cards" not in imported_modules(PACKAGE / "hub" / "loading.py")
