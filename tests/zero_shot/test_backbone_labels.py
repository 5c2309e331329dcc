"""The backbone's own pretrained classifier as a names' expert (``zero_shot_config.backbone_label_weight``)."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

import visnet_hf
from tests.helpers import write_config
from visnet_hf import VSENetForImageClassification
from visnet_hf.errors import ConfigError
from visnet_hf.hub.cards import write_card
from visnet_hf.training import load_config, train
from visnet_hf.training.config import config_from_dict
from visnet_hf.wordnet import hierarchy_similarity, wu_palmer
from visnet_hf.zero_shot.backbone_labels import pretrained_labels

NAMES = ["goldfish", "tabby cat", "school bus"]
NEW = ["tench", "zebra", "airliner"]
GOLDFISH = 1  # ImageNet-1k's label 1, n01443537


@pytest.fixture(scope="module")
def pretrained_file(tmp_path_factory) -> str:
    """A tiny ImageNet-1k timm backbone's weights, as a pretrained file (the classifier with them)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("backbone") / "test_efficientnet.safetensors"
    save_file(timm.create_model("test_efficientnet", pretrained=False).state_dict(), str(path))
    return str(path)


def create(text_encoder: str, pretrained_file: str, weight: float = 2.0, **kwargs) -> VSENetForImageClassification:
    torch.manual_seed(0)
    kwargs.setdefault("class_names", NAMES)
    return visnet_hf.create_model(
        "vsenet_test_efficientnet",
        text_encoder=text_encoder,
        image_size=32,
        pretrained=True,
        pretrained_cfg_overlay={"file": pretrained_file},
        zero_shot_config={"backbone_label_weight": weight, "score_temperature": 1.0, **kwargs.pop("zero_shot_config", {})},
        **kwargs,
    ).eval()


def test_the_model_keeps_the_pretrained_classifier_and_its_labels(tiny_text_encoder, pretrained_file, pixel_batch, tmp_path):
    model = create(tiny_text_encoder, pretrained_file)
    backbone = timm.create_model("test_efficientnet", pretrained=False)
    backbone.load_state_dict(load_file(pretrained_file))
    labels = model.zero_shot.backbone_labels
    torch.testing.assert_close(labels.weight, backbone.get_classifier().weight)
    torch.testing.assert_close(labels.bias, backbone.get_classifier().bias)
    assert model.backbone.num_classes == 0  # the model's backbone gives pooled features, as without it
    names = model.config.backbone_labels
    assert len(names) == len(set(names)) == 1000 and names[GOLDFISH] == "goldfish"
    assert model.config.backbone_label_synsets[GOLDFISH] == "n01443537"
    assert {"crane (n02012849)", "crane (n03126707)", "maillot, tank suit"} <= set(names)  # first names given twice
    torch.testing.assert_close(labels.embeddings.norm(dim=-1), torch.ones(1000))
    model.set_classes(NEW)
    with torch.no_grad():
        scores = model(pixel_batch).logits
    model.save_pretrained(tmp_path)
    reloaded = VSENetForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.backbone_labels == names
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_batch).logits, scores)
    card = write_card(tmp_path).read_text()  # the model card says what scores new names
    assert "plus 2.0 times ConSE over the backbone's own 1000 pretrained labels" in card


def test_the_expert_adds_conse_over_the_labels_at_its_weight(tiny_text_encoder, pretrained_file, pixel_batch):
    model = create(tiny_text_encoder, pretrained_file)
    new = model.vocabulary_for(NEW)
    settings = model.config.zero_shot_config
    with torch.no_grad():
        at = {
            w: model(pixel_batch, vocabulary=new, zero_shot_config=settings.updated(backbone_label_weight=w)).logits
            for w in (1.0, 3.0)
        }
        without = model(pixel_batch, vocabulary=new, zero_shot_config=settings.updated(backbone_label_weight=0.0)).logits
    expert = at[1.0] - without
    assert expert.abs().max() > 1e-3  # it scores the names
    torch.testing.assert_close(at[3.0] - without, 3 * expert, atol=1e-4, rtol=1e-4)
    # A cosine at the model's scale, per image and name.
    assert expert.abs().max() <= model.logit_scale_value() + 1e-4


