"""Few-shot: new names with a few photos each, scored from their texts and photos together (the photos' mean in the
whitened feature space), kept in the vocabulary, saved with the model, used by both pipelines; and the bad inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForImageClassification, pipeline

import visnet_hf
from tests.helpers import CLASS_NAMES
from visnet_hf.data.images import BadImageError
from visnet_hf.errors import ConfigError
from visnet_hf.hub import write_card
from visnet_hf.wordnet import glosses
from visnet_hf.zero_shot import VisualPrototypes
from visnet_hf.zero_shot.few_shot import ExampleSet, embed_examples, example_logits, examples_by_name

NEW = ["lion", "truck", "boat"]


@pytest.fixture(scope="module")
def real_images(tiny_parquet) -> list:
    """96 real photos (CIFAR-10 when the shared data is there)."""
    return list(datasets.Dataset.from_parquet(tiny_parquet)["image"])


@pytest.fixture()
def model(tiny_text_encoder, real_images):
    """A VSENet with fitted visual prototypes (the trained classes' centroids of 16 photos' features)."""
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, prototype_weight=1.0
    ).eval()
    images = model.image_processor()(real_images[80:], return_tensors="pt")["pixel_values"]
    model.fit_prototypes([(images, torch.arange(16) % 4)])
    return model


@pytest.fixture()
def photos(real_images):
    """``photos(start, count)``: that many of the real photos (distinct starts: distinct photos)."""
    return lambda start, count=2: real_images[start : start + count]


def test_photos_are_scored_by_their_mean_in_the_whitened_space_and_trained_names_by_their_centroid():
    """By hand, in float64: standardise, whiten by the shrunk within-class covariance, cosine to each name's photo mean."""
    generator = torch.Generator().manual_seed(0)
    prototypes = VisualPrototypes(classes=3, features=6).double()
    features, labels = torch.randn(60, 6, generator=generator, dtype=torch.float64), torch.arange(60) % 3
    features[:, 0] += 3 * labels  # classes apart along one axis, spread alike in all
    prototypes.fit([(features, labels)])
    mean, std = features.mean(0), features.std(0, unbiased=False) + 1e-6
    standardised = (features - mean) / std
    centres = torch.stack([standardised[labels == c].mean(0) for c in range(3)])
    within = standardised - centres[labels]
    covariance = within.T @ within / 60
    torch.testing.assert_close(prototypes.within_covariance, covariance)
    shrunk = 0.2 * covariance + 0.8 * covariance.diagonal().mean() * torch.eye(6, dtype=torch.float64)
    values, vectors = torch.linalg.eigh(shrunk)
    whitening = vectors @ torch.diag(values.rsqrt()) @ vectors.T  # any C^-1/2 gives the same cosines

    def unit(x):
        return F.normalize((x - mean) / std @ whitening, dim=-1)

    photos, queries = (
        torch.randn(3, 6, generator=generator, dtype=torch.float64),
        torch.randn(4, 6, generator=generator, dtype=torch.float64),
    )
    examples = ExampleSet(torch.stack([photos[:2].sum(0), photos[2], torch.zeros(6)]).double(), torch.tensor([2.0, 1.0, 0.0]))
    got = example_logits(queries, examples, [None, None, 1], prototypes, shrinkage=0.8, scale=10.0)
    anchors = torch.stack([unit(photos[:2].mean(0)), unit(photos[2]), unit(mean + std * centres[1])])
    # each name weighs as the square root of its photos; the trained centroid as the photos do on average (1.5)
    weights = torch.tensor([2.0, 1.0, 1.5], dtype=torch.float64).sqrt()
    torch.testing.assert_close(got, 10.0 * unit(queries) @ anchors.T * weights)
    # a name with no photo and no trained centroid scores zero; shrinkage 1 is the standardised space alone
    assert example_logits(queries, examples, [None, None, None], prototypes, 0.8, 1.0)[:, 2].eq(0).all()
    standard = example_logits(queries, examples, [None, None, None], prototypes, 1.0, 1.0)
    plain = F.normalize((queries - mean) / std, dim=-1) @ F.normalize((photos[2] - mean) / std, dim=0)
    torch.testing.assert_close(standard[:, 1], plain)
    # the same photos given four times over: the same mean, twice the weight
    fourfold = ExampleSet(examples.sums * 4, examples.counts * 4)
    once = example_logits(queries, examples, [None] * 3, prototypes, 0.8, 1.0)
    torch.testing.assert_close(example_logits(queries, fourfold, [None] * 3, prototypes, 0.8, 1.0), 2 * once)
    # the threshold lowers each cosine to photos (or a centroid) by as much, at the name's weight; a name with neither
    # stays at zero, so it now stands above a name whose photos the image is no closer to than the threshold
    lowered = example_logits(queries, examples, [None, None, 1], prototypes, shrinkage=0.8, scale=10.0, threshold=0.1)
    torch.testing.assert_close(lowered, got - 10.0 * 0.1 * weights)
    assert example_logits(queries, examples, [None, None, None], prototypes, 0.8, 1.0, threshold=0.1)[:, 2].eq(0).all()


