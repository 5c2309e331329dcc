"""VSENet itself: its heads, objectives and the seed's matrices, its vocabulary, its text tower, CLIP's getters."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import pipeline

import visnet_hf
from tests.helpers import CLASS_NAMES, generated_images
from visnet_hf import ClassTexts, TextEncoder, VSENetForImageClassification, semantics


def create(text_encoder: str, **overrides) -> VSENetForImageClassification:
    torch.manual_seed(0)
    return visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=text_encoder, image_size=32, **overrides
    ).eval()


@pytest.fixture()
def vsenet(tiny_text_encoder):
    return create(tiny_text_encoder, head="semantic")


def test_semantic_matrices(vsenet, pixel_batch):
    vsenet.double()  # hand computations below take other kernels: compared in float64, tightly, on any CPU
    embeddings = vsenet.normalized_class_embeddings()
    centres = vsenet.class_centres()
    torch.testing.assert_close(centres.mean(0), torch.zeros_like(centres[0]), atol=1e-12, rtol=0)
    distances = vsenet.class_distances()
    torch.testing.assert_close(distances, distances.T)
    torch.testing.assert_close(distances.diagonal(), torch.zeros_like(distances[0]), atol=1e-10, rtol=0)
    assert distances[0, 1] == pytest.approx(float((embeddings[0] - embeddings[1]).pow(2).sum()), rel=1e-9)
    similarity = vsenet.class_similarity(gamma=2.0)
    torch.testing.assert_close(similarity.sum(0), torch.ones_like(similarity[0]))
    expected = torch.exp(-2.0 * distances[:, 1]) / torch.exp(-2.0 * distances[:, 1]).sum()
    torch.testing.assert_close(similarity[:, 1], expected)
    assert int(similarity[:, 1].argmax()) == 1  # a class is most similar to itself
    assert vsenet.class_similarity(gamma=50.0).diagonal().min() > similarity.diagonal().min()  # gamma sharpens S

    output = vsenet(pixel_batch.double())
    association = vsenet.association(output.image_embeds)
    assert association.shape == (4, len(CLASS_NAMES)) and association.abs().max() <= 1 + 1e-9
    torch.testing.assert_close(output.semantic_logits, vsenet.logit_scale_value() * association)
    with pytest.raises(ValueError, match="gamma must be positive"):
        semantics.class_similarity(embeddings, gamma=0)


def test_objectives_select_their_terms(tiny_text_encoder, pixel_batch):
    labels = torch.tensor([0, 1, 2, 3])
    expected = {
        "align": {"align", "weight_reg"},
        "finetune": {"semantic_ce", "softmax_ce", "weight_reg"},
        "joint": {"align", "semantic_ce", "softmax_ce", "weight_reg"},
    }
    for objective, terms in expected.items():
        assert set(create(tiny_text_encoder, objective=objective)(pixel_batch, labels=labels).loss_terms) == terms
    model = create(tiny_text_encoder)  # a stage's objective, per call: the config stays as created
    assert set(model(pixel_batch, labels=labels, objective="align").loss_terms) == expected["align"]
    assert model.config.objective == "finetune"


def test_align_with_no_structure_is_cross_entropy_and_structure_changes_it(tiny_text_encoder, pixel_batch):
    labels = torch.tensor([0, 1, 2, 3])
    model = create(tiny_text_encoder, head="semantic", objective="align", weight_reg=0.0, structure_weight=0.0).double()
    output = model(pixel_batch.double(), labels=labels)
    torch.testing.assert_close(output.loss, F.cross_entropy(output.semantic_logits, labels))
    model = create(tiny_text_encoder, head="semantic", objective="align", weight_reg=0.0, structure_weight=0.5).double()
    output = model(pixel_batch.double(), labels=labels)
    targets = 0.5 * F.one_hot(labels, 4).double() + 0.5 * model.class_similarity()[:, labels].T
    torch.testing.assert_close(output.loss, -(targets * output.semantic_logits.log_softmax(-1)).sum(-1).mean())


def test_temperature_is_learnable_and_clamped(vsenet):
    assert vsenet.logit_scale.requires_grad
    assert vsenet.logit_scale_value().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        vsenet.logit_scale.fill_(10.0)
    assert vsenet.logit_scale_value().item() == pytest.approx(1 / vsenet.config.min_temperature)


def test_the_softmax_head_takes_part_only_in_the_trained_vocabulary(tiny_text_encoder, pixel_batch):
    model = create(tiny_text_encoder, head="both").double()
    output = model(pixel_batch.double())
    weight = model.config.softmax_weight
    mixed = (1 - weight) * output.semantic_logits.log_softmax(-1) + weight * output.softmax_logits.log_softmax(-1)
    torch.testing.assert_close(output.logits, mixed)
    semantic = model.config.zero_shot_config.updated(head="semantic")
    output = model(pixel_batch.double(), vocabulary=model.vocabulary_for([*CLASS_NAMES, "zebra"]), zero_shot_config=semantic)
    assert output.softmax_logits is None
    torch.testing.assert_close(output.logits, output.semantic_logits)


def test_set_classes_switches_labels_and_predictions_follow_names(vsenet, pixel_batch, tmp_path):
    vsenet.config.zero_shot_config.head = "semantic"  # scores a reordered vocabulary exactly as the trained one
    before = vsenet(pixel_batch).logits
    reordered = list(reversed(CLASS_NAMES))
    vsenet.set_classes(reordered)
    assert vsenet.config.id2label == dict(enumerate(reordered)) and vsenet.config.class_names == reordered
    torch.testing.assert_close(vsenet(pixel_batch).logits, before.flip(-1))  # each name keeps its score
    new_names = ["zebra", "ox", "hippopotamus"]
    vsenet.set_classes(new_names)
    assert vsenet(pixel_batch).logits.shape == (4, 3) and vsenet.config.trained_class_names == CLASS_NAMES
    vsenet.save_pretrained(tmp_path)
    classifier = pipeline("image-classification", model=str(tmp_path))
    assert {r["label"] for r in classifier(generated_images(1)[0], top_k=3)} == set(new_names)
    with pytest.raises(ValueError, match="do not fit this model"):
        vsenet.set_classes(["a", "b"], class_embeddings=torch.randn(2, 7))


def test_a_vocabulary_handed_to_the_model_leaves_it_unchanged(vsenet, pixel_batch):
    config_before, embeddings_before = vsenet.config.to_dict(), vsenet.class_embeddings.clone()
    vocabulary = vsenet.vocabulary_for(["zebra", *CLASS_NAMES])
    assert vocabulary.trained.tolist() == [False, True, True, True, True] and vocabulary.mixes_trained_and_new
    with torch.no_grad():
        scored = vsenet(
            pixel_batch, vocabulary=vocabulary, zero_shot_config=vsenet.config.zero_shot_config.updated(calibration=2.0)
        )
        plain = vsenet(pixel_batch, vocabulary=vocabulary).logits
    # the offset, on trained names' sum of experts, before the temperature (the semantic cosine and ConSE: 2)
    assert vsenet.config.zero_shot_config.temperature_for() == 2.0
    torch.testing.assert_close(scored.logits, plain - 2.0 / 2.0 * vocabulary.trained.float())
    assert vsenet.config.to_dict() == config_before and torch.equal(vsenet.class_embeddings, embeddings_before)
    vsenet.config.zero_shot_config.calibration = 2.0  # set_classes is the same vocabulary made the model's own
    with torch.no_grad():
        torch.testing.assert_close(vsenet.set_classes(["zebra", *CLASS_NAMES])(pixel_batch).logits, scored.logits)


def test_feature_getters_have_clips_meaning(tiny_text_encoder, pixel_batch):
    model = create(tiny_text_encoder, class_centering=True).double()
    tokens = model.tokenizer()(["a photo of a zebra.", "an ox"], padding=True, return_tensors="pt")
    semantic = model.config.zero_shot_config.updated(head="semantic")
    with torch.no_grad():
        image = model.get_image_features(pixel_values=pixel_batch.double()).pooler_output
        text = model.get_text_features(**tokens).pooler_output
        output = model(pixel_values=pixel_batch.double(), zero_shot_config=semantic, **tokens)
    assert image.shape == (4, model.config.embedding_dim) and text.shape == (2, model.config.embedding_dim)
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(4, dtype=image.dtype))
    torch.testing.assert_close(image, output.image_embeds)
    # Centred text embeddings (text_config.centering) scored by the cosine head: logits_per_image is the product.
    torch.testing.assert_close(text.to(output.text_embeds), output.text_embeds, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(output.logits_per_image, model.logit_scale_value() * image @ output.text_embeds.T)
    torch.testing.assert_close(output.logits_per_text, output.logits_per_image.T)


def test_class_centring_subtracts_the_trained_mean(tiny_text_encoder):
    model = create(tiny_text_encoder, class_centering=True)
    raw = F.normalize(model.class_embeddings, dim=-1)
    torch.testing.assert_close(model.text_mean, raw.mean(0))
    torch.testing.assert_close(model.normalized_class_embeddings(), F.normalize(raw - raw.mean(0), dim=-1))
    model.set_classes(["zebra", "ox"])  # new names are centred with the trained vocabulary's mean
    expected = F.normalize(F.normalize(model.class_embeddings, dim=-1) - raw.mean(0), dim=-1)
    torch.testing.assert_close(model.normalized_class_embeddings(), expected)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["tiny_text_encoder", "tiny_clip_text_encoder"])
def test_lit_unlocks_the_last_text_layers_and_saves_them(encoder, request, tmp_path, pixel_batch):
    path = request.getfixturevalue(encoder)
    model = create(path, text_config={"trainable_layers": 1}).train()
    trainable = {name for name, p in model.text_tower.named_parameters() if p.requires_grad}
    layer_stack = "encoder.text_model.encoder.layers" if "clip" in encoder else "encoder.encoder.layer"
    assert trainable and all(not name.startswith(f"{layer_stack}.0.") for name in trainable)
    assert any(name.startswith(f"{layer_stack}.1.") for name in trainable)
    assert not any("embeddings" in name for name in trainable)  # embeddings and layer 0 stay locked
    before = model.class_embeddings.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        loss = model(pixel_batch, labels=torch.tensor([0, 1, 2, 3])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(p.grad is None for n, p in model.text_tower.named_parameters() if n not in trainable)
    assert not torch.allclose(model.class_embeddings, before, atol=1e-4)  # the tower moved the class embeddings
    model.eval().save_pretrained(tmp_path / "lit")
    reloaded = VSENetForImageClassification.from_pretrained(tmp_path / "lit").eval()
    torch.testing.assert_close(reloaded(pixel_batch).logits, model(pixel_batch).logits)
    reloaded.set_classes(["zebra", "ox"])  # new names go through the trained tower, not the original encoder
    original = TextEncoder(path).embed_classes(ClassTexts.build(["zebra", "ox"]))
    assert not torch.allclose(reloaded.class_embeddings, original, atol=1e-4)


@pytest.mark.slow
def test_minilm_and_real_images(minilm_path, cifar10_sample, tmp_path):
    """The real text encoder and real CIFAR-10 images, through the Auto classes and a pipeline."""
    images, labels, names = cifar10_sample
    model = visnet_hf.create_model("vsenet_resnet18", class_names=names, text_encoder=minilm_path, image_size=32)
    assert model.config.embedding_dim == 384
    distances = model.class_distances()
    cat, dog, truck, automobile = (names.index(n) for n in ("cat", "dog", "truck", "automobile"))
    assert distances[cat, dog] < distances[cat, truck] and distances[truck, automobile] < distances[truck, cat]
    batch = model.image_processor()(images[:16], return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    target = torch.tensor(labels[:16])
    first = model(**batch, labels=target).loss
    for _ in range(3):
        loss = model(**batch, labels=target).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model(**batch, labels=target).loss < first
    model.eval().save_pretrained(tmp_path)
    predictions = pipeline("image-classification", model=str(tmp_path))(images[:4])
    assert all(p[0]["label"] in names for p in predictions)
    reloaded = VSENetForImageClassification.from_pretrained(tmp_path)
    reloaded.set_classes(["cat", "tabby cat", "lorry"])
    assert reloaded.config.id2label[2] == "lorry"