def test_a_name_that_is_a_label_is_scored_without_it(tiny_text_encoder, pretrained_file, pixel_batch):
    """The goldfish label's own logit moves the expert's scores of names beside it, and never those of a vocabulary
    that names the goldfish: by name, or by its WordNet id under another name."""
    model = create(tiny_text_encoder, pretrained_file, conse_top_k=1000)
    settings = model.config.zero_shot_config.updated(backbone_label_weight=1.0)

    def expert(vocabulary, goldfish_bias: float) -> torch.Tensor:
        with torch.no_grad():
            model.zero_shot.backbone_labels.bias[GOLDFISH] = goldfish_bias
            scores = model(pixel_batch, vocabulary=vocabulary, zero_shot_config=settings).logits
            return (
                scores
                - model(pixel_batch, vocabulary=vocabulary, zero_shot_config=settings.updated(backbone_label_weight=0.0)).logits
            )

    without_goldfish = model.vocabulary_for(["zebra", "airliner"])
    assert not torch.allclose(expert(without_goldfish, 0.0), expert(without_goldfish, 30.0), atol=1e-3)
    for vocabulary in (
        model.vocabulary_for(["goldfish", "zebra", "airliner"]),
        model.vocabulary_for(["Goldfish", "zebra"]),
        model.vocabulary_for(["orange fish", "zebra"], synsets=["n01443537", None]),
    ):
        torch.testing.assert_close(expert(vocabulary, 0.0), expert(vocabulary, 30.0))
    labels = model.zero_shot.backbone_labels
    assert labels.own_labels(["GOLDFISH", "zebra", "my new class"], None) == [GOLDFISH, 340]
    assert labels.own_labels(["orange fish"], ["n01443537"]) == [GOLDFISH]


def test_the_mistakes_are_named(tiny_text_encoder, pretrained_file, pixel_batch):
    with pytest.raises(ConfigError, match="without pretrained weights.*pretrained=True"):
        visnet_hf.create_model(
            "vsenet_test_efficientnet",
            class_names=NAMES,
            text_encoder=tiny_text_encoder,
            zero_shot_config={"backbone_label_weight": 2.0},
        )
    for outputs in (10, 0):
        with pytest.raises(ConfigError, match=f"classifier of {outputs} outputs and no ImageNet labels"):
            pretrained_labels(timm.create_model("test_efficientnet", num_classes=outputs))
    with pytest.raises(ConfigError, match="backbone_label_weight=-1.0 must be >= 0"):
        create(tiny_text_encoder, pretrained_file, weight=-1.0)
    plain = create(tiny_text_encoder, pretrained_file, weight=0.0)
    assert plain.config.backbone_labels is None and plain.zero_shot.backbone_labels is None
    with pytest.raises(ConfigError, match="kept no backbone classifier"), torch.no_grad():
        settings = plain.config.zero_shot_config.updated(backbone_label_weight=1.0)
        plain(pixel_batch, vocabulary=plain.vocabulary_for(NEW), zero_shot_config=settings)
    training = {"model": {"name": "vsenet_test_efficientnet", "overrides": {"zero_shot_config": {"backbone_label_weight": 2.0}}}}
    with pytest.raises(ConfigError, match="optim.freeze: backbone"):
        config_from_dict(training, ["optim.freeze=none"])
    assert config_from_dict(training, ["optim.freeze=backbone"]).optim.freeze == "backbone"


def test_a_process_embeds_the_labels_once(tiny_text_encoder, pretrained_file, monkeypatch):
    """Folds and calibration create several models of one config: the labels' texts are embedded for the first only."""
    from visnet_hf.models.vsenet import modeling_vsenet

    calls = []
    build = modeling_vsenet.build_vocabulary
    monkeypatch.setattr(modeling_vsenet, "_LABEL_EMBEDDINGS", {})
    monkeypatch.setattr(
        modeling_vsenet, "build_vocabulary", lambda encoder, names, **kw: calls.append(len(names)) or build(encoder, names, **kw)
    )
    first = create(tiny_text_encoder, pretrained_file)
    second = create(tiny_text_encoder, pretrained_file, class_names=["zebra", "ox"])
    assert calls == [3, 1000, 2]  # the trained names each time, the labels once
    torch.testing.assert_close(first.zero_shot.backbone_labels.embeddings, second.zero_shot.backbone_labels.embeddings)
    create(tiny_text_encoder, pretrained_file, text_config={"templates": "clip7"})  # other texts: embedded again
    assert calls[-1] == 1000


