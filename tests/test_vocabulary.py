"""Zero-shot the way transformers users do it: the zero-shot pipeline, the Auto class, CLIP's feature
getters, and the vocabulary as a value handed to the model instead of state flipped inside it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForZeroShotImageClassification, AutoTokenizer, pipeline

import visnet_hf
from visnet_hf import Vocabulary, build_vocabulary, is_vsenet
from visnet_hf.evaluation import collect_logits
from visnet_hf.text_encoders import resolve_templates
from visnet_hf.zero_shot import PIPELINE_TEMPLATE, vocabulary_from_prompts

from .conftest import CLASS_NAMES, generated_images

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
    for key, value in config.items():
        setattr(model.config, key, value)
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
    config = {"calibration": 0.7, "zero_shot_head": "both"}
    (saved / "config.json").write_text(json.dumps({**json.loads((saved / "config.json").read_text()), **config}))
    expected = _set_classes_probabilities(saved, image, names, templates)
    got = _pipeline_probabilities(saved, image, names, **pipeline_kwargs)
    assert sorted(got, key=got.get) == sorted(expected, key=expected.get)
    assert got == pytest.approx(expected, abs=1e-5)


def test_prompts_are_read_back_as_names(vsenet):
    tokenizer = vsenet.tokenizer()

    def read_back(sentences):
        ids = tokenizer(sentences, padding=True, return_tensors="pt")["input_ids"]
        vocabulary = vocabulary_from_prompts(vsenet, tokenizer, ids)
        return list(vocabulary.names), vocabulary.texts.templates, vocabulary.trained.tolist()

    default = resolve_templates(vsenet.config.templates)  # "a photo of a {}." by default
    assert read_back([PIPELINE_TEMPLATE.format(n) for n in ["zebra", "Dog"]]) == (["zebra", "dog"], default, [False, True])
    assert read_back(["the zebra.", "the cat."]) == (["zebra", "cat"], ("the {}.",), [False, True])
    # No template shared by all and no trained name: each sentence is one class text.
    assert read_back(["a zebra.", "the ox"]) == (["a zebra.", "the ox"], ("{}",), [False, False])
    assert read_back(["cat", "ox"]) == (["cat", "ox"], ("{}",), [True, False])


def test_feature_getters_have_clips_meaning(vsenet, pixel_batch):
    tokens = vsenet.tokenizer()(["a photo of a zebra.", "an ox"], padding=True, return_tensors="pt")
    with torch.no_grad():
        image = vsenet.get_image_features(pixel_values=pixel_batch).pooler_output
        text = vsenet.get_text_features(**tokens).pooler_output
        output = vsenet(pixel_values=pixel_batch, zero_shot_head="semantic", **tokens)
    assert image.shape == (4, vsenet.config.embedding_dim) and text.shape == (2, vsenet.config.embedding_dim)
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(image, output.image_embeds)
    # Centred text embeddings (class_centering) scored by the cosine head: logits_per_image is the product.
    torch.testing.assert_close(text, output.text_embeds, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(output.logits_per_image, vsenet.logit_scale_value() * image @ text.T, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(output.logits_per_text, output.logits_per_image.T)


def test_a_vocabulary_is_a_value_the_model_is_not_changed_by(vsenet, pixel_batch):
    config_before, embeddings_before = vsenet.config.to_dict(), vsenet.class_embeddings.clone()
    vocabulary = build_vocabulary(vsenet, ["zebra", *CLASS_NAMES])
    assert isinstance(vocabulary, Vocabulary) and vocabulary.trained.tolist() == [False, True, True, True, True]
    assert vocabulary.mixes_trained_and_new and not vocabulary.is_trained_vocabulary
    with torch.no_grad():
        scored = vsenet(pixel_batch, vocabulary=vocabulary, zero_shot_head="semantic", calibration=2.0).logits
        plain = vsenet(pixel_batch, vocabulary=vocabulary, zero_shot_head="semantic", calibration=0.0).logits
    # The per-call options act on this call only; the model's config and vocabulary stay as they were.
    torch.testing.assert_close(scored, plain - 2.0 * vocabulary.trained.float())
    assert vsenet.config.to_dict() == config_before and torch.equal(vsenet.class_embeddings, embeddings_before)
    # set_classes is the same vocabulary made the model's own.
    vsenet.config.zero_shot_head, vsenet.config.calibration = "semantic", 2.0
    with torch.no_grad():
        torch.testing.assert_close(vsenet.set_classes(["zebra", *CLASS_NAMES])(pixel_batch).logits, scored)


def test_collect_logits_is_the_loop_evaluation_uses(vsenet):
    batches = [
        {"pixel_values": torch.randn(3, 3, 32, 32), "labels": torch.tensor([0, 1, 2])},
        {"pixel_values": torch.empty(0), "labels": torch.tensor([], dtype=torch.long), "bad_images": ["broken.jpg"]},
        {"pixel_values": torch.randn(2, 3, 32, 32), "labels": torch.tensor([3, 0])},
    ]
    vocabulary = build_vocabulary(vsenet, NEW_NAMES)
    collected = collect_logits(vsenet, batches, vocabulary=vocabulary)
    assert len(collected) == 5 and collected.labels.tolist() == [0, 1, 2, 3, 0] and collected.bad_images == ["broken.jpg"]
    with torch.no_grad():
        direct = vsenet(torch.cat([batches[0]["pixel_values"], batches[2]["pixel_values"]]), vocabulary=vocabulary).logits
    torch.testing.assert_close(collected.scores, direct, atol=1e-5, rtol=1e-5)


def test_a_stage_objective_reaches_the_forward_without_changing_the_config(vsenet, pixel_batch, monkeypatch):
    from visnet_hf.training.config import StageConfig

    labels = torch.tensor([0, 1, 2, 3])
    align = vsenet(pixel_batch, labels=labels, **StageConfig(objective="align").forward_kwargs())
    assert set(align.loss_terms) == {"align", "weight_reg"} and vsenet.config.objective == "finetune"
    assert set(vsenet(pixel_batch, labels=labels, **StageConfig().forward_kwargs()).loss_terms) >= {"semantic_ce"}


@pytest.mark.slow
def test_training_stages_leave_the_models_objective_alone(tiny_parquet, tiny_text_encoder, tmp_path):
    from visnet_hf.training import load_config, train

    from .conftest import write_config

    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    stages = "stages=[{name: a, steps: 2, objective: joint}, {name: b, steps: 2, objective: align}]"
    results = train(load_config(config, [stages, "export=false", "checkpoints=false"]))
    assert results["model"].config.objective == "finetune"  # as created: the stages passed theirs per call


def test_minilm_pipeline_and_set_classes_agree_on_real_images(minilm_path, cifar10_sample, tmp_path):
    """The check a user makes: real images, the real text encoder, new names, the pipeline against set_classes."""
    images, _, names = cifar10_sample
    torch.manual_seed(0)
    model = visnet_hf.create_model("vsenet_resnet18", class_names=names, image_size=32).eval()
    assert model.config.text_encoder == "sentence-transformers/all-MiniLM-L6-v2"  # portable: no path of this machine
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


@pytest.mark.slow
def test_wise_ft_chosen_per_use(tiny_parquet, tiny_text_encoder, tmp_path, pixel_batch):
    """wise_ft.seen_alpha: the trained vocabulary is scored at seen_alpha, every other vocabulary at alpha."""
    import copy

    from visnet_hf.errors import ConfigError
    from visnet_hf.training import load_config, train
    from visnet_hf.wise_ft import interpolate_state

    from .conftest import write_config

    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    overrides = [
        "optim.freeze=backbone",
        "stages=[{name: align, steps: 3, objective: align}, {name: tune, steps: 3, objective: joint}]",
        "wise_ft={stage: align, alpha: 0.25, seen_alpha: 1.0}",
    ]
    with pytest.raises(ConfigError, match="wise_ft.seen_alpha keeps only the heads twice, so it needs optim.freeze: backbone"):
        load_config(config, [*overrides, "optim.freeze=none"])
    results = train(load_config(config, overrides))
    model, ends = results["model"].eval(), results["wise_ft_endpoints"]
    assert model.config.zero_shot_heads and model.zero_shot_heads is not None

    def scored_at(alpha, **kwargs):
        reference = copy.deepcopy(model)
        reference.zero_shot_heads, reference.config.zero_shot_heads = None, False
        reference.load_state_dict(interpolate_state(ends["start"], ends["final"], alpha))
        with torch.no_grad():
            return reference(pixel_batch, **kwargs).logits

    new = build_vocabulary(model, NEW_NAMES)
    with torch.no_grad():
        trained_logits, new_logits = model(pixel_batch).logits, model(pixel_batch, vocabulary=new).logits
    torch.testing.assert_close(trained_logits, scored_at(1.0))
    torch.testing.assert_close(new_logits, scored_at(0.25, vocabulary=new))
    assert not torch.allclose(new_logits, scored_at(1.0, vocabulary=new))
    reloaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path / "run" / "model").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_batch, vocabulary=new).logits, new_logits)
        torch.testing.assert_close(reloaded(pixel_batch).logits, trained_logits)