def test_set_classes_with_examples_scores_names_and_photos_together(model, photos, tmp_path):
    examples = {name: photos(seed) for name, seed in zip(NEW, (10, 20, 30), strict=True)}
    processor = model.image_processor()
    queries = processor([image for name in NEW for image in examples[name]], return_tensors="pt")["pixel_values"]
    summed = model.config.zero_shot_config.updated(score_temperature=1.0)  # the experts' sum, no temperature
    names_alone = model.set_classes(NEW)(pixel_values=queries, zero_shot_config=summed).logits
    model.set_classes(NEW, examples=examples)
    assert model.config.class_example_counts == [2, 2, 2] and model.vocabulary.examples is not None
    with_photos = model(pixel_values=queries, zero_shot_config=summed).logits
    settings = model.config.zero_shot_config
    assert not torch.allclose(with_photos, names_alone)
    # the added term is the photo weight times the photo cosines: by default as much as the names' scores weigh
    # (the semantic cosine and ConSE, 1 each, plus prototype_weight 1)
    assert settings.example_weight is None and settings.photo_weight() == 3.0
    pooled = model(pixel_values=queries).pooler_output
    expected = 3.0 * example_logits(
        pooled,
        model.vocabulary.examples,
        [None] * 3,
        model.zero_shot.prototypes,
        settings.example_shrinkage,
        model.logit_scale_value(model),
        settings.example_threshold,
    )
    torch.testing.assert_close(with_photos - names_alone, expected, rtol=1e-4, atol=1e-4)
    # with one photo each, weighing in alone, each photo is recognised as its own class (a cosine of 1)
    model.set_classes(NEW, examples={name: examples[name][:1] for name in NEW})
    photos_only = settings.updated(example_weight=1e4)
    assert model(pixel_values=queries[::2], zero_shot_config=photos_only).logits.argmax(1).tolist() == [0, 1, 2]
    # names without photos are scored by their names alone, and the card says which; a plain set_classes drops the photos
    model.set_classes(NEW, examples={"lion": photos(10)})
    assert model.config.class_example_counts == [2, 0, 0]
    model.save_pretrained(tmp_path)
    card = (Path(write_card(tmp_path))).read_text()
    assert "Learned from photos (1): lion (2)." in card and "truck, boat, without photos, by their names alone;" in card
    model.set_classes(NEW)
    assert model.config.class_example_counts is None and model.class_example_sums is None


def test_photos_are_read_a_batch_at_a_time_to_the_same_sums(model, photos):
    by_name = {"lion": photos(10, 5), "boat": photos(20, 3)}  # a last batch part full; a name without photos
    whole = embed_examples(model, by_name, NEW)
    in_twos = embed_examples(model, by_name, NEW, batch_size=2)
    assert whole.counts.tolist() == in_twos.counts.tolist() == [5, 0, 3]
    torch.testing.assert_close(in_twos.sums, whole.sums, rtol=1e-4, atol=1e-4)
    assert in_twos.sums[1].abs().sum() == 0


def test_a_phone_sized_photo_reaches_the_processor_at_its_size_and_reads_as_itself(model, photos, monkeypatch):
    """A photo many times the model's size is resized in two steps before the processor (``presized``): the processor
    never resizes a phone's megapixels itself, and the photo's features are those of the processor's own resize, near
    enough; photos are read on every core, in their order."""
    from PIL import Image

    large = [image.convert("RGB").resize((1200, 900), Image.Resampling.BICUBIC) for image in photos(10, 3)]
    processor = model.image_processor()
    one_step = model.backbone_features(processor(large, return_tensors="pt")["pixel_values"])[1]
    seen = []

    class Watched(type(processor)):
        def __call__(self, images, **kwargs):
            seen.extend(image.size for image in images)
            return super().__call__(images, **kwargs)

    monkeypatch.setattr(type(model), "image_processor", lambda self: Watched(**processor.to_dict()))
    read = embed_examples(model, {"lion": large}, NEW)
    assert [min(size) for size in seen] == [processor.size["shortest_edge"]] * 3  # not 900
    assert F.cosine_similarity(read.sums[0], one_step.sum(0), dim=0) > 0.999


