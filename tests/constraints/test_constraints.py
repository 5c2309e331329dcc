"""Soft Tuning: each built-in constraint measures what its name says and moves a model towards it;
discovery, loading errors, schedules, mixed precision and a community plugin."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import visnet_hf
from tests.helpers import CLASS_NAMES
from visnet_hf.constraints import (
    ConstraintError,
    ConstraintLoadError,
    ConstraintSpec,
    SoftTuning,
    create_constraint,
    list_constraints,
    refresh,
)
from visnet_hf.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BUILT_IN = {"label_deviation", "grey_values", "spatial_position", "filter_values", "semantic_structure"}


def frn():
    torch.manual_seed(0)
    return visnet_hf.create_model("frn_resnet18", num_labels=4, image_size=32)


def vsenet(text_encoder):
    torch.manual_seed(0)
    return visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=text_encoder, image_size=32)


def optimise(model, constraint, batch, steps=8, lr=1e-2):
    """Train on the constraint's term alone; return its value before and after."""
    constraint.setup(model)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    values = []
    for _ in range(steps):
        term = constraint(model, batch, model(**batch))
        values.append(term.item())
        optimizer.zero_grad()
        term.backward()
        optimizer.step()
    return values[0], values[-1]


@pytest.fixture()
def batch():
    generator = torch.Generator().manual_seed(0)
    return {"pixel_values": torch.randn(8, 3, 32, 32, generator=generator), "labels": torch.tensor([0, 1, 2, 3] * 2)}


def test_built_ins_are_registered_like_any_plugin():
    infos = {info.name: info for info in list_constraints()}
    assert set(infos) >= BUILT_IN
    assert all(infos[name].distribution == "visnet-hf" for name in BUILT_IN)


@pytest.mark.slow
def test_listing_imports_no_plugin():
    code = "import sys, visnet_hf.constraints as c; c.list_constraints(); print([m for m in sys.modules if m.startswith('visnet_plugins.')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_label_deviation_measures_drift_and_reduces_it(batch):
    constraint = create_constraint("label_deviation")
    labels = batch["labels"]
    right = SimpleNamespace(logits=20.0 * torch.nn.functional.one_hot(labels, 4).float())
    wrong = SimpleNamespace(logits=20.0 * torch.nn.functional.one_hot((labels + 1) % 4, 4).float())
    assert constraint(None, batch, right).item() < 1e-6
    assert constraint(None, batch, wrong).item() > 0.99
    margin = create_constraint("label_deviation", {"mode": "margin", "margin": 1.0})
    assert margin(None, batch, right).item() == 0.0
    assert margin(None, batch, wrong).item() == pytest.approx(21.0)
    before, after = optimise(frn(), constraint, batch)
    assert after < before


@pytest.mark.slow
def test_grey_values_zero_on_grey_images_and_reduced_by_training(batch):
    constraint = create_constraint("grey_values")
    model = frn().eval()
    with torch.no_grad():
        model.classifier.weight.mul_(100)  # confident, colour-sensitive predictions
    grey = {
        "pixel_values": batch["pixel_values"].mean(1, keepdim=True).expand(-1, 3, -1, -1).contiguous(),
        "labels": batch["labels"],
    }
    # Grey in pixel space: equal channels after undoing the normalisation.
    mean, std = (
        torch.tensor(model.config.data_config["mean"]).view(1, 3, 1, 1),
        torch.tensor(model.config.data_config["std"]).view(1, 3, 1, 1),
    )
    grey["pixel_values"] = (grey["pixel_values"] * 0.2 + 0.5 - mean) / std
    with torch.no_grad():
        assert constraint(model, grey, model(**grey)).item() < 1e-5
        assert constraint(model, batch, model(**batch)).item() > 1e-4
    before, after = optimise(frn(), constraint, batch, lr=0.05)
    assert after < before


@pytest.mark.slow
def test_spatial_position_shift_and_region(batch):
    model = frn().eval()
    with torch.no_grad():
        model.classifier.weight.mul_(100)
    shift = create_constraint("spatial_position", {"mode": "shift", "shift": 4})
    uniform = {"pixel_values": torch.ones(2, 3, 32, 32) * 0.3, "labels": torch.tensor([0, 1])}
    with torch.no_grad():
        assert shift(model, uniform, model(**uniform)).item() < 1e-6  # a shifted uniform image is the same image
        assert shift(model, batch, model(**batch)).item() > 1e-4
        crop = create_constraint("spatial_position", {"mode": "crop", "crop": 0.5})
        assert crop(model, batch, model(**batch)).item() > 1e-4

    region = create_constraint("spatial_position", {"mode": "region", "region": [0.0, 0.0, 0.5, 0.5]})
    inside = torch.zeros(2, 8, 4, 4)
    inside[:, :, :2, :2] = 1.0
    outside = torch.zeros(2, 8, 4, 4)
    outside[:, :, 2:, 2:] = 1.0
    assert region(None, batch, SimpleNamespace(last_hidden_state=inside)).item() == pytest.approx(0.0)
    assert region(None, batch, SimpleNamespace(last_hidden_state=outside)).item() == pytest.approx(1.0)
    torch.manual_seed(0)
    model = visnet_hf.create_model("frn_resnet18", num_labels=4, image_size=64)
    big = {"pixel_values": torch.randn(4, 3, 64, 64), "labels": torch.tensor([0, 1, 2, 3])}
    before, after = optimise(model, region, big, lr=0.05)
    assert after < before
    before, after = optimise(frn(), shift, batch, lr=0.05)
    assert after < before


