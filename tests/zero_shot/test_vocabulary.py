"""The vocabulary: a value built with a text encoder (never the model), handed to the model per call."""

from __future__ import annotations

import pytest
import torch

import visnet_hf
from tests.helpers import CLASS_NAMES
from visnet_hf.text import ClassTexts, TextEncoder
from visnet_hf.wordnet import synset_ids
from visnet_hf.zero_shot import Vocabulary, build_vocabulary, gloss_matrix


def test_the_builder_embeds_with_an_encoder_and_knows_the_trained_names(tiny_text_encoder):
    encoder = TextEncoder(tiny_text_encoder)
    vocabulary = build_vocabulary(encoder, ["zebra", "cat"], trained_names=CLASS_NAMES, templates="clip7")
    assert isinstance(vocabulary, Vocabulary) and vocabulary.names == ("zebra", "cat") and len(vocabulary) == 2
    assert vocabulary.trained.tolist() == [False, True] and vocabulary.mixes_trained_and_new
    assert not vocabulary.is_trained_vocabulary
    torch.testing.assert_close(
        vocabulary.embeddings, encoder.embed_classes(ClassTexts.build(["zebra", "cat"], templates="clip7"))
    )
    assert build_vocabulary(encoder, CLASS_NAMES, trained_names=CLASS_NAMES).is_trained_vocabulary
    assert not build_vocabulary(encoder, CLASS_NAMES[::-1], trained_names=CLASS_NAMES).is_trained_vocabulary


def test_given_embeddings_need_no_encoder_and_are_checked():
    embeddings = torch.randn(2, 8) * 3
    vocabulary = build_vocabulary(None, ["a", "b"], embeddings=embeddings, width=8)
    torch.testing.assert_close(vocabulary.embeddings.norm(dim=-1), torch.ones(2))
    with pytest.raises(ValueError, match=r"shape \(2, 8\) do not fit this model, which expects \(2, 16\)"):
        build_vocabulary(None, ["a", "b"], embeddings=embeddings, width=16)
    with pytest.raises(ValueError, match="needs a text encoder"):
        build_vocabulary(None, ["a", "b"])
    with pytest.raises(ValueError, match="1 synsets for 2 class names"):
        build_vocabulary(None, ["a", "b"], embeddings=embeddings, synsets=["n02121620"])


def test_the_wordnet_sense_is_the_given_one_else_guessed_and_described(tiny_text_encoder):
    encoder = TextEncoder(tiny_text_encoder)
    given = build_vocabulary(encoder, ["crane", "cat"], synsets=["n03126707", None], describe="wordnet")  # the machine
    guessed = build_vocabulary(encoder, ["crane", "cat"], describe="wordnet")  # the bird
    assert given.synsets == ("n03126707", synset_ids(["cat"])[0]) and guessed.synsets == synset_ids(["crane", "cat"])
    assert given.synsets[0] != guessed.synsets[0]
    assert "lifts and moves heavy objects" in given.texts.descriptions[0][0]
    assert "long-necked wading bird" in guessed.texts.descriptions[0][0]
    assert not torch.allclose(given.embeddings[0], guessed.embeddings[0], atol=1e-4)
    torch.testing.assert_close(given.embeddings[1], guessed.embeddings[1])


def test_glosses_are_each_senses_definition_embedded_and_zero_where_unknown(tiny_text_encoder):
    encoder = TextEncoder(tiny_text_encoder)
    vocabulary = build_vocabulary(encoder, ["cat", "qwzx"], embed_glosses=True)
    assert vocabulary.synsets[1] is None and vocabulary.glosses.shape == (2, 32)
    assert vocabulary.glosses[1].abs().sum() == 0 and vocabulary.glosses[0].norm() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(vocabulary.glosses, gloss_matrix(encoder, vocabulary.synsets, 32))
    assert build_vocabulary(encoder, ["cat"]).glosses is None  # only when asked for


def test_the_model_builds_with_its_own_encoder_and_settings(tiny_text_encoder, pixel_batch):
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, templates="clip7"
    ).eval()
    vocabulary = model.vocabulary_for(["zebra", "ox"])
    expected = build_vocabulary(TextEncoder(tiny_text_encoder), ["zebra", "ox"], trained_names=CLASS_NAMES, templates="clip7")
    torch.testing.assert_close(vocabulary.embeddings, expected.embeddings)
    assert model.vocabulary.is_trained_vocabulary and model.vocabulary.names == tuple(CLASS_NAMES)
    with torch.no_grad():
        assert model(pixel_batch, vocabulary=vocabulary).logits.shape == (4, 2)
    with pytest.raises(TypeError, match=r"takes a text encoder, not a model; .* use model.vocabulary_for\(names\)"):
        build_vocabulary(model, ["zebra"])


@pytest.mark.parametrize(
    ("names", "said"),
    [
        ("zebra", r"come as a list; got the one string 'zebra': give \['zebra'\]"),
        ([], "needs at least one class name; the list of names is empty"),
        (["zebra", None], r"non-empty string; got None \(position 1\)"),
        (["zebra", " "], r"non-empty string; got ' ' \(position 1\)"),
        (["zebra", "ox", "zebra"], r"must be unique; repeated: \['zebra'\]"),
    ],
)
def test_names_that_are_not_a_list_of_names_are_said_before_anything_is_embedded(tiny_text_encoder, names, said):
    model = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32)
    for call in (model.vocabulary_for, model.set_classes):
        with pytest.raises(visnet_hf.errors.ConfigError, match=said):
            call(names)
    assert model.config.class_names == CLASS_NAMES  # unchanged
