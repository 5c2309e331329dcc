"""VSENet's language side: class embeddings, the seed's matrices, zero-shot vocabularies, calibration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import pipeline

import visnet_hf
from visnet_hf import ClassTexts, TextEncoder, VSENetForImageClassification, semantics

from .conftest import CLASS_NAMES, generated_images


@pytest.fixture()
def vsenet(tiny_text_encoder):
    torch.manual_seed(0)
    return visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, head="semantic"
    ).eval()


def test_class_embeddings_average_templates_and_descriptions(tiny_text_encoder):
    encoder = TextEncoder(tiny_text_encoder)
    templates = ["a photo of a {}.", "the {}."]
    embedded = encoder.embed_classes(ClassTexts.build(["cat", "dog"], templates=templates))
    by_hand = F.normalize(encoder.encode(["a photo of a cat.", "the cat."]).mean(0), dim=0)
    torch.testing.assert_close(embedded[0], by_hand)

    described = encoder.embed_classes(ClassTexts.build(["cat", "dog"], descriptions=["a small pet", None]))
    assert not torch.allclose(described[0], encoder.embed_classes(ClassTexts.build(["cat", "dog"]))[0])
    torch.testing.assert_close(described.norm(dim=-1), torch.ones(2))


def test_cls_pooling_differs_from_mean_pooling(tiny_text_encoder):
    texts = ["a photo of a cat."]
    mean = TextEncoder(tiny_text_encoder, pooling="mean").encode(texts)
    cls = TextEncoder(tiny_text_encoder, pooling="cls").encode(texts)
    assert not torch.allclose(mean, cls)


def test_batching_does_not_change_embeddings(tiny_text_encoder):
    texts = [f"a photo of a {name}." for name in ["cat", "zebra", "an", "ox", "hippopotamus"]]
    torch.testing.assert_close(
        TextEncoder(tiny_text_encoder, batch_size=2).encode(texts),
        TextEncoder(tiny_text_encoder, batch_size=64).encode(texts),
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "names, kwargs, message",
    [
        ([], {}, "at least one class name"),
        (["cat", "cat"], {}, "unique; repeated: \\['cat'\\]"),
        (["cat"], {"templates": ["a photo"]}, "needs a '\\{\\}'"),
        (["cat", "dog"], {"descriptions": ["x"]}, "Got 1 descriptions for 2 class names"),
    ],
)
def test_bad_vocabularies_are_explained(names, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassTexts.build(names, **kwargs)


def test_semantic_matrices(vsenet, pixel_batch):
    embeddings = vsenet.normalized_class_embeddings()
    centres = vsenet.class_centres()
    torch.testing.assert_close(centres.mean(0), torch.zeros(centres.shape[1]), atol=1e-6, rtol=0)

    distances = vsenet.class_distances()
    torch.testing.assert_close(distances, distances.T)
    torch.testing.assert_close(distances.diagonal(), torch.zeros(len(CLASS_NAMES)), atol=1e-5, rtol=0)
    assert distances[0, 1] == pytest.approx(float((embeddings[0] - embeddings[1]).pow(2).sum()), rel=1e-4)

    similarity = vsenet.class_similarity(gamma=2.0)
    torch.testing.assert_close(similarity.sum(0), torch.ones(len(CLASS_NAMES)))
    expected = torch.exp(-2.0 * distances[:, 1]) / torch.exp(-2.0 * distances[:, 1]).sum()
    torch.testing.assert_close(similarity[:, 1], expected)
    assert int(similarity[:, 1].argmax()) == 1  # a class is most similar to itself
    # A larger gamma sharpens S towards the identity.
    assert vsenet.class_similarity(gamma=50.0).diagonal().min() > similarity.diagonal().min()

    output = vsenet(pixel_batch)
    association = vsenet.association(output.image_embeds)
    assert association.shape == (4, len(CLASS_NAMES))
    assert association.abs().max() <= 1 + 1e-6
    torch.testing.assert_close(output.semantic_logits, vsenet.logit_scale_value() * association, atol=1e-5, rtol=1e-5)
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
        model = visnet_hf.create_model(
            "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, objective=objective
        )
        assert set(model(pixel_batch, labels=labels).loss_terms) == terms


def test_align_with_no_structure_is_cross_entropy_and_structure_changes_it(vsenet, pixel_batch):
    labels = torch.tensor([0, 1, 2, 3])
    vsenet.config.objective = "align"
    vsenet.config.weight_reg = 0.0
    vsenet.config.structure_weight = 0.0
    output = vsenet(pixel_batch, labels=labels)
    torch.testing.assert_close(output.loss, F.cross_entropy(output.semantic_logits, labels))
    vsenet.config.structure_weight = 0.5
    similarity = vsenet.class_similarity()
    targets = 0.5 * F.one_hot(labels, 4).float() + 0.5 * similarity[:, labels].T
    torch.testing.assert_close(
        vsenet(pixel_batch, labels=labels).loss, -(targets * output.semantic_logits.log_softmax(-1)).sum(-1).mean()
    )


def test_temperature_is_learnable_and_clamped(vsenet, pixel_batch):
    assert vsenet.logit_scale.requires_grad
    assert vsenet.logit_scale_value().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        vsenet.logit_scale.fill_(10.0)
    assert vsenet.logit_scale_value().item() == pytest.approx(1 / vsenet.config.min_temperature)


def test_set_classes_switches_labels_and_predictions_follow_names(vsenet, pixel_batch, tmp_path):
    vsenet.config.zero_shot_head = "semantic"  # scores a reordered vocabulary exactly as the trained one
    before = vsenet(pixel_batch).logits
    reordered = list(reversed(CLASS_NAMES))
    vsenet.set_classes(reordered)
    assert vsenet.config.id2label == dict(enumerate(reordered))
    after = vsenet(pixel_batch).logits
    # The same name gets the same score wherever it stands in the vocabulary.
    torch.testing.assert_close(after, before.flip(-1), atol=1e-5, rtol=1e-5)

    new_names = ["zebra", "ox", "hippopotamus"]
    vsenet.set_classes(new_names)
    assert vsenet(pixel_batch).logits.shape == (4, 3)
    assert vsenet.config.trained_class_names == CLASS_NAMES
    vsenet.save_pretrained(tmp_path)
    classifier = pipeline("image-classification", model=str(tmp_path))
    assert {r["label"] for r in classifier(generated_images(1)[0], top_k=3)} == set(new_names)


def test_set_classes_with_a_wrong_width_says_why(vsenet):
    with pytest.raises(ValueError, match="do not fit this model"):
        vsenet.set_classes(["a", "b"], class_embeddings=torch.randn(2, 7))


def test_softmax_head_takes_part_only_in_the_trained_vocabulary(tiny_text_encoder, pixel_batch):
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, head="both"
    ).eval()
    output = model(pixel_batch)
    weight = model.config.softmax_weight
    mixed = (1 - weight) * output.semantic_logits.log_softmax(-1) + weight * output.softmax_logits.log_softmax(-1)
    torch.testing.assert_close(output.logits, mixed)
    model.set_classes(CLASS_NAMES + ["zebra"])
    model.config.zero_shot_head = "semantic"
    output = model(pixel_batch)
    assert output.softmax_logits is None
    torch.testing.assert_close(output.logits, output.semantic_logits)


def _conse_by_hand(model, trained_logits, top_k):
    """ConSE as Norouzi et al. write it: the top-k trained classes' embeddings averaged by probability."""
    probabilities = trained_logits.softmax(-1)
    top = probabilities.topk(top_k)
    trained = model.trained_class_embeddings
    mixed = torch.stack([(p[:, None] * trained[i]).sum(0) for p, i in zip(top.values, top.indices)])
    return model.logit_scale_value() * F.normalize(mixed, dim=-1) @ model.normalized_class_embeddings().T