def test_the_photo_weight_follows_the_names_scores_unless_it_is_given(model, photos, tmp_path):
    """By default one photo weighs what the name's scores weigh together, whatever head and prototype_weight sum
    them; an example_weight given (or saved in an older model's config) is used as it is."""
    from visnet_hf.models.vsenet import VSENetZeroShotConfig

    weights = {
        ("semantic", 0.0): 1.0,
        ("conse", 0.0): 1.0,
        ("both", 0.0): 2.0,
        ("both", 2.0): 4.0,
        ("semantic", 2.0): 3.0,
    }
    for (head, prototype_weight), weight in weights.items():
        assert VSENetZeroShotConfig(head=head, prototype_weight=prototype_weight).photo_weight() == weight
    assert VSENetZeroShotConfig(head="semantic", example_weight=4.0).photo_weight() == 4.0
    assert VSENetZeroShotConfig(example_weight=0.0).photo_weight() == 0.0
    model.set_classes(NEW, examples={name: photos(seed) for name, seed in zip(NEW, (10, 20, 30), strict=True)})
    model.config.zero_shot_config.fitted_example_weight = None  # the names' weight alone (the photos' choice: below)
    queries = model.image_processor()(photos(60, 4), return_tensors="pt")["pixel_values"]
    summed = model.config.zero_shot_config.updated(score_temperature=1.0)  # the experts' sum, no temperature
    names_alone = model(pixel_values=queries, zero_shot_config=summed.updated(example_weight=0.0)).logits
    semantic = summed.updated(head="semantic", prototype_weight=0.0)
    semantic_names = model(pixel_values=queries, zero_shot_config=semantic.updated(example_weight=0.0)).logits
    by_default = model(pixel_values=queries, zero_shot_config=summed).logits - names_alone
    semantic_photos = model(pixel_values=queries, zero_shot_config=semantic).logits - semantic_names
    torch.testing.assert_close(semantic_photos, by_default / 3.0, rtol=1e-4, atol=1e-4)
    # a folder saved with the weight written out (every model saved before the default followed the names) keeps it
    model.config.zero_shot_config.example_weight = 4.0
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.zero_shot_config.photo_weight() == 4.0
    reloaded_sum = reloaded(
        pixel_values=queries, zero_shot_config=reloaded.config.zero_shot_config.updated(score_temperature=1.0)
    ).logits
    torch.testing.assert_close(reloaded_sum - names_alone, by_default * 4.0 / 3.0, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="example_weight"):
        VSENetZeroShotConfig(example_weight=-1.0)


def test_a_photo_weight_is_fitted_on_the_photos_each_left_out_of_its_names_mean():
    """Photos that tell their classes apart beside names that do not choose a heavy weight, names that tell them
    apart beside photos that do not a light one; with one photo a name there is nothing to leave out, and fewer than
    FIT_LEAST_PHOTOS photos to leave out, or the photos of one name, choose nothing."""
    from visnet_hf.zero_shot.few_shot import fitted_photo_weight

    generator = torch.Generator().manual_seed(0)
    classes, per, width = 5, 4, 16
    rows = torch.arange(classes).repeat_interleave(per)
    clear = torch.randn(classes, width, generator=generator)[rows] + torch.randn(len(rows), width, generator=generator)
    anywhere = torch.randn(len(rows), width, generator=generator)
    knowing = 5 * F.one_hot(rows, classes).float() + torch.randn(len(rows), classes, generator=generator)
    guessing = 10 * torch.randn(len(rows), classes, generator=generator)  # as spread as knowing names, and as sure

    def fitted(names: torch.Tensor, features: torch.Tensor) -> float | None:
        examples = ExampleSet(torch.zeros(classes, width).index_add_(0, rows, features), torch.full((classes,), float(per)))
        return fitted_photo_weight(names, features, rows, examples, None, 1.0, 10.0)

    assert fitted(guessing, clear) >= 10.0
    assert fitted(knowing, anywhere) <= 1.0
    first = rows.diff(prepend=torch.tensor([-1])) != 0  # one photo of each name
    alone = ExampleSet(clear[first], torch.ones(classes))
    assert fitted_photo_weight(guessing[first], clear[first], rows[first], alone, None, 1.0, 10.0) is None
    few = first | (rows < 2)  # 8 photos to leave out (those of two names), under FIT_LEAST_PHOTOS: a handful chooses none
    handful = ExampleSet(torch.zeros(classes, width).index_add_(0, rows[few], clear[few]), torch.bincount(rows[few]).float())
    assert fitted_photo_weight(guessing[few], clear[few], rows[few], handful, None, 1.0, 10.0) is None
    more = first | (rows < 3)  # 12
    enough = ExampleSet(torch.zeros(classes, width).index_add_(0, rows[more], clear[more]), torch.bincount(rows[more]).float())
    assert fitted_photo_weight(guessing[more], clear[more], rows[more], enough, None, 1.0, 10.0) >= 10.0
    alike = torch.randn(1, width, generator=generator) + torch.randn(12, width, generator=generator)
    only = ExampleSet(alike.sum(0, keepdim=True), torch.tensor([12.0]))  # 12 photos of one name, named alike by any weight
    assert (
        fitted_photo_weight(torch.randn(12, 1, generator=generator), alike, torch.zeros(12).long(), only, None, 1.0, 10.0) is None
    )
    many = torch.arange(100).repeat_interleave(12)  # more photos than choose it (FIT_PHOTOS): a fixed sample does
    features = torch.randn(100, width, generator=generator)[many] + torch.randn(len(many), width, generator=generator)
    examples = ExampleSet(torch.zeros(100, width).index_add_(0, many, features), torch.full((100,), 12.0))
    names = 10 * torch.randn(len(many), 100, generator=generator)
    assert fitted_photo_weight(names, features, many, examples, None, 1.0, 10.0) >= 10.0


