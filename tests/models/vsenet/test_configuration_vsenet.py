"""VSENet's config, grouped as CLIPConfig groups its parts; the flat spellings of visnet_hf 0.2 still read."""

from __future__ import annotations

import json

import pytest

import visnet_hf
from visnet_hf import VSENetConfig, VSENetTextConfig, VSENetZeroShotConfig
from visnet_hf.errors import ConfigError
from visnet_hf.models.vsenet.configuration_vsenet import LEGACY_KEYS


def test_the_config_groups_text_and_zero_shot_settings():
    config = VSENetConfig(class_names=["cat", "dog"], text_config={"describe": "wordnet"}, zero_shot_config={"head": "conse"})
    assert isinstance(config.text_config, VSENetTextConfig) and isinstance(config.zero_shot_config, VSENetZeroShotConfig)
    assert (config.text_config.describe, config.text_config.encoder) == ("wordnet", "sentence-transformers/all-MiniLM-L6-v2")
    assert (config.zero_shot_config.head, config.zero_shot_config.prototype_weight) == ("conse", 0.0)
    assert config.id2label == {0: "cat", 1: "dog"} and config.trained_class_names == ["cat", "dog"]
    saved = config.to_dict()
    assert saved["text_config"]["describe"] == "wordnet" and saved["zero_shot_config"]["head"] == "conse"
    assert not set(LEGACY_KEYS) & set(saved)  # nothing at the top level twice
    assert VSENetConfig.from_dict(saved).to_dict() == saved


def test_the_flat_spellings_of_0_2_map_to_their_group():
    flat = {"text_encoder": "some/encoder", "class_centering": True, "templates": "clip7", "prototype_weight": 2.0}
    config = VSENetConfig(class_names=["cat"], zero_shot_heads=True, zero_shot_head="semantic", **flat)
    assert (config.text_config.encoder, config.text_config.centering) == ("some/encoder", True)
    assert len(config.text_config.templates) == 7  # a set name is stored as the list it names
    assert (config.zero_shot_config.prototype_weight, config.zero_shot_config.head) == (2.0, "semantic")
    assert config.zero_shot_config.separate_heads is True
    merged = VSENetConfig(class_names=["cat"], zero_shot_config={"conse_top_k": 3}, calibration=1.5)
    assert (merged.zero_shot_config.conse_top_k, merged.zero_shot_config.calibration) == (3, 1.5)


def test_problems_of_every_group_are_reported_together(tiny_text_encoder):
    with pytest.raises(ConfigError) as error:
        visnet_hf.create_model(
            "vsenet_resnet18",
            class_names=["cat"],
            text_encoder=tiny_text_encoder,
            zero_shot_head="clip",
            conse_top_k=0,
            text_config={"describe": "wikipedia"},
            gamma=0,
        )
    message = str(error.value)
    assert message.startswith("4 problem(s) in VSENetConfig:")
    assert "zero_shot_config.head: expected one of ['semantic', 'conse', 'both'], got 'clip'" in message
    assert "zero_shot_config.conse_top_k=0 must be >= 1" in message
    assert "text_config.describe='wikipedia' must be one of ['wordnet', 'none'] or null" in message
    assert "gamma=0 must be positive" in message


def test_per_call_settings_are_a_changed_copy():
    settings = VSENetZeroShotConfig(head="both", calibration=1.0)
    changed = settings.updated(head="semantic", calibration=None)  # None: left as it is
    assert (changed.head, changed.calibration) == ("semantic", 1.0) and settings.head == "both"
    with pytest.raises(ConfigError, match=r"\['hed'\] are not zero-shot settings"):
        settings.updated(hed="semantic")
    with pytest.raises(ConfigError, match="prototype_weight=-1 must be >= 0"):
        settings.updated(prototype_weight=-1)


def test_a_saved_config_holds_each_field_once_in_its_group(tiny_text_encoder, tmp_path):
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=["cat", "dog"], text_encoder=tiny_text_encoder, image_size=32, prototype_weight=1.0
    )
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["zero_shot_config"]["prototype_weight"] == 1.0 and saved["text_config"]["pooling"] == "mean"
    assert not set(LEGACY_KEYS) & set(saved)
    assert saved["class_synsets"] == saved["trained_class_synsets"] == ["n02121620", "n02084071"]  # the senses used, shown