@pytest.mark.parametrize("head", ["semantic", "softmax", "both"])
def test_conse_zero_shot_head_averages_the_trained_prediction(tiny_text_encoder, pixel_batch, tmp_path, head):
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, head=head, conse_top_k=2
    ).eval()
    with torch.no_grad():
        trained = model(pixel_batch)  # in the trained vocabulary, logits are the prediction ConSE averages
        trained_embeddings = model.class_embeddings.clone()
        new_names = ["zebra", "ox", "hippopotamus"]
        model.set_classes(new_names)
        torch.testing.assert_close(model.trained_class_embeddings, trained_embeddings)

        model.config.zero_shot_head = "conse"
        conse = model(pixel_batch)
        expected = _conse_by_hand(model, trained.logits.float(), top_k=2)
        torch.testing.assert_close(conse.logits, expected, atol=1e-5, rtol=1e-5)

        model.config.zero_shot_head = "both"
        both = model(pixel_batch)
        torch.testing.assert_close(both.logits, both.semantic_logits + expected, atol=1e-5, rtol=1e-5)

        # The trained embeddings travel with the checkpoint, so a saved zero-shot model scores the same.
        model.save_pretrained(tmp_path)
        reloaded = VSENetForImageClassification.from_pretrained(tmp_path).eval()
        assert reloaded.config.zero_shot_head == "both" and reloaded.config.class_names == new_names
        torch.testing.assert_close(reloaded(pixel_batch).logits, both.logits, atol=1e-5, rtol=1e-5)