def test_filter_values_l2sp_and_decorrelation(batch):
    model = frn()
    l2sp = create_constraint("filter_values", {"mode": "l2sp"})
    l2sp.setup(model)
    assert l2sp(model, batch, None).item() == 0.0
    with torch.no_grad():
        model.backbone.conv1.weight.add_(0.1)
    drifted = l2sp(model, batch, None).item()
    assert drifted == pytest.approx(0.01 * model.backbone.conv1.weight.numel(), rel=1e-3)
    # The reference survives a resume through state_dict.
    restored = create_constraint("filter_values", {"mode": "l2sp"})
    restored.load_state_dict(l2sp.state_dict())
    assert restored(model, batch, None).item() == pytest.approx(drifted)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        term = l2sp(model, batch, None)
        optimizer.zero_grad()
        term.backward()
        optimizer.step()
    assert l2sp(model, batch, None).item() < drifted

    decorrelation = create_constraint("filter_values", {"mode": "decorrelation", "prefix": "head."})
    model = frn()
    with torch.no_grad():
        for layer in (model.head.input, model.head.dense, model.head.output):
            torch.nn.init.orthogonal_(layer.weight)
    assert decorrelation(model, batch, None).item() < 1e-10
    with torch.no_grad():
        model.head.input.weight.copy_(model.head.input.weight[:1].expand_as(model.head.input.weight))
    assert decorrelation(model, batch, None).item() > 0.3
    with pytest.raises(ValueError, match="no weights under prefix 'nothing.'"):
        create_constraint("filter_values", {"prefix": "nothing."}).setup(model)


@pytest.mark.slow
def test_semantic_structure_follows_the_text_side(batch, tiny_text_encoder):
    model = vsenet(tiny_text_encoder)
    constraint = create_constraint("semantic_structure", {"gamma": 50.0})
    constraint.setup(model)
    labels = batch["labels"]
    on_text = SimpleNamespace(image_embeds=model.normalized_class_embeddings()[labels])
    assert constraint(model, batch, on_text).item() < 1e-6
    scrambled = SimpleNamespace(image_embeds=model.normalized_class_embeddings()[(labels + 1) % 4].roll(1, dims=1))
    assert constraint(model, batch, scrambled).item() > 1e-3
    before, after = optimise(model, create_constraint("semantic_structure", {"gamma": 5.0}), batch, lr=0.05)
    assert after < before
    with pytest.raises(ValueError, match="needs a VSENet"):
        constraint.setup(frn())


