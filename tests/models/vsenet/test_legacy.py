"""Folders saved by visnet_hf 0.2 (commit f24e0d7: every config field at the top level, the prototypes' buffers at
the top of the weights, no gloss embeddings) load and give the logits that release gave. The folders and their
expected logits were written by that release (``tests/fixtures/make_v0_2_0.py``)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

import visnet_hf  # noqa: F401  (registers the model families)
from tests.helpers import FIXTURES, assert_close32
from visnet_hf.models.vsenet._legacy import STATE_KEYS

LEGACY = FIXTURES / "v0_2_0"
NEW = ["zebra", "lorry", "goldfish"]


@pytest.fixture(scope="module")
def legacy_vsenet(minilm_path):
    """The 0.2 VSENet: prototypes with WordNet hierarchy and glosses, separate zero-shot heads, both
    test-time views, WordNet descriptions; its text encoder is the MiniLM from PyPI (its glosses are embedded on load)."""
    return AutoModelForImageClassification.from_pretrained(LEGACY / "vsenet").eval()


def test_a_0_2_vsenet_loads_with_its_settings_grouped(legacy_vsenet):
    config = legacy_vsenet.config
    flat = json.loads((LEGACY / "vsenet" / "config.json").read_text())
    assert "prototype_weight" in flat and "zero_shot_config" not in flat  # the fixture is the old layout
    assert (config.zero_shot_config.prototype_weight, config.zero_shot_config.prototype_glosses) == (2.0, 5.0)
    assert config.zero_shot_config.separate_heads and legacy_vsenet.zero_shot_heads is not None
    assert (config.text_config.describe, config.text_config.centering, config.test_time_zoom) == ("wordnet", True, 0.875)
    assert legacy_vsenet.zero_shot.prototypes.fitted and legacy_vsenet.class_glosses.abs().sum() > 0


@pytest.mark.parametrize("vocabulary", ["trained", "zero_shot", "mixed"])
def test_a_0_2_vsenet_gives_the_logits_it_gave(legacy_vsenet, vocabulary):
    expected = load_file(LEGACY / "vsenet" / "expected.safetensors")
    names = {"trained": None, "zero_shot": NEW, "mixed": [*legacy_vsenet.config.trained_class_names, *NEW]}[vocabulary]
    settings = legacy_vsenet.config.zero_shot_config
    with torch.no_grad():
        scored = legacy_vsenet.vocabulary_for(names) if names else None
        logits = legacy_vsenet(pixel_values=expected["pixel_values"], vocabulary=scored).logits
        summed = legacy_vsenet(
            pixel_values=expected["pixel_values"], vocabulary=scored, zero_shot_config=settings.updated(score_temperature=1.0)
        ).logits
    # Float32, computed by the release on another host: equal up to the order of sums (assert_close32). The
    # release gave names it did not train on the experts' sum; they are divided by the temperature now.
    temperature = 1.0 if names is None else settings.temperature_for()
    assert temperature == (1.0 if names is None else 4.0)  # the semantic cosine, ConSE and the prototypes at 2
    assert_close32(summed, expected[vocabulary])
    assert_close32(logits, expected[vocabulary] / temperature)
    assert logits.argmax(-1).tolist() == expected[vocabulary].argmax(-1).tolist()


def test_a_0_2_vsenet_saved_again_is_written_in_todays_layout(legacy_vsenet, tmp_path):
    expected = load_file(LEGACY / "vsenet" / "expected.safetensors")
    legacy_vsenet.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    assert set(STATE_KEYS.values()) <= set(weights) and not {"visual_prototypes", "feature_mean"} & set(weights)
    assert "zero_shot_config" in json.loads((tmp_path / "config.json").read_text())
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        logits = reloaded(pixel_values=expected["pixel_values"], vocabulary=reloaded.vocabulary_for(NEW)).logits
    assert_close32(logits, expected["zero_shot"] / reloaded.config.zero_shot_config.temperature_for())


def test_a_0_2_frn_gives_the_logits_it_gave():
    expected = load_file(LEGACY / "frn" / "expected.safetensors")
    model = AutoModelForImageClassification.from_pretrained(LEGACY / "frn").eval()
    with torch.no_grad():
        assert_close32(model(pixel_values=expected["pixel_values"]).logits, expected["logits"])