def test_set_classes_keeps_the_weight_its_photos_choose_where_it_is_above_the_names(model, photos, tmp_path):
    """The weight the photos chose is saved with them and used where it is above the names' own weight and no
    example_weight is set; photos of one each, or none, choose none, and beside photos kept from before leave
    the weight those chose."""
    model.set_classes(NEW, examples={name: photos(seed, 4) for name, seed in zip(NEW, (10, 20, 30), strict=True)})
    settings = model.config.zero_shot_config
    assert settings.fitted_example_weight is not None
    assert settings.photo_weight() == max(settings.names_weight(), settings.fitted_example_weight)
    settings.fitted_example_weight = 50.0  # as photos that read far better than their names choose
    queries = model.image_processor()(photos(60, 4), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        chosen = model(pixel_values=queries).logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.zero_shot_config.photo_weight() == 50.0
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=queries).logits, chosen)
        given = model(pixel_values=queries, zero_shot_config=settings.updated(example_weight=3.0)).logits
        names_weight = model(
            pixel_values=queries, zero_shot_config=settings.updated(example_weight=settings.names_weight())
        ).logits
    torch.testing.assert_close(given, names_weight)  # a weight given is used as given (3: the names' own here)
    assert not torch.allclose(given, chosen, atol=1e-3)
    model.set_classes(["deer"], examples={"deer": photos(40, 1)}, keep_trained=True)  # one more, beside those
    assert model.config.zero_shot_config.fitted_example_weight == 50.0  # a photo alone chose nothing: theirs stays
    model.set_classes(NEW, examples={name: photos(seed, 1) for name, seed in zip(NEW, (10, 20, 30), strict=True)})
    assert model.config.zero_shot_config.fitted_example_weight is None
    model.config.zero_shot_config.fitted_example_weight = 50.0
    model.set_classes(NEW)
    assert model.config.zero_shot_config.fitted_example_weight is None


def test_the_photos_are_saved_with_the_model_and_both_pipelines_use_them(model, photos, tmp_path):
    examples = {name: photos(seed) for name, seed in zip(NEW, (10, 20, 30), strict=True)}
    model.set_classes(NEW, examples=examples)
    model.save_pretrained(tmp_path)
    model.tokenizer().save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.class_example_counts == [2, 2, 2]
    pixel_values = model.image_processor()(photos(60, 4), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(reloaded(pixel_values=pixel_values).logits, model(pixel_values=pixel_values).logits)

    image = photos(70, 1)[0]
    classify = pipeline("image-classification", model=str(tmp_path))
    got = {row["label"]: row["score"] for row in classify(image, top_k=3)}
    probabilities = model(pixel_values=model.image_processor()([image], return_tensors="pt")["pixel_values"]).logits.softmax(-1)[
        0
    ]
    assert got == pytest.approx({name: probabilities[i].item() for i, name in enumerate(NEW)}, abs=1e-4)
    # the zero-shot pipeline, given the same names, scores them with their photos (not by name alone)
    zero_shot = pipeline("zero-shot-image-classification", model=str(tmp_path))
    scores = {row["label"]: row["score"] for row in zero_shot(image, candidate_labels=NEW)}
    names_alone = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path).eval().set_classes(NEW)
    alone = zero_shot.__class__(model=names_alone, tokenizer=zero_shot.tokenizer, image_processor=zero_shot.image_processor)
    assert scores != pytest.approx({row["label"]: row["score"] for row in alone(image, candidate_labels=NEW)}, abs=1e-3)
    # some of its own names need no text encoder (here one that is gone, as on another machine): they are its own rows
    config = json.loads((tmp_path / "config.json").read_text())
    config["text_config"]["encoder"] = str(tmp_path / "gone")
    (tmp_path / "config.json").write_text(json.dumps(config))
    zero_shot = pipeline("zero-shot-image-classification", model=str(tmp_path))
    scores = {row["label"]: row["score"] for row in zero_shot(image, candidate_labels=["truck", "lion"])}
    own = model(pixel_values=model.image_processor()([image], return_tensors="pt")["pixel_values"]).logits[0, [1, 0]].softmax(-1)
    assert scores == pytest.approx({"truck": own[0].item(), "lion": own[1].item()}, abs=1e-4)