def test_a_config_that_weighs_the_labels_trains_and_saves_them(tiny_parquet, tiny_text_encoder, pretrained_file, tmp_path):
    """As the shipped Tiny-ImageNet config runs: the backbone from a pretrained file, frozen, its features cached."""
    config = load_config(
        write_config(tmp_path, tiny_parquet, "vsenet_test_efficientnet", text_encoder=tiny_text_encoder),
        [
            f"model.pretrained_file={pretrained_file}",
            "model.overrides.zero_shot_config.backbone_label_weight=2.0",
            "optim.freeze=backbone",
            "data.cache_features=true",
            "stages.0.epochs=1",
        ],
    )
    trained = train(config)["model"]
    saved = VSENetForImageClassification.from_pretrained(tmp_path / "run" / "model").eval()
    assert saved.config.backbone_labels[GOLDFISH] == "goldfish"
    backbone = timm.create_model("test_efficientnet", pretrained=False)
    backbone.load_state_dict(load_file(pretrained_file))
    torch.testing.assert_close(saved.zero_shot.backbone_labels.weight, backbone.get_classifier().weight)
    torch.testing.assert_close(saved.backbone.state_dict()["conv_stem.weight"], backbone.state_dict()["conv_stem.weight"])
    new = saved.vocabulary_for(NEW)
    summed = saved.config.zero_shot_config.updated(score_temperature=1.0)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # the saved model scores new names with the labels' expert
        weighed = saved(images, vocabulary=new, zero_shot_config=summed).logits
        without = saved(images, vocabulary=new, zero_shot_config=summed.updated(backbone_label_weight=0.0)).logits
    assert (weighed - without).abs().max() > 1e-3
    assert trained.config.zero_shot_config.backbone_label_weight == 2.0


def test_a_name_whose_sense_is_known_borrows_from_its_relatives_in_wordnet(tiny_text_encoder, pretrained_file, pixel_batch):
    """``backbone_classifier_hierarchy`` (10 by default): the same name given the zebra's WordNet sense and given
    none. With it, the labels near the zebra in WordNet (the horses, the other hoofed mammals) lend most to its
    classifier; without it, or at 0, the text alone chooses."""
    model = create(tiny_text_encoder, pretrained_file, weight=0.0, zero_shot_config={"backbone_classifier_weight": 2.0})
    labels, settings = model.zero_shot.backbone_labels, model.config.zero_shot_config
    assert settings.backbone_classifier_hierarchy == 10.0
    known = model.vocabulary_for(["striped grazer"], synsets=["n02391049"])
    unknown = model.vocabulary_for(["striped grazer"])
    assert known.synsets == ("n02391049",) and unknown.synsets == (None,)
    relatives = torch.tensor([wu_palmer("n02391049", synset) >= 0.8 for synset in labels.synsets])
    masked = labels.own_labels(known.names, known.synsets)
    assert masked == [340]  # the zebra's own label lends nothing, to either
    with torch.no_grad():
        shares = {
            (key, hierarchy): labels.lenders(
                model.scored_embeddings(vocabulary.embeddings), masked, vocabulary.synsets, hierarchy
            )[0]
            for key, vocabulary in (("known", known), ("unknown", unknown))
            for hierarchy in (0.0, 10.0)
        }
        text_alone = (20 * model.scored_embeddings(unknown.embeddings) @ labels.embeddings.T).index_fill(
            -1, torch.tensor(masked), float("-inf")
        )
    for key in (("unknown", 0.0), ("unknown", 10.0), ("known", 0.0)):
        torch.testing.assert_close(shares[key], text_alone.softmax(-1)[0])
    known_shares = shares[("known", 10.0)]
    assert known_shares[340] == 0 and 1 < relatives.sum() < 20
    assert relatives[known_shares.topk(6).indices].all()  # the six labels it borrows most from are relatives
    assert known_shares[relatives].sum() > 5 * text_alone.softmax(-1)[0][relatives].sum()

    def scores(vocabulary, hierarchy: float) -> torch.Tensor:
        with torch.no_grad():
            return model(
                pixel_batch, vocabulary=vocabulary, zero_shot_config=settings.updated(backbone_classifier_hierarchy=hierarchy)
            ).logits

    pair = model.vocabulary_for(["striped grazer", "airliner"], synsets=["n02391049", None])
    assert not torch.allclose(scores(pair, 10.0), scores(pair, 0.0), atol=1e-4)  # the scorer reads the setting
    senseless = model.vocabulary_for(["striped grazer", "zorblat"])
    assert senseless.synsets == (None, None)
    torch.testing.assert_close(scores(senseless, 10.0), scores(senseless, 0.0))
    with pytest.raises(ConfigError, match="backbone_classifier_hierarchy=-1.0 must be >= 0"):
        visnet_hf.VSENetZeroShotConfig(backbone_classifier_hierarchy=-1.0)


