"""Visual prototypes: a VSENet scores a new name also by the image's cosine to the trained classes'
feature centroids, averaged by the name's text similarity to them (``prototype_weight``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import visnet_hf
from visnet_hf.errors import ConfigError
from visnet_hf.text_encoders import get_text_encoder
from visnet_hf.training import load_config, train
from visnet_hf.wordnet import glosses, hierarchy_similarity, synset_ids

from .conftest import CLASS_NAMES, write_config
from .test_data import WNIDS, with_column

NEW_NAMES = ["lion", "truck", "boat"]


def _model(text_encoder: str, weight: float = 1.5):
    torch.manual_seed(0)
    return visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=text_encoder, image_size=32, prototype_weight=weight
    ).eval()


def _features(model, count: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(count) % len(CLASS_NAMES)
    features = torch.randn(count, model.config.num_features, generator=generator) + 3 * labels[:, None].float().cos()
    return features.abs(), labels  # pooled ReLU features are non-negative


def test_prototypes_are_standardised_centroids_mixed_by_text_similarity(tiny_text_encoder):
    model = _model(tiny_text_encoder)
    features, labels = _features(model)
    batches = [{"image_features": features[:25], "labels": labels[:25]}, {"image_features": features[25:], "labels": labels[25:]}]
    assert model.fit_prototypes(batches) == 40

    mean, std = features.double().mean(0), features.double().std(0, unbiased=False) + 1e-6
    centroids = torch.stack([(features[labels == c].double().mean(0) - mean) / std for c in range(len(CLASS_NAMES))])
    torch.testing.assert_close(model.feature_mean, mean.float())
    torch.testing.assert_close(model.feature_std, std.float())
    torch.testing.assert_close(model.visual_prototypes, F.normalize(centroids, dim=-1).float())
    assert model.prototype_counts.tolist() == [10.0] * 4

    model.set_classes(NEW_NAMES)
    images = features[:6]
    with torch.no_grad():
        with_prototypes = model(image_features=images).logits
        model.config.prototype_weight = 0.0
        without = model(image_features=images).logits
        similarity = model.normalized_class_embeddings() @ F.normalize(model.trained_class_embeddings, dim=-1).T
        prototypes = F.normalize((5.0 * similarity).softmax(-1) @ model.visual_prototypes, dim=-1)
        standardised = F.normalize((images - model.feature_mean) / model.feature_std, dim=-1)
        expected = model.logit_scale_value() * standardised @ prototypes.T
    torch.testing.assert_close(with_prototypes - without, 1.5 * expected, atol=1e-4, rtol=1e-4)
    assert with_prototypes.shape == (6, len(NEW_NAMES))


def _prototype_scores(model, images: torch.Tensor, hierarchy: torch.Tensor) -> torch.Tensor:
    """The prototype score by hand: centroids mixed by the softmax of 5 x text similarity + ``hierarchy``."""
    similarity = model.normalized_class_embeddings() @ F.normalize(model.trained_class_embeddings, dim=-1).T
    prototypes = F.normalize((5.0 * similarity + hierarchy).softmax(-1) @ model.visual_prototypes, dim=-1)
    standardised = F.normalize((images - model.feature_mean) / model.feature_std, dim=-1)
    return model.logit_scale_value() * standardised @ prototypes.T


def _prototype_part(model, images: torch.Tensor, **fields: float) -> torch.Tensor:
    """The prototype term of the model's logits (weight 1.5) with the config ``fields`` set."""
    with torch.no_grad():
        model.config.update(fields)
        with_prototypes = model(image_features=images).logits
        model.config.prototype_weight = 0.0
        without = model(image_features=images).logits
        model.config.prototype_weight = 1.5
    return (with_prototypes - without) / 1.5


def test_prototype_hierarchy_mixes_wordnet_similarity_into_the_borrowing(tiny_text_encoder, tmp_path):
    model = _model(tiny_text_encoder)
    features, labels = _features(model)
    model.fit_prototypes([{"image_features": features, "labels": labels}])
    assert model.config.trained_class_synsets == list(synset_ids(CLASS_NAMES))  # resolved while training
    images = features[:6]

    def prototype_part(hierarchy_weight: float) -> torch.Tensor:
        return _prototype_part(model, images, prototype_hierarchy=hierarchy_weight)

    # "lion" as the famous person, given: a sense other than the one its name suggests (the big cat)
    given = ["n10265070", None, None]
    for synsets in (None, given):
        model.set_classes(NEW_NAMES, synsets=synsets)
        senses = synset_ids(NEW_NAMES, wnids=synsets)
        hierarchy = hierarchy_similarity(senses, tuple(model.config.trained_class_synsets))
        with torch.no_grad():
            torch.testing.assert_close(
                prototype_part(4.0), _prototype_scores(model, images, 4.0 * hierarchy), atol=1e-4, rtol=1e-4
            )
            torch.testing.assert_close(
                prototype_part(0.0), _prototype_scores(model, images, 0.0 * hierarchy), atol=1e-4, rtol=1e-4
            )
    assert synset_ids(NEW_NAMES, wnids=given) != synset_ids(NEW_NAMES)

    model.config.prototype_hierarchy = 4.0
    model.save_pretrained(tmp_path)
    loaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.class_synsets == given and loaded.config.trained_class_synsets == model.config.trained_class_synsets
    with torch.no_grad():
        torch.testing.assert_close(loaded(image_features=images).logits, model(image_features=images).logits)
    with pytest.raises(ValueError, match=r"2 synsets for 3 class names"):
        model.set_classes(NEW_NAMES, synsets=given[:2])
    with pytest.raises(ValueError, match=r"trained_class_synsets has 1 entries for 4 trained classes"):
        visnet_hf.VSENetConfig(class_names=CLASS_NAMES, trained_class_synsets=["n02121620"])
    with pytest.raises(ValueError, match=r"prototype_hierarchy.*must be >= 0"):
        visnet_hf.create_model(
            "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, prototype_hierarchy=-1.0
        )