@pytest.mark.slow
def test_terms_are_float32_under_bf16_autocast(batch, tiny_text_encoder):
    model = vsenet(tiny_text_encoder)
    specs = [ConstraintSpec("label_deviation"), ConstraintSpec("semantic_structure", weight=2.0), ConstraintSpec("grey_values")]
    soft_tuning = SoftTuning.build(specs)
    soft_tuning.setup(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(**batch)
        terms = soft_tuning.terms(model, batch, outputs, step=0, epoch=0)
    assert outputs.logits.dtype == torch.bfloat16 or outputs.semantic_logits.dtype == torch.bfloat16
    assert set(terms) == {"label_deviation", "semantic_structure", "grey_values"}
    assert all(t.dtype == torch.float32 and t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    sum(terms.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_weight_schedule():
    spec = ConstraintSpec("label_deviation", weight=2.0, start=10, stop=20, warmup=4)
    assert [spec.weight_at(s, 0) for s in (0, 9, 10, 11, 13, 19, 20)] == [0.0, 0.0, 0.5, 1.0, 2.0, 2.0, 0.0]
    by_epoch = ConstraintSpec("label_deviation", weight=1.0, start=1, unit="epoch")
    assert by_epoch.weight_at(500, 0) == 0.0 and by_epoch.weight_at(0, 1) == 1.0
    with pytest.raises(ValueError, match="stop=5 must be greater than start=5"):
        ConstraintSpec("x", start=5, stop=5)


def test_every_problem_is_reported_once_with_close_matches():
    specs = [
        ConstraintSpec("label_deviaton"),
        ConstraintSpec("grey_values", params={"strength": 1}),
        ConstraintSpec("spatial_position", params={"mode": "rotate"}),
    ]
    with pytest.raises(ConstraintLoadError) as error:
        SoftTuning.build(specs)
    message = str(error.value)
    assert "Unknown constraint 'label_deviaton'. Did you mean 'label_deviation'?" in message
    assert (
        f"Constraint 'grey_values' (from visnet-hf {visnet_hf.__version__}) has bad parameters: params.strength: unknown key. Valid keys: none"
        in message
    )
    assert "params.mode: expected one of ['shift', 'crop', 'region'], got 'rotate'" in message


def test_allow_and_deny_lists():
    with pytest.raises(ConstraintLoadError, match="'grey_values' is in the deny list"):
        SoftTuning.build([ConstraintSpec("grey_values")], deny=["grey_values"])
    with pytest.raises(ConstraintLoadError, match="not in the allow list"):
        SoftTuning.build([ConstraintSpec("grey_values")], allow=["label_deviation"])


@pytest.fixture()
def fake_plugins(tmp_path, monkeypatch):
    """A distribution with a broken, a wrong-kind and a non-scalar constraint, on sys.path."""
    (tmp_path / "fake_plugins.py").write_text(
        textwrap.dedent(
            """
            import torch
            from visnet_hf.constraints import Constraint

            def not_a_class():
                pass

            class Vector(Constraint):
                def __call__(self, model, batch, outputs):
                    return outputs.logits.mean(0)

            class NaN(Constraint):
                def __call__(self, model, batch, outputs):
                    return outputs.logits.sum() * float("nan")
            """
        )
    )
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('needs the package shiny, which is not installed')\n")
    dist = tmp_path / "fake_plugins-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugins\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        "[visnet_hf.constraints]\n"
        "broken = broken_plugin:Broken\n"
        "wrong_kind = fake_plugins:not_a_class\n"
        "vector = fake_plugins:Vector\n"
        "nan_term = fake_plugins:NaN\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    refresh()
    yield tmp_path
    monkeypatch.undo()
    refresh()


def test_plugin_failures_name_the_constraint_distribution_and_cause(fake_plugins, batch):
    with pytest.raises(ConstraintLoadError) as error:
        SoftTuning.build([ConstraintSpec("broken"), ConstraintSpec("wrong_kind")])
    message = str(error.value)
    assert (
        "Constraint 'broken' (from fake-plugins 1.2.3, broken_plugin:Broken) failed to import: ImportError: needs the package shiny"
        in message
    )
    assert "Constraint 'wrong_kind' (from fake-plugins 1.2.3) points at fake_plugins:not_a_class, which is a function" in message

    soft_tuning = SoftTuning.build([ConstraintSpec("vector")])
    outputs = SimpleNamespace(logits=torch.randn(8, 4))
    with pytest.raises(ConstraintError, match=r"Constraint 'vector' must return one scalar tensor, got \(4,\) at step 7"):
        soft_tuning.terms(None, batch, outputs, step=7, epoch=0)


def test_plugins_list_command_reports_failures(fake_plugins, capsys):
    from visnet_hf.cli import main

    assert main(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    assert f"label_deviation        visnet-hf {visnet_hf.__version__:10s} loads" in out
    assert "broken                 fake-plugins 1.2.3      FAILS: Constraint 'broken'" in out


def test_two_distributions_registering_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    for dist_name, module in (("first-plugins", "first_plugins"), ("second-plugins", "second_plugins")):
        (tmp_path / f"{module}.py").write_text(
            "from visnet_hf.constraints import Constraint\nclass Smooth(Constraint):\n    pass\n"
        )
        dist = tmp_path / f"{module}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[visnet_hf.constraints]\nsmooth = {module}:Smooth\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    refresh()
    try:
        message = (
            r"Constraint 'smooth' is registered by 2 distributions: (first|second)-plugins 1.0 \((first|second)_plugins:Smooth\)"
            r" and (first|second)-plugins 1.0 .*Uninstall all but one"
        )
        with pytest.raises(ConstraintLoadError, match=message):
            create_constraint("smooth")
        from visnet_hf.training import load_config

        with pytest.raises(ConfigError, match=r"stages\[0\].constraints\[0\].name: Constraint 'smooth' is registered by 2"):
            load_config(None, ["data.path=x", "stages=[{name: a, constraints: [{name: smooth}]}]"])
    finally:
        monkeypatch.undo()
        refresh()
    assert "smooth" not in {info.name for info in list_constraints()}


def test_plugins_are_found_once_per_process(monkeypatch):
    import importlib.metadata

    import visnet_hf.constraints.plugins as plugins

    refresh()
    calls = []
    real = importlib.metadata.entry_points
    monkeypatch.setattr(plugins, "entry_points", lambda **kw: calls.append(kw) or real(**kw))
    refresh()
    for _ in range(3):
        list_constraints()
        create_constraint("label_deviation")
    assert len(calls) == 1
    refresh()