def test_keep_trained_puts_the_new_names_beside_the_trained_ones_and_merges_a_trained_name(model, photos):
    with pytest.warns(UserWarning, match=r"\['cat'\] are already trained classes: each is kept once"):
        model.set_classes(["lion", "cat"], examples={"lion": photos(10), "cat": photos(11)}, keep_trained=True)
    assert model.config.class_names == [*CLASS_NAMES, "lion"]
    assert model.config.class_example_counts == [2, 0, 0, 0, 2]  # cat's photos join the trained class
    vocabulary = model.vocabulary
    assert vocabulary.mixes_trained_and_new and vocabulary.trained.tolist() == [True] * 4 + [False]
    pixel_values = model.image_processor()(photos(12), return_tensors="pt")["pixel_values"]
    assert model(pixel_values=pixel_values).logits.shape == (2, 5)
    # a trained class written otherwise is a class of its own, and that is said, with how to merge it
    with pytest.warns(UserWarning, match=r"\{'Cat': 'cat', 'SHIP ': 'ship'\} differ .* only in case.* beside the trained one"):
        model.set_classes(["Cat", "SHIP "], examples={"Cat": photos(13)}, keep_trained=True)
    assert model.config.class_names == [*CLASS_NAMES, "lion", "Cat", "SHIP "]
    # without keep_trained there is no trained class beside it: it is a new name, and the note says so
    with pytest.warns(UserWarning, match=r"\{'Cat': 'cat'\} differ .* each is scored here as a new name, not as the trained"):
        model.set_classes(["Cat", "lion"], examples={"Cat": photos(13)})
    assert model.vocabulary.trained.tolist() == [False, False]


def test_keep_trained_with_photos_says_when_the_model_has_no_offset_for_them(model, photos):
    """Beside names with photos the trained classes want an offset of their own (``example_calibration``): without
    one the zero-shot offset applies, and that is said, with how to fit one; with one, nothing is said."""
    with pytest.warns(UserWarning, match=r"lowered beside the new ones by the model's zero-shot offset \(0\)") as said:
        model.set_classes(["lion"], examples={"lion": photos(10)}, keep_trained=True)
    assert "visnet calibrate --model SAVED_FOLDER --data IMAGES_OF_BOTH" in str(said[0].message)
    model.config.zero_shot_config.example_calibration = 3.0
    model.set_classes(CLASS_NAMES)  # the trained vocabulary again: nothing added before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_classes(["lion"], examples={"lion": photos(10)}, keep_trained=True)
    model.config.zero_shot_config.example_calibration = None
    model.set_classes(CLASS_NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_classes(["lion"], keep_trained=True)  # names alone: the zero-shot offset is theirs


def test_keep_trained_encodes_only_the_new_names(tiny_text_encoder, monkeypatch):
    """The trained names keep their embeddings (and WordNet glosses), exactly what encoding them again gives, so adding a
    class to a model of a thousand costs the new class's texts alone."""
    from visnet_hf.text.encoder import TextEncoder

    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, prototype_glosses=1.0
    ).eval()
    encoded: list[str] = []
    encode = TextEncoder.encode
    monkeypatch.setattr(TextEncoder, "encode", lambda self, texts: encoded.extend(texts) or encode(self, texts))
    model.set_classes(["lion"], keep_trained=True)
    assert model.config.class_names == [*CLASS_NAMES, "lion"]
    assert encoded == ["a photo of a lion.", glosses(["n02129165"])[0]]  # its name and its WordNet gloss, no more
    again = model.vocabulary_for(model.config.class_names)  # every name encoded, as before
    torch.testing.assert_close(model.class_embeddings, again.embeddings, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.class_glosses, again.glosses, atol=1e-5, rtol=0)


def test_a_trained_name_among_new_ones_with_photos_is_said_to_be_scored_as_trained(model, photos):
    with pytest.warns(UserWarning, match=r"\['cat'\] are already trained classes: each is scored as a trained class"):
        model.set_classes(["lion", "cat"], examples={"lion": photos(10), "cat": photos(11)})
    assert model.config.class_names == ["lion", "cat"] and model.vocabulary.trained.tolist() == [False, True]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_classes(["lion", "zebra"], examples={"lion": photos(10)})  # no trained name: nothing to say


