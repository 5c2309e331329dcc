"""What a text encoder reads for a vocabulary: templates (data), synonyms, descriptions and their weights."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from visnet_hf.errors import ConfigError
from visnet_hf.text import ClassTexts, TextEncoder, resolve_templates, template_sets


def test_template_sets_are_data_with_clips_ensembles():
    sets = template_sets()
    assert set(sets) == {"photo", "name", "clip7", "clip80"}
    assert len(sets["clip80"]) == len(set(sets["clip80"])) == 80 and all("{}" in t for t in sets["clip80"])
    assert set(sets["clip7"]) <= set(sets["clip80"]) and len(sets["clip7"]) == 7
    assert resolve_templates(None) == ("a photo of a {}.",) == sets["photo"]
    assert resolve_templates("clip7") == sets["clip7"] and resolve_templates("a {} here") == ("a {} here",)
    with pytest.raises(ConfigError, match=r"Unknown template set 'clip8'. Did you mean 'clip80' or 'clip7'"):
        resolve_templates("clip8")


def test_synonyms_and_averaging_weights(tiny_text_encoder):
    texts = ClassTexts.build(["cat"], templates=["a {}.", "the {}."], synonyms=[["puss", "cat"]], descriptions=[["small"]])
    assert list(texts.groups(0)) == [["a cat.", "the cat."], ["a puss.", "the puss."], ["cat: small"]]
    per_text = dict(texts.prompts()[0])
    assert per_text["a cat."] == pytest.approx(1 / 5) and per_text["cat: small"] == pytest.approx(1 / 5)
    by_name = dict(replace(texts, average="names").prompts()[0])
    assert by_name["a cat."] == pytest.approx(1 / 6) and by_name["cat: small"] == pytest.approx(1 / 3)
    encoder = TextEncoder(tiny_text_encoder)
    expected = F.normalize(sum(weight * encoder.encode([text])[0].double() for text, weight in by_name.items()), dim=0)
    torch.testing.assert_close(encoder.embed_classes(replace(texts, average="names"))[0].double(), expected, atol=1e-6, rtol=0)


def test_class_embeddings_average_templates_and_descriptions(tiny_text_encoder):
    encoder = TextEncoder(tiny_text_encoder)
    embedded = encoder.embed_classes(ClassTexts.build(["cat", "dog"], templates=["a photo of a {}.", "the {}."]))
    by_hand = F.normalize(encoder.encode(["a photo of a cat.", "the cat."]).double().mean(0), dim=0)
    torch.testing.assert_close(embedded[0].double(), by_hand, atol=1e-6, rtol=0)
    described = encoder.embed_classes(ClassTexts.build(["cat", "dog"], descriptions=["a small pet", None]))
    assert not torch.allclose(described[0], encoder.embed_classes(ClassTexts.build(["cat", "dog"]))[0], atol=1e-3)
    torch.testing.assert_close(described.norm(dim=-1), torch.ones(2))


@pytest.mark.parametrize(
    ("names", "kwargs", "message"),
    [
        ([], {}, "at least one class name"),
        (["cat", "cat"], {}, "unique; repeated: \\['cat'\\]"),
        (["cat"], {"templates": ["a photo"]}, "needs a '\\{\\}'"),
        (["cat", "dog"], {"descriptions": ["x"]}, "Got 1 descriptions for 2 class names"),
        (["cat"], {"average": "words"}, "text_average='words' is not one of"),
    ],
)
def test_bad_vocabularies_are_explained(names, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassTexts.build(names, **kwargs)


def test_the_encoder_reads_folder_style_names_as_words():
    """A class folder's name as the text encoder reads it: a WordNet id (ImageNet's ``n01443537``) as its name,
    underscores as spaces; the class keeps the name it was given."""
    texts = ClassTexts.build(["n01443537", "golden_retriever", "n99999999"], descriptions=[["a fish"], None, None])
    assert texts.names == ("n01443537", "golden_retriever", "n99999999")
    assert texts.groups(0) == [["a photo of a goldfish."], ["goldfish: a fish"]]
    assert texts.groups(1) == [["a photo of a golden retriever."]]
    assert texts.groups(2) == [["a photo of a n99999999."]]  # no such WordNet id: read as it is
    # Stanford Dogs' and CUB-200's folders: the id or the class number before the name is left out
    others = ClassTexts.build(["n02085782-Japanese_spaniel", "001.Black_footed_Albatross", "3.5 inch floppy"])
    assert [others.groups(i)[0][0] for i in range(3)] == [
        "a photo of a Japanese spaniel.",
        "a photo of a Black footed Albatross.",
        "a photo of a 3.5 inch floppy.",
    ]
