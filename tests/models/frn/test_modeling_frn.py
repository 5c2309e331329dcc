"""FRN: the backbone's own softmax fused with an extra head before the classifier (the seed's section 4.2)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoImageProcessor

import visnet_hf
from tests.helpers import EFFICIENTNET_WEIGHTS
from tests.models.test_common import build
from visnet_hf import FRNForImageClassification


def test_timm_keywords_pass_through_and_are_stored(tiny_text_encoder, tmp_path):
    model = build("frn_resnet18", tiny_text_encoder, drop_rate=0.25)
    assert model.config.backbone_kwargs == {"drop_rate": 0.25}
    assert model.backbone.drop_rate == 0.25
    model.save_pretrained(tmp_path)
    assert FRNForImageClassification.from_pretrained(tmp_path).backbone.drop_rate == 0.25


def test_frn_fuses_the_backbones_own_softmax(tiny_text_encoder, pixel_batch):
    model = build("frn_resnet18", tiny_text_encoder).eval()
    assert model.config.backbone_num_classes == 1000
    assert model.classifier.in_features == model.config.head_out_dim + 1000
    output = model(pixel_batch)
    expected = model.backbone(pixel_batch)  # timm's own forward: features → pool → its classifier
    torch.testing.assert_close(output.backbone_logits, expected)

    plain = build("frn_resnet18", tiny_text_encoder, concat_backbone_probs=False).eval()
    assert plain.classifier.in_features == plain.config.head_out_dim
    assert plain(pixel_batch).backbone_logits is None


def test_frn_conv_head_is_the_seeds_head(tiny_text_encoder, pixel_batch):
    model = build("frn_resnet18_conv", tiny_text_encoder).eval().double()  # float64: the hand computation takes other kernels
    pixel_batch = pixel_batch.double()
    feature_map = model.backbone.forward_features(pixel_batch)
    conv = torch.nn.functional.conv2d(feature_map, model.head.conv.weight.unsqueeze(-1), model.head.conv.bias)
    norm = model.head.norm
    expected = torch.relu(
        (conv - norm.running_mean[:, None, None])
        / torch.sqrt(norm.running_var[:, None, None] + norm.eps)
        * norm.weight[:, None, None]
        + norm.bias[:, None, None]
    ).mean(dim=(2, 3))
    torch.testing.assert_close(model(pixel_batch).head_features, expected, atol=1e-10, rtol=1e-10)


def test_pretrained_backbone_from_a_local_file(tiny_text_encoder, tmp_path, pixel_batch):
    if not EFFICIENTNET_WEIGHTS.exists():
        pytest.skip(f"pretrained weights not found at {EFFICIENTNET_WEIGHTS}")
    from safetensors.torch import load_file

    model = visnet_hf.create_model(
        "frn_tf_efficientnet_lite0",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(EFFICIENTNET_WEIGHTS)),
        num_labels=3,
    )
    weights = load_file(EFFICIENTNET_WEIGHTS)
    torch.testing.assert_close(model.backbone.conv_stem.weight, weights["conv_stem.weight"])
    torch.testing.assert_close(model.backbone.classifier.weight, weights["classifier.weight"])
    assert "pretrained_cfg_overlay" not in (model.config.backbone_kwargs or {})
    assert model.config.data_config["mean"] == [0.5, 0.5, 0.5]

    model.save_pretrained(tmp_path)
    reloaded = FRNForImageClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded.backbone.conv_stem.weight, weights["conv_stem.weight"])
    assert list(AutoImageProcessor.from_pretrained(tmp_path).image_mean) == [0.5, 0.5, 0.5]