def test_examples_from_a_dataset_and_the_mistakes(model, photos, tmp_path):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NEW)})
    dataset = datasets.Dataset.from_dict({"image": photos(40, 4), "label": [0, 0, 1, 2]}, features=features)
    assert {name: len(images) for name, images in examples_by_name(dataset, NEW).items()} == {"lion": 2, "truck": 1, "boat": 1}
    model.set_classes(NEW, examples=dataset)
    assert model.config.class_example_counts == [2, 1, 1]
    # what load_dataset returns: its train split (or its only one)
    as_loaded = datasets.DatasetDict(train=dataset, test=dataset.select([0]))
    assert {name: len(images) for name, images in examples_by_name(as_loaded, NEW).items()} == {"lion": 2, "truck": 1, "boat": 1}
    with pytest.raises(ValueError, match=r"The examples have the splits \['a', 'b'\]; give one of them"):
        examples_by_name(datasets.DatasetDict(a=dataset, b=dataset), NEW)
    # a file or a folder of it, as visnet extend reads them: parquet, save_to_disk's folder, a table of paths and names
    dataset.to_parquet(tmp_path / "photos.parquet")
    dataset.save_to_disk(tmp_path / "saved")
    for number, image in enumerate(dataset["image"]):
        image.convert("RGB").save(tmp_path / f"IMG_{number}.png")
    names = [NEW[label] for label in dataset["label"]]
    (tmp_path / "photos.csv").write_text("image,label\n" + "".join(f"IMG_{i}.png,{name}\n" for i, name in enumerate(names)))
    (tmp_path / "metadata.csv").write_text((tmp_path / "photos.csv").read_text().replace("image,", "file_name,", 1))
    as_set = model.class_example_sums.clone()
    for path in ("photos.parquet", "saved", "photos.csv", "."):  # ".": a folder whose metadata.csv names the classes
        model.set_classes(NEW, examples=tmp_path / path)
        assert model.config.class_example_counts == [2, 1, 1], path
        torch.testing.assert_close(model.class_example_sums, as_set, atol=1e-3, rtol=1e-3)  # the same photos (PNG: lossless)
    # a pandas table of image paths, or of PIL images, beside the names
    paths = pd.DataFrame({"image": [str(tmp_path / f"IMG_{i}.png") for i in range(4)], "label": names})
    for frame in (paths, pd.DataFrame({"image": list(dataset["image"]), "label": names})):
        model.set_classes(NEW, examples=frame)
        assert model.config.class_example_counts == [2, 1, 1]
        torch.testing.assert_close(model.class_example_sums, as_set, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match=r"IMG_0.png is one image, not photos of named classes: give a mapping from name"):
        model.set_classes(NEW, examples=tmp_path / "IMG_0.png")
    streamed = datasets.load_dataset("parquet", data_files=str(tmp_path / "photos.parquet"), streaming=True)
    model.set_classes(NEW, examples=streamed)  # an IterableDatasetDict: its train split, read once
    torch.testing.assert_close(model.class_example_sums, as_set, atol=1e-3, rtol=1e-3)
    with pytest.raises(
        ValueError, match=r"nowhere.parquet is not there: give a folder with a folder of photos per class, a labelled"
    ):
        model.set_classes(NEW, examples=tmp_path / "nowhere.parquet")
    renamed = dataset.rename_columns({"image": "photo", "label": "species"})  # found by their features
    assert {name: len(images) for name, images in examples_by_name(renamed, NEW).items()} == {"lion": 2, "truck": 1, "boat": 1}
    with pytest.raises(ValueError, match=r"needs an image column .* it has \['photo', 'text'\]"):
        examples_by_name(renamed.remove_columns("species").add_column("text", ["a"] * 4), NEW)

    with pytest.raises(ValueError, match=r"Examples were given for \['zebra'\], which are not among the names.*too\.$"):
        model.set_classes(NEW, examples={"zebra": photos(50)})
    with pytest.raises(ValueError, match=r"or name the examples as the names are: \{'LION': 'lion', 'boats': 'boat'\}\."):
        model.set_classes(NEW, examples={"LION": photos(50), "boats": photos(51)})
    numbered = datasets.Dataset.from_dict({"image": photos(40, 4), "label": [0, 0, 1, 2]}, features=features.copy())
    numbered = numbered.cast_column("label", datasets.Value("int64"))  # numbers, their names lost
    with pytest.raises(ValueError, match=r"labels are numbers \(\['0', '1', '2'\]\) without names: make the label column"):
        model.set_classes(NEW, examples=numbered)
    with pytest.raises(ValueError, match=r"No example images for \['lion'\]"):
        model.set_classes(NEW, examples={"lion": []})
    broken = tmp_path / "IMG_0002.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError, match=r"an example of 'truck' \(.*IMG_0002.jpg\) cannot be decoded"):
        model.set_classes(NEW, examples={"truck": [broken]})
    assert model.config.class_example_counts == [2, 1, 1]  # a refused call changes nothing
    with pytest.warns(UserWarning, match=r"\{'boat': 9\} have more examples than the others \(most have 1\); all are used"):
        model.set_classes(NEW, examples={"lion": photos(41, 1), "truck": photos(42, 1), "boat": photos(43, 9)})
    assert model.config.class_example_counts == [1, 1, 9]
    with pytest.warns(UserWarning, match=r"\{'lion': 8\} have more examples than the others \(most have 4\)"):
        model.set_classes(NEW, examples={"lion": photos(45, 8), "truck": photos(46, 4), "boat": photos(47, 4)})  # twice as many
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_classes(NEW, examples={"lion": photos(41, 2), "truck": photos(43, 1), "boat": photos(44, 2)})  # no warning


