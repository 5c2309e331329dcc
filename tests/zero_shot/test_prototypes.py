"""Visual prototypes: a new name scored also by the image's cosine to the trained classes' feature centroids,
mixed by how alike the name is to each (text, WordNet hierarchy, WordNet definitions). Computed in float64
against hand computations, so that the comparisons are tight on any CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import visnet_hf
from tests.helpers import CLASS_NAMES, WNIDS, assert_close32, with_column, write_config
from visnet_hf.errors import ConfigError
from visnet_hf.text import get_text_encoder
from visnet_hf.training import load_config, train
from visnet_hf.wordnet import glosses, hierarchy_similarity, synset_ids
from visnet_hf.zero_shot import VisualPrototypes

NEW_NAMES = ["lion", "truck", "boat"]
PROTOTYPE_KEYS = {f"zero_shot.prototypes.{name}" for name in ("feature_mean", "feature_std", "centroids", "counts")}


def _model(text_encoder: str, weight: float = 1.5, **overrides):
    torch.manual_seed(0)
    return visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=text_encoder, image_size=32, prototype_weight=weight, **overrides
    ).eval()


def _features(count: int = 40, width: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(count) % len(CLASS_NAMES)
    features = torch.randn(count, width, generator=generator) + 3 * labels[:, None].float().cos()
    return features.abs().double(), labels  # pooled ReLU features are non-negative


def test_the_module_fits_standardised_centroids():
    prototypes = VisualPrototypes(classes=4, features=512).double()
    features, labels = _features()
    assert not prototypes.fitted
    assert prototypes.fit([(features[:25], labels[:25]), (features[25:], labels[25:])]) == 40
    mean, std = features.mean(0), features.std(0, unbiased=False) + 1e-6
    centroids = torch.stack([(features[labels == c].mean(0) - mean) / std for c in range(4)])
    torch.testing.assert_close(prototypes.feature_mean, mean)
    torch.testing.assert_close(prototypes.feature_std, std)
    torch.testing.assert_close(prototypes.centroids, F.normalize(centroids, dim=-1))
    assert prototypes.counts.tolist() == [10.0] * 4 and prototypes.fitted
    borrowing = torch.tensor([[9.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    expected = (
        F.normalize((features[:3] - mean) / std, dim=-1) @ F.normalize(borrowing.softmax(-1) @ prototypes.centroids, dim=-1).T
    )
    torch.testing.assert_close(prototypes(features[:3], borrowing), expected)
    with pytest.raises(ValueError, match="at least 2 training images"):
        VisualPrototypes(4, 512).fit([(features[:1], labels[:1])])


def _prototype_scores(model, images: torch.Tensor, extra: torch.Tensor, sharpness: float = 5.0) -> torch.Tensor:
    """The prototype score by hand: centroids mixed by the softmax of sharpness x text similarity + ``extra``."""
    prototypes = model.zero_shot.prototypes
    similarity = model.normalized_class_embeddings() @ model.scored_embeddings(model.trained_class_embeddings).T
    mixed = F.normalize((sharpness * similarity + extra).softmax(-1) @ prototypes.centroids, dim=-1)
    standardised = F.normalize((images - prototypes.feature_mean) / prototypes.feature_std, dim=-1)
    return model.logit_scale_value() * standardised @ mixed.T


def _prototype_part(model, images: torch.Tensor, **settings: float) -> torch.Tensor:
    """The prototype term of the model's logits (weight 1.5) with the zero-shot ``settings``, in the experts' sum."""
    zero_shot = model.config.zero_shot_config.updated(score_temperature=1.0)
    with torch.no_grad():
        with_prototypes = model(image_features=images, zero_shot_config=zero_shot.updated(**settings)).logits
        without = model(image_features=images, zero_shot_config=zero_shot.updated(prototype_weight=0.0)).logits
    return (with_prototypes - without) / 1.5


def test_new_names_are_scored_against_centroids_mixed_by_text_similarity(tiny_text_encoder):
    model = _model(tiny_text_encoder).double()
    features, labels = _features()
    batches = [{"image_features": features[:25], "labels": labels[:25]}, {"image_features": features[25:], "labels": labels[25:]}]
    assert model.fit_prototypes(batches) == 40
    model.set_classes(NEW_NAMES)
    images = features[:6]
    torch.testing.assert_close(_prototype_part(model, images), _prototype_scores(model, images, torch.zeros(3, 4)))
    assert model(image_features=images).logits.shape == (6, len(NEW_NAMES))


def test_the_hierarchy_mixes_wordnet_similarity_into_the_borrowing(tiny_text_encoder, tmp_path):
    model = _model(tiny_text_encoder).double()
    features, labels = _features()
    model.fit_prototypes([{"image_features": features, "labels": labels}])
    assert model.config.trained_class_synsets == list(synset_ids(CLASS_NAMES))  # resolved at creation, saved
    images = features[:6]
    given = ["n10265070", None, None]  # "lion" as the famous person: a sense other than the big cat
    for synsets in (None, given):
        model.set_classes(NEW_NAMES, synsets=synsets)
        hierarchy = hierarchy_similarity(synset_ids(NEW_NAMES, wnids=synsets), synset_ids(CLASS_NAMES)).double()
        torch.testing.assert_close(
            _prototype_part(model, images, prototype_hierarchy=4.0), _prototype_scores(model, images, 4.0 * hierarchy)
        )
    assert synset_ids(NEW_NAMES, wnids=given) != synset_ids(NEW_NAMES)
    model.config.zero_shot_config.prototype_hierarchy = 4.0
    model.save_pretrained(tmp_path)
    loaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path).eval().double()
    assert loaded.config.class_synsets == [given[0], *synset_ids(NEW_NAMES)[1:]]  # the senses scored, saved
    with torch.no_grad():
        torch.testing.assert_close(loaded(image_features=images).logits, model(image_features=images).logits)
    with pytest.raises(ValueError, match=r"trained_class_synsets has 1 entries for 4 trained classes"):
        visnet_hf.VSENetConfig(class_names=CLASS_NAMES, trained_class_synsets=["n02121620"])
    with pytest.raises(ConfigError, match=r"prototype_hierarchy=-1.0 must be >= 0"):
        _model(tiny_text_encoder, prototype_hierarchy=-1.0)


def test_glosses_mix_wordnet_definitions_into_the_borrowing(tiny_text_encoder, tmp_path):
    model = _model(tiny_text_encoder, prototype_glosses=3.0).double()
    features, labels = _features()
    model.fit_prototypes([{"image_features": features, "labels": labels}])
    images = features[:6]
    model.set_classes([*NEW_NAMES, "qzxv"])  # the last one WordNet does not know
    # By hand: each sense's definition alone, embedded, centred on the trained classes' mean, cosine.
    encoder = get_text_encoder(tiny_text_encoder)
    trained = encoder.encode(glosses(synset_ids(CLASS_NAMES))).double()
    new = encoder.encode(glosses(synset_ids(NEW_NAMES))).double()
    mean = trained.mean(0)
    similarity = F.normalize(new - mean, dim=-1) @ F.normalize(trained - mean, dim=-1).T
    expected = torch.cat(
        [similarity, torch.zeros(1, len(CLASS_NAMES), dtype=torch.float64)]
    )  # the unknown name: alike to nothing
    assert glosses(synset_ids(["qzxv"])) == [None]
    assert glosses(synset_ids(["lion"]))[0].startswith("large gregarious predatory feline")
    # The glosses come from the float32 text encoder, whose per-text cache may hold them from another batch
    # (padded otherwise): float32 rounding, whatever the float64 arithmetic after it.
    assert_close32(_prototype_part(model, images), _prototype_scores(model, images, 3.0 * expected))
    torch.testing.assert_close(
        _prototype_part(model, images, prototype_glosses=0.0), _prototype_scores(model, images, 0.0 * expected)
    )
    model.save_pretrained(tmp_path)  # the glosses are embedded once and saved: no text encoder needed to score
    assert {"class_glosses", "trained_class_glosses"} <= set(load_file(tmp_path / "model.safetensors"))
    loaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path).eval().double()
    with torch.no_grad():
        torch.testing.assert_close(loaded(image_features=images).logits, model(image_features=images).logits)
    with pytest.raises(ConfigError, match=r"prototype_glosses=-1.0 must be >= 0"):
        _model(tiny_text_encoder, prototype_glosses=-1.0)


def test_prototypes_leave_the_trained_vocabulary_alone_and_survive_save_and_load(tiny_text_encoder, tmp_path):
    model = _model(tiny_text_encoder)
    features, labels = _features()
    features = features.float()
    with torch.no_grad():
        before = model(image_features=features).logits  # the trained vocabulary: the heads alone
        model.fit_prototypes([{"image_features": features, "labels": labels}])
        torch.testing.assert_close(model(image_features=features).logits, before)
    model.set_classes(NEW_NAMES)
    model.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) >= PROTOTYPE_KEYS
    loaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(image_features=features).logits, model(image_features=features).logits)


def test_prototypes_unfitted_say_what_to_do_and_every_model_can_fit_them(tiny_text_encoder):
    model = _model(tiny_text_encoder).set_classes(NEW_NAMES)
    features, labels = _features()
    with pytest.raises(ValueError, match=r"holds no class centroids: call model.fit_prototypes"):
        model(image_features=features.float())
    # A model made without prototypes keeps the statistics too (few-shot photos are compared in them): once fitted,
    # it scores with prototypes when a call asks.
    plain = _model(tiny_text_encoder, weight=0.0)
    assert set(plain.state_dict()) >= PROTOTYPE_KEYS and not plain.zero_shot.prototypes.fitted
    plain.fit_prototypes([{"image_features": features, "labels": labels}])
    plain.set_classes(NEW_NAMES)
    asked = plain.config.zero_shot_config.updated(prototype_weight=1.0)
    with torch.no_grad():
        with_prototypes = plain(image_features=features.float(), zero_shot_config=asked).logits
        assert not torch.allclose(with_prototypes, plain(image_features=features.float()).logits)
    with pytest.raises(ConfigError, match=r"prototype_weight=-1.0 must be >= 0"):
        _model(tiny_text_encoder, weight=-1.0)


@pytest.mark.slow
def test_training_fits_the_prototypes_from_every_training_image(tiny_parquet, tiny_text_encoder, tmp_path):
    path = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    overrides = ["stages.0.epochs=1", "model.overrides.zero_shot_config.prototype_weight=1.0"]
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
    assert model.zero_shot.prototypes.counts.sum().item() == 72  # the 96 images less the quarter held out
    assert model.config.trained_class_synsets == [WNIDS[name] for name in CLASS_NAMES]  # the data's, not guessed
    exported = load_file(f"{results['model_dir']}/model.safetensors")
    torch.testing.assert_close(exported["zero_shot.prototypes.centroids"], model.zero_shot.prototypes.centroids)
    # From images rather than cached features: the same centroids, up to float32 error (other batches, other kernels).
    uncached = train(load_config(path, [*overrides, "optim.freeze=backbone", f"output_dir={tmp_path / 'run2'}"]))["model"]
    torch.testing.assert_close(
        uncached.zero_shot.prototypes.centroids, model.zero_shot.prototypes.centroids, atol=1e-3, rtol=1e-3
    )


@pytest.mark.slow
def test_a_backbone_that_trains_exports_the_statistics_of_its_own_weights(tiny_parquet, tiny_text_encoder, tmp_path):
    """Before each export the statistics are fitted again, from the training images, to the weights exported; and
    the model returned holds those of its final weights."""
    from visnet_hf.data import build_transforms, load_splits
    from visnet_hf.evaluation import eval_loader

    path = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    config = load_config(path, ["stages.0.epochs=2", "model.overrides.zero_shot_config.prototype_weight=1.0"])
    results = train(config)
    exported = visnet_hf.VSENetForImageClassification.from_pretrained(results["model_dir"]).eval()
    saved = {name: value.clone() for name, value in exported.zero_shot.prototypes.state_dict().items()}
    assert saved["counts"].sum().item() == 72  # every training image (fewer than 100 per class)
    _, transform = build_transforms(exported.config.data_config, config.data.augment)
    training_images = eval_loader(load_splits(config.data, seed=config.seed).train, transform, 16, config.data)
    exported.fit_prototypes(training_images)
    for name, value in exported.zero_shot.prototypes.state_dict().items():
        torch.testing.assert_close(saved[name], value, atol=1e-4, rtol=1e-3, msg=name)
    final = results["model"]
    fitted_now = {name: value.clone() for name, value in final.zero_shot.prototypes.state_dict().items()}
    final.fit_prototypes(training_images)
    torch.testing.assert_close(final.zero_shot.prototypes.centroids, fitted_now["centroids"], atol=1e-4, rtol=1e-3)