def test_each_name_borrows_a_classifier_from_the_labels_its_text_resembles(
    tiny_text_encoder, pretrained_file, pixel_batch, tmp_path
):
    """``backbone_classifier_weight``: the labels' standardised logits mixed by the softmax over them of the name's
    text cosine x 20 plus its WordNet sense's Wu-Palmer similarity x 10, at the weight x scale / 10; a model created
    with it alone keeps the classifier; a name's own label lends nothing."""
    model = create(tiny_text_encoder, pretrained_file, weight=0.0, zero_shot_config={"backbone_classifier_weight": 2.0})
    labels = model.zero_shot.backbone_labels
    assert labels is not None and model.backbone.num_classes == 0
    settings = model.config.zero_shot_config
    model.save_pretrained(tmp_path)
    card = write_card(tmp_path).read_text()
    assert "plus 2.0 times a classifier for each name borrowed from the rows of the backbone's own 1000-label" in card
    assert "pretrained classifier whose labels' texts resemble it or whose WordNet senses are near its own" in card
    assert "ConSE over the backbone's own" not in card
    new = model.vocabulary_for(["zebra", "airliner"])

    def borrowed(vocabulary, weight: float = 2.0) -> torch.Tensor:
        with torch.no_grad():
            at = settings.updated(backbone_classifier_weight=weight)
            scores = model(pixel_batch, vocabulary=vocabulary, zero_shot_config=at).logits
            return (
                scores
                - model(pixel_batch, vocabulary=vocabulary, zero_shot_config=at.updated(backbone_classifier_weight=0.0)).logits
            )

    with torch.no_grad():
        _, features = model.backbone_features(pixel_batch)
        logits = features @ labels.weight.T + labels.bias
        others = ~torch.isin(torch.arange(1000), torch.tensor([340, 404]))  # the zebra's and the airliner's own labels
        kept = logits[:, others]
        standardised = (kept - kept.mean(-1, keepdim=True)) / kept.std(-1, keepdim=True)
        similarity = (model.scored_embeddings(new.embeddings) @ labels.embeddings.T)[:, others]
        assert new.synsets == ("n02391049", "n02690373")  # the zebra's and the airliner's senses
        hierarchy = hierarchy_similarity(new.synsets, tuple(model.config.backbone_label_synsets))[:, others]
        mix = 20 * similarity + settings.backbone_classifier_hierarchy * hierarchy  # 10: the default
        expected = 2.0 * model.logit_scale_value() / 10 * standardised @ mix.softmax(-1).T
    torch.testing.assert_close(borrowed(new), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(borrowed(new, 6.0), 3 * borrowed(new), atol=1e-4, rtol=1e-4)
    assert settings.names_weight() == settings.updated(backbone_classifier_weight=0.0).names_weight()  # not counted
    goldfish = model.vocabulary_for(["goldfish", "zebra"])
    before = borrowed(goldfish)
    with torch.no_grad():
        labels.bias[GOLDFISH] += 30.0  # the goldfish's own label: it lends nothing, to any name of that vocabulary
    torch.testing.assert_close(borrowed(goldfish), before)
    assert not torch.allclose(borrowed(new), expected, atol=1e-3)  # a vocabulary without it reads it
    with pytest.raises(ConfigError, match="backbone_classifier_weight=-1.0 must be >= 0"):
        visnet_hf.VSENetZeroShotConfig(backbone_classifier_weight=-1.0)
    training = {
        "model": {"name": "vsenet_test_efficientnet", "overrides": {"zero_shot_config": {"backbone_classifier_weight": 3}}}
    }
    with pytest.raises(ConfigError, match="backbone_classifier_weight reads the backbone's pretrained classifier"):
        config_from_dict(training, ["optim.freeze=none"])


def test_a_model_loaded_in_half_precision_scores_new_names_and_photos(tiny_text_encoder, pretrained_file, tmp_path):
    """``from_pretrained(..., dtype=torch.bfloat16)`` (or float16), as GPU inference loads a model: every expert's
    buffers come in half precision, and the names with photos are scored as in float32, to half precision's error."""
    model = create(
        tiny_text_encoder,
        pretrained_file,
        prototype_weight=1.0,
        zero_shot_config={"backbone_classifier_weight": 3.0, "score_temperature": 1.0},
    )
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(24, 3, 32, 32, generator=generator)
    model.fit_prototypes(
        [(model.image_processor()(list(images), do_rescale=False, return_tensors="pt")["pixel_values"], torch.arange(24) % 3)]
    )
    photos = {name: list((255 * torch.rand(3, 32, 32, 3, generator=generator)).byte().numpy()) for name in NEW}
    model.set_classes(NEW, examples=photos)
    model.save_pretrained(tmp_path)
    queries = model.image_processor()(photos["zebra"], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model(queries).logits
    for dtype in (torch.bfloat16, torch.float16):
        half = VSENetForImageClassification.from_pretrained(tmp_path, dtype=dtype).eval()
        assert half.zero_shot.backbone_labels.weight.dtype == dtype
        with torch.no_grad():
            logits = half(queries).logits  # float32 pixels, as an image processor gives them
        torch.testing.assert_close(logits.float(), expected, atol=0.05 * float(expected.abs().max()), rtol=0.0)
        half.save_pretrained(tmp_path / "half")  # saved in half precision: from_pretrained loads it so by default
        assert VSENetForImageClassification.from_pretrained(tmp_path / "half").dtype == dtype
