"""Few-shot: new names with a few photos each, scored from their texts and photos together (name-anchored
prototypes), kept in the vocabulary, saved with the model, used by both pipelines; and the bad inputs."""

from __future__ import annotations

import warnings

import datasets
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForImageClassification, pipeline

import visnet_hf
from tests.helpers import CLASS_NAMES
from visnet_hf.data.images import BadImageError
from visnet_hf.zero_shot.few_shot import ExampleSet, example_logits, examples_by_name

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


def test_anchored_prototypes_are_the_examples_mean_pulled_toward_the_names_prototype():
    """The formula, by hand: normalise(sum of unit features + name_worth * borrowed), then scaled cosines."""
    generator = torch.Generator().manual_seed(0)
    visual, examples = torch.randn(5, 8, generator=generator), F.normalize(torch.randn(3, 8, generator=generator), dim=-1)
    borrowed = F.normalize(torch.randn(2, 8, generator=generator), dim=-1)
    example_set = ExampleSet(torch.stack([examples[:2].sum(0), examples[2]]), torch.tensor([2.0, 1.0]))
    got = example_logits(visual.double(), example_set, borrowed, None, name_worth=1.5, scale=10.0)
    anchors = F.normalize(torch.stack([examples[:2].sum(0) + 1.5 * borrowed[0], examples[2] + 1.5 * borrowed[1]]), dim=-1)
    torch.testing.assert_close(got, 10.0 * F.normalize(visual, dim=-1) @ anchors.T, rtol=1e-5, atol=1e-5)
    # without a name's prototype (a model without visual prototypes), the photos alone: a nearest class mean
    alone = example_logits(visual, example_set, None, None, name_worth=1.5, scale=1.0)
    torch.testing.assert_close(alone, F.normalize(visual, dim=-1) @ F.normalize(example_set.sums, dim=-1).T)


def test_set_classes_with_examples_scores_names_and_photos_together(model, photos):
    examples = {name: photos(seed) for name, seed in zip(NEW, (10, 20, 30), strict=True)}
    processor = model.image_processor()
    queries = processor([image for name in NEW for image in examples[name]], return_tensors="pt")["pixel_values"]
    names_alone = model.set_classes(NEW)(pixel_values=queries).logits
    model.set_classes(NEW, examples=examples)
    assert model.config.class_example_counts == [2, 2, 2] and model.vocabulary.examples is not None
    with_photos = model(pixel_values=queries).logits
    settings = model.config.zero_shot_config
    assert not torch.allclose(with_photos, names_alone)
    # the added term is example_weight times the anchored cosines
    vocabulary = model.vocabulary
    pooled = model(pixel_values=queries).pooler_output
    borrowed = model.zero_shot.prototypes.borrowed(
        visnet_hf.zero_shot.borrowing_logits(
            model.normalized_class_embeddings(),
            model.scored_embeddings(model.trained_class_embeddings),
            vocabulary,
            model.trained_vocabulary,
            settings,
        )
    )
    expected = settings.example_weight * example_logits(
        pooled, vocabulary.examples, borrowed, model.zero_shot.prototypes, settings.name_worth, model.logit_scale_value(model)
    )
    torch.testing.assert_close(with_photos - names_alone, expected, rtol=1e-4, atol=1e-4)
    # with one photo each, weighing in alone, each photo is recognised as its own class (a cosine of 1)
    model.set_classes(NEW, examples={name: examples[name][:1] for name in NEW})
    photos_only = settings.updated(name_worth=0.0, example_weight=1e4)
    assert model(pixel_values=queries[::2], zero_shot_config=photos_only).logits.argmax(1).tolist() == [0, 1, 2]
    # names without photos keep the prototype their name borrows; a plain set_classes drops the photos
    model.set_classes(NEW, examples={"lion": photos(10)})
    assert model.config.class_example_counts == [2, 0, 0]
    model.set_classes(NEW)
    assert model.config.class_example_counts is None and model.class_example_sums is None


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


def test_keep_trained_puts_the_new_names_beside_the_trained_ones_and_merges_a_trained_name(model, photos):
    with pytest.warns(UserWarning, match=r"\['cat'\] are already trained classes: each is kept once"):
        model.set_classes(["lion", "cat"], examples={"lion": photos(10), "cat": photos(11)}, keep_trained=True)
    assert model.config.class_names == [*CLASS_NAMES, "lion"]
    assert model.config.class_example_counts == [2, 0, 0, 0, 2]  # cat's photos join the trained class
    vocabulary = model.vocabulary
    assert vocabulary.mixes_trained_and_new and vocabulary.trained.tolist() == [True] * 4 + [False]
    pixel_values = model.image_processor()(photos(12), return_tensors="pt")["pixel_values"]
    assert model(pixel_values=pixel_values).logits.shape == (2, 5)


def test_examples_from_a_dataset_and_the_mistakes(model, photos, tmp_path):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NEW)})
    dataset = datasets.Dataset.from_dict({"image": photos(40, 4), "label": [0, 0, 1, 2]}, features=features)
    assert {name: len(images) for name, images in examples_by_name(dataset, NEW).items()} == {"lion": 2, "truck": 1, "boat": 1}
    model.set_classes(NEW, examples=dataset)
    assert model.config.class_example_counts == [2, 1, 1]

    with pytest.raises(ValueError, match=r"Examples were given for \['zebra'\], which are not among the names"):
        model.set_classes(NEW, examples={"zebra": photos(50)})
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
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_classes(NEW, examples={"lion": photos(41, 2), "truck": photos(43, 1), "boat": photos(44, 2)})  # no warning