def test_prototype_glosses_mix_wordnet_definitions_into_the_borrowing(tiny_text_encoder, tmp_path):
    model = _model(tiny_text_encoder)
    features, labels = _features(model)
    model.fit_prototypes([{"image_features": features, "labels": labels}])
    images = features[:6]
    names = [*NEW_NAMES, "qzxv"]  # the last one WordNet does not know
    model.set_classes(names)

    def prototype_part(glosses_weight: float) -> torch.Tensor:
        return _prototype_part(model, images, prototype_glosses=glosses_weight)

    # By hand: each sense's definition alone, embedded, centred on the trained classes' mean, cosine.
    encoder = get_text_encoder(tiny_text_encoder)
    trained = encoder.encode(glosses(synset_ids(CLASS_NAMES)))
    new = encoder.encode(glosses(synset_ids(NEW_NAMES)))
    mean = trained.mean(0)
    similarity = F.normalize(new - mean, dim=-1) @ F.normalize(trained - mean, dim=-1).T
    expected = torch.cat([similarity, torch.zeros(1, len(CLASS_NAMES))])  # the unknown name: alike to nothing
    assert glosses(synset_ids(["qzxv"])) == [None]
    assert glosses(synset_ids(["lion"]))[0].startswith("large gregarious predatory feline")
    torch.testing.assert_close(prototype_part(3.0), _prototype_scores(model, images, 3.0 * expected), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(prototype_part(0.0), _prototype_scores(model, images, 0.0 * expected), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(prototype_part(3.0), prototype_part(0.0), atol=1e-3)

    model.config.prototype_glosses = 3.0
    model.save_pretrained(tmp_path)
    loaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.prototype_glosses == 3.0
    with torch.no_grad():
        torch.testing.assert_close(loaded(image_features=images).logits, model(image_features=images).logits)
    with pytest.raises(ValueError, match=r"prototype_glosses.*must be >= 0"):
        visnet_hf.create_model(
            "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, prototype_glosses=-1.0
        )


def test_prototypes_leave_the_trained_vocabulary_alone_and_survive_save_and_load(tiny_text_encoder, tmp_path):
    model = _model(tiny_text_encoder)
    features, labels = _features(model)
    with torch.no_grad():
        before = model(image_features=features).logits  # the trained vocabulary: the heads alone
        model.fit_prototypes([{"image_features": features, "labels": labels}])
        torch.testing.assert_close(model(image_features=features).logits, before)
    model.set_classes(NEW_NAMES)
    model.save_pretrained(tmp_path)
    assert {"visual_prototypes", "feature_mean", "feature_std", "prototype_counts"} <= set(
        load_file(tmp_path / "model.safetensors")
    )
    loaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(image_features=features).logits, model(image_features=features).logits)


def test_prototypes_unfitted_or_switched_off_say_what_to_do(tiny_text_encoder):
    model = _model(tiny_text_encoder).set_classes(NEW_NAMES)
    features, labels = _features(model)
    with pytest.raises(ValueError, match=r"holds no class centroids: call model.fit_prototypes"):
        model(image_features=features)
    plain = _model(tiny_text_encoder, weight=0.0)
    assert not hasattr(plain, "visual_prototypes")  # no buffers, nothing saved, when switched off
    with pytest.raises(ValueError, match=r"needs config.prototype_weight > 0"):
        plain.fit_prototypes([{"image_features": features, "labels": labels}])
    with pytest.raises(ValueError, match=r"prototype_weight.*must be >= 0"):
        _model(tiny_text_encoder, weight=-1.0)


@pytest.mark.slow
def test_training_fits_the_prototypes_from_every_training_image(tiny_parquet, tiny_text_encoder, tmp_path):
    path = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    overrides = ["stages.0.epochs=1", "model.overrides.prototype_weight=1.0"]
    with pytest.raises(ConfigError, match=r"prototype_weight needs optim.freeze: backbone"):
        train(load_config(path, overrides))
    streamed = [
        f"data.path=[{tiny_parquet}]",
        f"data.eval_path={tiny_parquet}",
        "data.streaming=true",
        "stages=[{name: a, steps: 2}]",
    ]
    with pytest.raises(ConfigError, match=r"prototype_weight cannot be used with data.streaming"):
        train(load_config(path, [*overrides[1:], "optim.freeze=backbone", *streamed]))
    frozen = [*overrides, "optim.freeze=backbone", "data.cache_features=true", f"data.feature_cache_dir={tmp_path / 'cache'}"]
    with_wnids = with_column(tiny_parquet, tmp_path / "wnid.parquet", "wnid", WNIDS)
    results = train(load_config(path, [*frozen, f"data.path={with_wnids}", "data.class_synset_column=wnid"]))
    model = results["model"]
    assert model.prototype_counts.sum().item() == 72  # the 96 images less the quarter held out
    assert model.config.trained_class_synsets == [WNIDS[name] for name in CLASS_NAMES]  # the data's, not guessed
    exported = load_file(f"{results['model_dir']}/model.safetensors")
    torch.testing.assert_close(exported["visual_prototypes"], model.visual_prototypes)
    # From images rather than cached features: the same centroids, up to float error.
    uncached = train(load_config(path, [*overrides, "optim.freeze=backbone", f"output_dir={tmp_path / 'run2'}"]))["model"]
    torch.testing.assert_close(uncached.visual_prototypes, model.visual_prototypes, atol=1e-4, rtol=1e-4)
