"""WiSE-FT: two checkpoints of one model interpolated, as a command, a training option, and chosen per use."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import visnet_hf
from tests.helpers import CLASS_NAMES, write_config
from visnet_hf.cli import main as cli
from visnet_hf.errors import ConfigError
from visnet_hf.training import load_config, train
from visnet_hf.wise_ft import interpolate, interpolate_state


@pytest.mark.slow
def test_wise_ft_interpolates_two_checkpoints(tiny_text_encoder, tmp_path, pixel_batch):
    torch.manual_seed(0)
    first = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32)
    second = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32)
    mixed = interpolate(first, second, 0.25)
    for name, value in mixed.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.75 * first.state_dict()[name] + 0.25 * second.state_dict()[name])
    torch.testing.assert_close(interpolate(first, second, 0.0)(pixel_batch).logits, first(pixel_batch).logits)
    with pytest.raises(ConfigError, match="alpha=1.5 must lie in"):
        interpolate_state(first.state_dict(), second.state_dict(), 1.5)
    other = visnet_hf.create_model("vsenet_resnet18", class_names=["cat", "dog"], text_encoder=tiny_text_encoder, image_size=32)
    with pytest.raises(ConfigError, match="their trained_class_names differ"):
        interpolate(first, other, 0.5)
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    assert cli(["wise-ft", str(tmp_path / "a"), str(tmp_path / "b"), "--alpha", "0.25", "--output", str(tmp_path / "c")]) == 0
    saved = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path / "c").eval()
    torch.testing.assert_close(saved(pixel_batch).logits, mixed.eval()(pixel_batch).logits, atol=1e-5, rtol=1e-5)
    assert json.loads((tmp_path / "c" / "wise_ft.json").read_text())["alpha"] == 0.25


@pytest.mark.slow
def test_wise_ft_as_a_training_option(tiny_parquet, tiny_text_encoder, tmp_path):
    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    stages = "stages=[{name: align, epochs: 1, objective: align}, {name: finetune, epochs: 1, objective: joint}]"
    results = train(load_config(config, [stages, "wise_ft={stage: align, alpha: 0.5}"]))
    ends = results["wise_ft_endpoints"]
    expected = interpolate_state(ends["start"], ends["final"], 0.5)
    exported = load_file(tmp_path / "run" / "model" / "model.safetensors")
    for name in ("projection.weight", "classifier.weight"):
        torch.testing.assert_close(exported[name], expected[name])
        assert not torch.allclose(ends["start"][name], ends["final"][name])
    assert results["state"]["history"][-1]["stage"] == "wise_ft"
    with pytest.raises(ConfigError, match="wise_ft.stage='finetune' must name a stage before the last"):
        load_config(config, [stages, "wise_ft={stage: finetune}"])


@pytest.mark.slow
def test_wise_ft_chosen_per_use(tiny_parquet, tiny_text_encoder, tmp_path, pixel_batch):
    """wise_ft.seen_alpha: the trained vocabulary is scored at seen_alpha, every other vocabulary at alpha."""
    import copy

    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    overrides = [
        "optim.freeze=backbone",
        "stages=[{name: align, steps: 3, objective: align}, {name: tune, steps: 3, objective: joint}]",
        "wise_ft={stage: align, alpha: 0.25, seen_alpha: 1.0}",
    ]
    with pytest.raises(ConfigError, match="wise_ft.seen_alpha keeps only the heads twice, so it needs optim.freeze: backbone"):
        load_config(config, [*overrides, "optim.freeze=none"])
    results = train(load_config(config, overrides))
    model, ends = results["model"].eval(), results["wise_ft_endpoints"]
    assert model.config.zero_shot_config.separate_heads and model.zero_shot_heads is not None

    def scored_at(alpha, **kwargs):
        reference = copy.deepcopy(model)
        reference.zero_shot_heads, reference.config.zero_shot_config.separate_heads = None, False
        reference.load_state_dict(interpolate_state(ends["start"], ends["final"], alpha))
        with torch.no_grad():
            return reference(pixel_batch, **kwargs).logits

    new = model.vocabulary_for(["zebra", "ox", "hippopotamus"])
    with torch.no_grad():
        trained_logits, new_logits = model(pixel_batch).logits, model(pixel_batch, vocabulary=new).logits
    torch.testing.assert_close(trained_logits, scored_at(1.0))
    torch.testing.assert_close(new_logits, scored_at(0.25, vocabulary=new))
    assert not torch.allclose(new_logits, scored_at(1.0, vocabulary=new))
    reloaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path / "run" / "model").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_batch, vocabulary=new).logits, new_logits)
        torch.testing.assert_close(reloaded(pixel_batch).logits, trained_logits)