def test_conse_with_one_class_names_the_trained_prediction(tiny_text_encoder, pixel_batch):
    """With top-1, ConSE's vector is the predicted trained class's own embedding, so among names that
    include the trained ones (in any order) it picks the name the trained vocabulary predicts."""
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "vsenet_resnet18",
        class_names=CLASS_NAMES,
        text_encoder=tiny_text_encoder,
        image_size=32,
        zero_shot_head="conse",
        conse_top_k=1,
    ).eval()
    with torch.no_grad():
        predicted = [CLASS_NAMES[i] for i in model(pixel_batch).logits.argmax(-1)]
        names = ["zebra", *reversed(CLASS_NAMES), "ox"]
        model.set_classes(names)
        assert [names[i] for i in model(pixel_batch).logits.argmax(-1)] == predicted


def test_zero_shot_head_options_are_checked(tiny_text_encoder):
    with pytest.raises(
        ValueError,
        match=r"zero_shot_head: expected one of \['semantic', 'conse', 'both'\], got 'clip'\n  - conse_top_k=0 must be >= 1",
    ):
        visnet_hf.create_model(
            "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, zero_shot_head="clip", conse_top_k=0
        )


def test_calibration_lowers_trained_classes_and_is_fitted(vsenet):
    images = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mean_embed = vsenet(images).image_embeds.mean(0)
    # Like a trained model, favour trained names: pull their embeddings towards where images land.
    embeddings = torch.randn(6, vsenet.config.embedding_dim, generator=torch.Generator().manual_seed(2))
    embeddings[:4] = F.normalize(embeddings[:4], dim=-1) + 3 * mean_embed
    vsenet.set_classes(CLASS_NAMES + ["zebra", "ox"], class_embeddings=embeddings)
    with torch.no_grad():
        scores = vsenet(images).logits  # uncalibrated: config.calibration is still 0
    seen = torch.tensor([True] * 4 + [False] * 2)
    # Ground truth that only a calibrated model gets right: predictions after an offset of `true_offset`.
    gaps = (scores[:, seen].max(1).values - scores[:, ~seen].max(1).values).sort().values
    true_offset = float(gaps[3 * len(gaps) // 4])
    assert true_offset > 0, "the fixture's random model should favour trained names for some images"
    labels = (scores - true_offset * seen.float()).argmax(1)

    vsenet.config.calibration = 0.0
    uncalibrated_unseen = (~seen[vsenet(images).logits.argmax(1)]).sum()
    result = vsenet.fit_calibration([(images[:32], labels[:32]), (images[32:], labels[32:])])
    assert result["seen_accuracy"] == 1.0 and result["unseen_accuracy"] == 1.0
    assert vsenet.config.calibration == result["calibration"] > 0
    predictions = vsenet(images).logits.argmax(1)
    assert torch.equal(predictions, labels)
    assert (~seen[predictions]).sum() > uncalibrated_unseen


def test_fit_calibration_needs_a_mixed_vocabulary(vsenet):
    with pytest.raises(ValueError, match="mixes trained and new class names"):
        vsenet.fit_calibration([])


@pytest.mark.slow
def test_minilm_and_real_images(minilm_path, cifar10_sample, tmp_path):
    """The real text encoder and real CIFAR-10 images, through the Auto classes and a pipeline."""
    images, labels, names = cifar10_sample
    model = visnet_hf.create_model("vsenet_resnet18", class_names=names, text_encoder=minilm_path, image_size=32)
    assert model.config.embedding_dim == 384
    distances = model.class_distances()
    cat, dog, truck = names.index("cat"), names.index("dog"), names.index("truck")
    automobile = names.index("automobile")
    assert distances[cat, dog] < distances[cat, truck]
    assert distances[truck, automobile] < distances[truck, cat]

    processor = model.image_processor()
    batch = processor(images[:16], return_tensors="pt")
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
    classifier = pipeline("image-classification", model=str(tmp_path))
    predictions = classifier(images[:4])
    assert all(p[0]["label"] in names for p in predictions)
    reloaded = VSENetForImageClassification.from_pretrained(tmp_path)
    reloaded.set_classes(["cat", "tabby cat", "lorry"])
    assert reloaded.config.id2label[2] == "lorry"
