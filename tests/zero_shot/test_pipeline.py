"""Zero-shot the way transformers users do it: the zero-shot pipeline and the Auto class, ranking as set_classes does."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForZeroShotImageClassification, AutoTokenizer, pipeline

import visnet_hf
from tests.helpers import CLASS_NAMES, assert_close32, generated_images
from visnet_hf import is_vsenet
from visnet_hf.evaluation import collect_logits
from visnet_hf.text import resolve_templates
from visnet_hf.zero_shot import PIPELINE_TEMPLATE, labels_from_prompts

NEW_NAMES = ["zebra", "ox", "hippopotamus"]


@pytest.fixture()
def vsenet(tiny_text_encoder):
    torch.manual_seed(0)
    return visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, class_centering=True
    ).eval()


@pytest.fixture()
def saved(vsenet, tmp_path):
    vsenet.save_pretrained(tmp_path)
    return tmp_path


def _set_classes_probabilities(folder, image, names, templates=None, **config):
    """What ``set_classes`` + ``forward`` give: the reference the pipeline must reproduce."""
    model = visnet_hf.VSENetForImageClassification.from_pretrained(folder).eval()
    model.config.zero_shot_config = model.config.zero_shot_config.updated(**config)
    model.set_classes(names, templates=templates)
    with torch.no_grad():
        logits = model(**model.image_processor()(image, return_tensors="pt")).logits
    return dict(zip(names, logits.softmax(-1)[0].tolist()))


def _pipeline_probabilities(folder, image, names, **kwargs):
    classifier = pipeline("zero-shot-image-classification", model=str(folder))
    return {row["label"]: row["score"] for row in classifier(image, candidate_labels=names, **kwargs)}


def test_the_folder_holds_what_the_zero_shot_pipeline_loads(saved, tiny_text_encoder):
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json"} <= {
        p.name for p in saved.iterdir()
    }
    saved_tokens = AutoTokenizer.from_pretrained(saved)(["a photo of a zebra."])["input_ids"]
    assert saved_tokens == AutoTokenizer.from_pretrained(tiny_text_encoder)(["a photo of a zebra."])["input_ids"]
    model = AutoModelForZeroShotImageClassification.from_pretrained(saved)
    assert is_vsenet(model) and not is_vsenet(torch.nn.Linear(1, 1))


@pytest.mark.parametrize(
    ("names", "pipeline_kwargs", "templates"),
    [
        (NEW_NAMES, {}, None),  # the pipeline's default template stands for the model's own templates
        (NEW_NAMES, {"hypothesis_template": "the {}."}, ["the {}."]),  # another template replaces them
        (["zebra", *CLASS_NAMES[:2]], {"hypothesis_template": "the {}."}, ["the {}."]),  # trained names among new ones
        (CLASS_NAMES, {}, None),  # the trained vocabulary itself: both heads
        (list(reversed(CLASS_NAMES)), {}, None),  # trained names in another order: the zero-shot head
    ],
)
def test_the_pipeline_ranks_as_set_classes_does(saved, names, pipeline_kwargs, templates):
    image = generated_images(1, seed=3)[0]
    # An offset on trained names and ConSE+cosine scoring: the pipeline must get both right.
    config = {"calibration": 0.7, "head": "both"}
    saved_config = json.loads((saved / "config.json").read_text())
    saved_config["zero_shot_config"].update(config)
    (saved / "config.json").write_text(json.dumps(saved_config))
    expected = _set_classes_probabilities(saved, image, names, templates)
    got = _pipeline_probabilities(saved, image, names, **pipeline_kwargs)
    assert sorted(got, key=got.get) == sorted(expected, key=expected.get)
    assert got == pytest.approx(expected, abs=1e-5)


def test_prompts_are_read_back_as_names(vsenet):
    tokenizer = vsenet.tokenizer()

    def read_back(sentences):
        ids = tokenizer(sentences, padding=True, return_tensors="pt")["input_ids"]
        return labels_from_prompts(tokenizer, ids, CLASS_NAMES)

    # The pipeline's default template stands for the model's own templates (None).
    assert read_back([PIPELINE_TEMPLATE.format(n) for n in ["zebra", "Dog"]]) == (["zebra", "dog"], None)
    assert read_back(["the zebra.", "the cat."]) == (["zebra", "cat"], ["the {}."])
    # No template shared by all and no trained name: each sentence is one class text.
    assert read_back(["a zebra.", "the ox"]) == (["a zebra.", "the ox"], ["{}"])
    assert read_back(["cat", "ox"]) == (["cat", "ox"], ["{}"])
    # A label given twice is said as the label, not as the sentence the pipeline made of it.
    with pytest.raises(ValueError, match=r"name \['zebra'\] more than once"):
        read_back([PIPELINE_TEMPLATE.format(n) for n in ["zebra", "ox", "Zebra"]])
    # candidate_labels="cat, dog": the pipeline makes a sentence of each character; said, with the list to give
    with pytest.raises(ValueError, match=r"given as one string.*candidate_labels=\['cat', 'dog'\]"):
        read_back([PIPELINE_TEMPLATE.format(c) for c in "cat, dog"])
    with pytest.raises(ValueError, match="A candidate label is empty"):
        read_back([PIPELINE_TEMPLATE.format(n) for n in ["zebra", ""]])
    vocabulary = vsenet.vocabulary_for(["zebra", "dog"], templates=None)
    assert vocabulary.texts.templates == resolve_templates(vsenet.config.text_config.templates)


def test_collect_logits_is_the_loop_evaluation_uses(vsenet):
    batches = [
        {"pixel_values": torch.randn(3, 3, 32, 32), "labels": torch.tensor([0, 1, 2])},
        {"pixel_values": torch.empty(0), "labels": torch.tensor([], dtype=torch.long), "bad_images": ["broken.jpg"]},
        {"pixel_values": torch.randn(2, 3, 32, 32), "labels": torch.tensor([3, 0])},
    ]
    vocabulary = vsenet.vocabulary_for(NEW_NAMES)
    collected = collect_logits(vsenet, batches, vocabulary=vocabulary)
    assert len(collected) == 5 and collected.labels.tolist() == [0, 1, 2, 3, 0] and collected.bad_images == ["broken.jpg"]
    with torch.no_grad():
        direct = vsenet(torch.cat([batches[0]["pixel_values"], batches[2]["pixel_values"]]), vocabulary=vocabulary).logits
    assert_close32(collected.scores, direct)  # batched otherwise


def test_minilm_pipeline_and_set_classes_agree_on_real_images(minilm_path, cifar10_sample, tmp_path):
    """The check a user makes: real images, the real text encoder, new names, the pipeline against set_classes."""
    images, _, names = cifar10_sample
    torch.manual_seed(0)
    model = visnet_hf.create_model("vsenet_resnet18", class_names=names, image_size=32).eval()
    assert model.config.text_config.encoder == "sentence-transformers/all-MiniLM-L6-v2"  # portable: no path of this machine
    model.save_pretrained(tmp_path)
    new = ["tabby cat", "lorry", "sailing boat", "sparrow", "horse"]
    classifier = pipeline("zero-shot-image-classification", model=str(tmp_path))
    reference = AutoModelForZeroShotImageClassification.from_pretrained(tmp_path).eval().set_classes(new)
    processor = reference.image_processor()
    pipeline_top1 = [classifier(image, candidate_labels=new)[0]["label"] for image in images[:8]]
    with torch.no_grad():
        logits = reference(**processor(images[:8], return_tensors="pt")).logits
    assert pipeline_top1 == [new[i] for i in logits.argmax(-1)]
    text = reference.get_text_features(**reference.tokenizer()(new, padding=True, return_tensors="pt")).pooler_output
    assert text.shape == (5, 384) and torch.allclose(F.normalize(text, dim=-1), text, atol=1e-5)
