"""A frozen backbone's pooled features, computed once and kept on disk: what the heads train on, exactly."""

from __future__ import annotations

import pytest
import torch

import visnet_hf
from tests.helpers import CLASS_NAMES, write_config
from visnet_hf.errors import ConfigError
from visnet_hf.training import load_config, train


@pytest.mark.slow
def test_cached_features_train_as_images_would(tiny_parquet, tiny_text_encoder, tmp_path):
    """A frozen backbone without augmentation: the heads trained on cached features equal those trained on images."""
    from safetensors.torch import load_file

    common = ["stages.0.epochs=1", "optim.freeze=backbone", "data.augment={random_crop_padding: 0, hflip: false}"]
    weights = {}
    for cached in (False, True):
        folder = tmp_path / f"cached_{cached}"
        folder.mkdir()
        config = write_config(folder, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
        extra = [f"data.cache_features={str(cached).lower()}", f"data.feature_cache_dir={tmp_path / 'cache'}"]
        train(load_config(config, [*common, *extra]))
        weights[cached] = load_file(folder / "run" / "model" / "model.safetensors")
    for name in ("projection.weight", "classifier.weight", "logit_scale"):
        torch.testing.assert_close(weights[True][name], weights[False][name], atol=1e-4, rtol=1e-4)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1  # one source, computed once


@pytest.mark.slow
def test_cached_features_need_a_frozen_backbone_and_no_image_constraints(tiny_parquet, tmp_path):
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    with pytest.raises(ConfigError) as error:
        train(load_config(config, ["data.cache_features=true", "stages.0.constraints=[{name: grey_values}]"]))
    assert "needs optim.freeze: backbone" in str(error.value) and "constraint 'grey_values' transforms the images" in str(
        error.value
    )
    with pytest.raises(ConfigError, match="its head reads the feature map"):
        train(load_config(config, ["data.cache_features=true", "optim.freeze=backbone", "model.name=frn_resnet18_pool"]))


def test_cached_features_with_test_time_flip_are_the_ones_the_model_scores(tiny_parquet, tiny_text_encoder, tmp_path, capsys):
    """With test_time_flip the cache holds each image's and its mirror's pooled features averaged, as the model
    pools them in eval mode, under a key of its own (the unflipped features stay cached beside them); with
    test_time_zoom too, the average over the four views, under another."""
    from visnet_hf.data import build_transforms, load_splits
    from visnet_hf.data.config import AugmentConfig, DataConfig
    from visnet_hf.data.features import FeatureCache, OneProcess

    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, test_time_flip=True
    ).eval()
    source = load_splits(DataConfig(path=tiny_parquet)).train_source.select(range(8))
    _, transform = build_transforms(model.config.data_config, AugmentConfig())
    cache = FeatureCache(tmp_path)
    flipped = cache.features(model, source, transform, OneProcess(torch.device("cpu")), batch_size=4)["features"]
    model.config.test_time_flip = False
    plain = cache.features(model, source, transform, OneProcess(torch.device("cpu")), batch_size=4)["features"]
    pixels = torch.stack([transform(image.convert("RGB")) for image in source["image"]])
    with torch.no_grad():
        torch.testing.assert_close(plain, model.backbone_features(pixels)[1], atol=1e-5, rtol=1e-4)
        model.config.test_time_flip = True
        torch.testing.assert_close(flipped, model.backbone_features(pixels)[1], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(flipped, plain, atol=1e-4)
    model.config.test_time_zoom = 0.75  # and the zoomed centre crop (with its mirror): a key of its own again
    zoomed = cache.features(model, source, transform, OneProcess(torch.device("cpu")), batch_size=4)["features"]
    with torch.no_grad():
        torch.testing.assert_close(zoomed, model.backbone_features(pixels)[1], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(zoomed, flipped, atol=1e-4)
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    said = capsys.readouterr().out.splitlines()  # each computation says what it computes, and where it keeps it
    assert [line.split(" each)")[0] for line in said] == [
        "Computing the frozen backbone's features of 8 images (2 views",
        "Computing the frozen backbone's features of 8 images (1 view",
        "Computing the frozen backbone's features of 8 images (4 views",
    ]
    assert all(line.endswith(f"read them from {tmp_path}.") for line in said)
    FeatureCache._read.clear()  # a later run reads them from disk: nothing computed, nothing said
    cache.features(model, source, transform, OneProcess(torch.device("cpu")), batch_size=4)
    assert capsys.readouterr().out == ""