def test_examples_as_folders_single_images_and_arrays_are_each_that_many_photos(model, photos, tmp_path):
    """A name's photos as a folder of them, as one file, one PIL image or one array (not its rows, not the letters of its
    path), or a folder of class folders: each counts as the photos it holds, with the same features as a list of them."""
    starts = dict(zip(NEW, (60, 64, 68), strict=True))
    for name, start in starts.items():
        (tmp_path / "photos" / name / "more").mkdir(parents=True)
        for number, image in enumerate(photos(start, 3)):  # one in a subfolder; beside them a file that is no image
            image.convert("RGB").save(tmp_path / "photos" / name / ("more" if number == 2 else "") / f"IMG_{number}.png")
        (tmp_path / "photos" / name / "notes.txt").write_text("not a photo")
    model.set_classes(NEW, examples={name: photos(start, 3) for name, start in starts.items()})
    as_lists = model.class_example_sums.clone()
    model.set_classes(NEW, examples=tmp_path / "photos")
    assert model.config.class_example_counts == [3, 3, 3]
    torch.testing.assert_close(model.class_example_sums, as_lists, atol=1e-3, rtol=1e-3)  # PNG is lossless
    model.set_classes(NEW, examples={"truck": str(tmp_path / "photos" / "truck")})
    assert model.config.class_example_counts == [0, 3, 0]
    model.set_classes(NEW, examples={"truck": str(tmp_path / "photos" / "*" / "IMG_0.png"), "boat": f"{tmp_path}/**/IMG_1.png"})
    assert model.config.class_example_counts == [0, 3, 3]  # the files a pattern matches
    with pytest.raises(ValueError, match=r"The examples of 'lion': .*IMG_9\*.png matches no file; give a pattern of image"):
        model.set_classes(NEW, examples={"lion": str(tmp_path / "photos" / "IMG_9*.png")})

    image = photos(70, 1)[0]
    single = {"lion": image, "truck": tmp_path / "photos" / "truck" / "IMG_0.png", "boat": np.asarray(image.convert("RGB"))}
    model.set_classes(NEW, examples=single)
    assert model.config.class_example_counts == [1, 1, 1]
    as_files = model.class_example_sums.clone()
    encoded = (tmp_path / "photos" / "truck" / "IMG_0.png").read_bytes()  # a file's bytes: one photo, or a list of them
    model.set_classes(NEW, examples={"truck": encoded, "boat": [encoded, bytearray(encoded)]})
    assert model.config.class_example_counts == [0, 1, 2]
    torch.testing.assert_close(model.class_example_sums[1], as_files[1], atol=1e-3, rtol=1e-3)
    model.set_classes(NEW, examples={"lion": np.stack([np.asarray(i.convert("RGB")) for i in photos(70, 2)])})
    assert model.config.class_example_counts == [2, 0, 0]  # an array of several images is that many
    as_pil = model.class_example_sums.clone()
    # torch's layout: (N, 3, H, W) fractions, as ToTensor gives them, or (3, H, W) for one; the same photos
    tensors = torch.stack([torch.from_numpy(np.array(i.convert("RGB"))).permute(2, 0, 1) / 255.0 for i in photos(70, 2)])
    model.set_classes(NEW, examples={"lion": tensors, "truck": tensors[0]})
    assert model.config.class_example_counts == [2, 1, 0]
    torch.testing.assert_close(model.class_example_sums[0], as_pil[0], atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match=r"An example of 'boat' is an array of shape \(5, 8, 8\), which is no image"):
        model.set_classes(NEW, examples={"boat": [np.zeros((5, 8, 8))]})
    normalised = model.image_processor()(photos(70, 1), return_tensors="pt")["pixel_values"]  # not the photo itself
    with pytest.raises(ValueError, match=r"An example of 'boat' has values below 0, as an image normalised for a model"):
        model.set_classes(NEW, examples={"boat": normalised})

    with pytest.raises(ValueError, match=r"The examples of 'lion': .*nowhere is not there"):
        model.set_classes(NEW, examples={"lion": str(tmp_path / "nowhere")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"No example images for \['boat'\]"):
        model.set_classes(NEW, examples={"boat": tmp_path / "empty"})
    with pytest.raises(ValueError, match=r"has no class folders: put each class's photos in a folder named as the class"):
        model.set_classes(NEW, examples=tmp_path / "empty")

    # a folder of split folders lends its train split's photos, as visnet extend reads it, and says so
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "train").symlink_to(tmp_path / "photos", target_is_directory=True)
    (tmp_path / "split" / "val" / "lion").mkdir(parents=True)
    photos(80, 1)[0].convert("RGB").save(tmp_path / "split" / "val" / "lion" / "IMG_9.png")
    with pytest.warns(UserWarning, match=r"The photos are those of .*train, the train split of"):
        model.set_classes(NEW, examples=tmp_path / "split")
    assert model.config.class_example_counts == [3, 3, 3]
    # a class named as a split (CIFAR-100's train) beside others is a class
    (tmp_path / "photos" / "lion").rename(tmp_path / "photos" / "train")
    model.set_classes(["train", "truck", "boat"], examples=tmp_path / "photos")
    assert model.config.class_example_counts == [3, 3, 3]


