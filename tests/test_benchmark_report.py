"""The benchmark report's interval for a ratio of zero-shot scores over resampled classes, and what the
zero-shot benchmark's references read."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from report import ratio_interval


def test_interval_is_a_point_when_every_class_has_the_same_ratio():
    assert ratio_interval([6, 12, 3], [4, 8, 2]) == (1.5, 1.5)


def test_interval_brackets_the_measured_ratio_and_widens_with_disagreeing_classes():
    agree = ratio_interval([26, 24, 25, 25] * 5, [20, 20, 21, 19] * 5)
    disagree = ratio_interval([40, 10, 30, 20] * 5, [10, 30, 20, 20] * 5)
    assert agree[0] <= 100 / 80 <= agree[1]
    assert disagree[0] <= 1.25 <= disagree[1]
    assert disagree[1] - disagree[0] > 3 * (agree[1] - agree[0])
    assert ratio_interval([40, 10, 30, 20] * 5, [10, 30, 20, 20] * 5) == disagree  # seeded: the report is reproducible


def test_interval_refuses_mismatched_classes():
    with pytest.raises(ValueError, match="same classes"):
        ratio_interval([1, 2], [1])


def test_the_references_read_each_image_alone_whatever_test_time_augmentation_the_model_uses(
    tiny_parquet, tiny_text_encoder, tmp_path
):
    import torch
    from bench_zeroshot import feature_access

    import visnet_hf
    from tests.helpers import CLASS_NAMES, assert_close32
    from visnet_hf.data import build_transforms, load_splits
    from visnet_hf.data.config import DataConfig
    from visnet_hf.training import load_config

    config = load_config(None, [f"data.path={tiny_parquet}", f"data.feature_cache_dir={tmp_path}"])
    model = visnet_hf.create_model(
        "vsenet_resnet18",
        class_names=CLASS_NAMES,
        text_encoder=tiny_text_encoder,
        image_size=32,
        test_time_flip=True,
        test_time_zoom=0.75,
    ).eval()
    splits = load_splits(DataConfig(path=tiny_parquet))
    features, _ = feature_access(config, model)
    cached, _ = features(splits, "train")
    _, transform = build_transforms(model.config.data_config, config.data.augment)
    pixels = torch.stack([transform(splits.train_source[int(i)]["image"].convert("RGB")) for i in splits.train["source_index"]])
    with torch.no_grad():
        alone = model.backbone.forward_head(model.backbone.forward_features(pixels), pre_logits=True)
        assert_close32(cached, alone)  # batched otherwise
        assert not torch.allclose(cached, model.backbone_features(pixels)[1], atol=1e-4)  # the model's own are not
    assert model.config.test_time_flip and model.config.test_time_zoom == 0.75  # the model is left as it was