def test_examples_given_by_url_are_read_from_the_web(model, photos, web_folder):
    """A name's photo as a URL, alone or in a list, is read as the same photo from a file is."""
    folder, url = web_folder
    for number, image in enumerate(photos(60, 2)):
        image.convert("RGB").save(folder / f"IMG_{number}.png")
    model.set_classes(NEW, examples={"lion": [folder / "IMG_0.png", folder / "IMG_1.png"], "truck": folder / "IMG_0.png"})
    from_files = model.class_example_sums.clone()
    model.set_classes(NEW, examples={"lion": [f"{url}/IMG_0.png", f"{url}/IMG_1.png"], "truck": f"{url}/IMG_0.png"})
    assert model.config.class_example_counts == [2, 1, 0]
    torch.testing.assert_close(model.class_example_sums, from_files)
    with pytest.raises(BadImageError, match=rf"an example of 'boat' \({url}/IMG_7.png\) cannot be downloaded"):
        model.set_classes(NEW, examples={"boat": f"{url}/IMG_7.png"})


def test_a_warning_points_at_the_users_own_line(model, photos):
    with pytest.warns(UserWarning, match="are already trained classes") as said:
        model.set_classes(["lion", CLASS_NAMES[0]], examples={"lion": photos(40, 2)})
    assert said[0].filename == __file__  # not torch's no_grad wrapper, not visnet_hf


def test_names_that_pick_the_photos_no_better_than_chance_are_said(model, photos):
    """Names the model reads as one (the same embedding for each: every photo goes to the first) pick the right class
    for a third of 12 photos among three names, chance: that is said, with what to measure. Names embedded where
    their photos' images point pick them right: nothing is said; nor with fewer than 10 photos to judge by."""
    by_name = {name: photos(20 + 4 * index, 4) for index, name in enumerate(NEW)}
    width = model.config.embedding_dim
    alike = F.normalize(torch.ones(3, width), dim=-1)
    with pytest.warns(
        UserWarning, match=r"The names alone pick the right class for 4 of the 12 photos given \(33%; chance: 33%\)"
    ) as said:
        model.set_classes(NEW, class_embeddings=alike, examples=by_name)
    heavier = [2 * model.config.zero_shot_config.photo_weight(), 4 * model.config.zero_shot_config.photo_weight()]
    assert str(said[0].message).endswith(f"--data PHOTOS --example-weights {heavier[0]:g} {heavier[1]:g}.")
    assert model.config.class_example_counts == [4, 4, 4]  # said, and the photos are used
    pixel_values = {
        name: model.image_processor()(images, return_tensors="pt")["pixel_values"] for name, images in by_name.items()
    }
    with torch.no_grad():
        own = torch.stack([model.get_image_features(pixel_values[name]).pooler_output.mean(0) for name in NEW])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_classes(NEW, class_embeddings=F.normalize(own, dim=-1), examples=by_name)
        model.set_classes(
            NEW, class_embeddings=alike, examples={name: images[:3] for name, images in by_name.items()}
        )  # 9 photos
    # a name's photos are all summed; the check reads up to 16 of each (memory stays small for a large class)
    many, batched = (embed_examples(model, {"lion": photos(0, 20)}, NEW, batch_size=size) for size in (32, 8))
    assert many.counts.tolist() == [20, 0, 0] and many.photos[1].tolist() == [0] * 16 == batched.photos[1].tolist()
    torch.testing.assert_close(batched.sums, many.sums, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(batched.photos[0], many.photos[0], atol=1e-4, rtol=1e-5)


def test_classes_named_by_numbers_are_said_to_be_named_so(model, photos):
    """Class folders 0/, 1/, 2/ (a dataset exported by index): one note names the cause and the fix, in place of the
    note on names read poorly; a number given its words as a synonym, or a trained name, is a name."""
    numbers = ["0", "1", "2"]
    by_name = {name: photos(20 + 4 * index, 4) for index, name in enumerate(numbers)}
    with pytest.warns(UserWarning) as said:
        model.set_classes(numbers, examples=by_name)
    notes = [str(warning.message) for warning in said]
    assert [note for note in notes if "named by numbers" in note] == [
        "The new classes are named by numbers (0, 1, 2), which say nothing of what they show: only the photos tell them "
        "apart. Name each class by what it shows (a folder zebra/ instead of 0/, or a label column of names), or give "
        "its words as synonyms."
    ]
    assert not any("The names alone pick the right class" in note for note in notes)
    with pytest.warns(UserWarning, match=r"named by numbers \(0, 1, 2\), .*: they are scored as if at random\."):
        model.set_classes(numbers, synonyms=[None, None, None])  # as a data file without synonyms gives them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_classes(numbers, synonyms=["lion", "truck", "boat"])
        model.set_classes([*NEW, "007"])  # one name of words among them
