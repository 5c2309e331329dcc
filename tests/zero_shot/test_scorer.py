"""The zero-shot scorer: the cosine head, ConSE, and the offset on trained names, as settings of one call."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import visnet_hf
from tests.helpers import CLASS_NAMES
from visnet_hf import VSENetForImageClassification

NEW_NAMES = ["zebra", "ox", "hippopotamus"]


def create(text_encoder: str, **overrides) -> VSENetForImageClassification:
    torch.manual_seed(0)
    return visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=text_encoder, image_size=32, **overrides
    ).eval()


def conse_by_hand(model, trained_logits: torch.Tensor, classes: torch.Tensor, top_k: int) -> torch.Tensor:
    """ConSE as Norouzi et al. write it: the top-k trained classes' embeddings averaged by probability."""
    probabilities = trained_logits.softmax(-1)
    top = probabilities.topk(top_k)
    trained = model.trained_class_embeddings
    mixed = torch.stack([(p[:, None] * trained[i]).sum(0) for p, i in zip(top.values, top.indices)])
    return model.logit_scale_value() * F.normalize(mixed, dim=-1) @ classes.T


@pytest.mark.parametrize("head", ["semantic", "softmax", "both"])
def test_conse_averages_the_trained_prediction(tiny_text_encoder, pixel_batch, tmp_path, head):
    model = create(tiny_text_encoder, head=head, conse_top_k=2).double()  # float64: the hand computation takes other kernels
    pixels = pixel_batch.double()
    with torch.no_grad():
        trained = model(pixels)  # in the trained vocabulary, logits are the prediction ConSE averages
        new = model.vocabulary_for(NEW_NAMES)
        classes = F.normalize(new.embeddings.double(), dim=-1)
        conse = model(pixels, vocabulary=new, zero_shot_config=model.config.zero_shot_config.updated(head="conse"))
        expected = conse_by_hand(model, trained.logits, classes, top_k=2)
        torch.testing.assert_close(conse.logits, expected)
        both = model(pixels, vocabulary=new)  # the default head: both, the cosine logits plus ConSE, over two experts
        torch.testing.assert_close(both.logits, (both.semantic_logits + expected) / 2)
        semantic = model(pixels, vocabulary=new, zero_shot_config=model.config.zero_shot_config.updated(head="semantic"))
        torch.testing.assert_close(semantic.logits, semantic.semantic_logits)
        # The trained embeddings travel with the checkpoint, so a saved zero-shot model scores the same.
        model.set_classes(NEW_NAMES)
        model.save_pretrained(tmp_path)
        reloaded = VSENetForImageClassification.from_pretrained(tmp_path).eval().double()
        assert reloaded.config.class_names == NEW_NAMES and reloaded.config.zero_shot_config.head == "both"
        torch.testing.assert_close(reloaded(pixels).logits, both.logits)


def test_conse_with_one_class_names_the_trained_prediction(tiny_text_encoder, pixel_batch):
    """With top-1, ConSE's vector is the predicted trained class's own embedding, so among names that
    include the trained ones (in any order) it picks the name the trained vocabulary predicts."""
    model = create(tiny_text_encoder, zero_shot_head="conse", conse_top_k=1)
    with torch.no_grad():
        predicted = [CLASS_NAMES[i] for i in model(pixel_batch).logits.argmax(-1)]
        names = ["zebra", *reversed(CLASS_NAMES), "ox"]
        assert [names[i] for i in model(pixel_batch, vocabulary=model.vocabulary_for(names)).logits.argmax(-1)] == predicted


def test_the_offset_lowers_trained_names_in_a_mixed_vocabulary_only(tiny_text_encoder, pixel_batch):
    model = create(tiny_text_encoder, zero_shot_head="semantic", calibration=1.5)
    mixed, new = model.vocabulary_for(["zebra", *CLASS_NAMES]), model.vocabulary_for(NEW_NAMES)
    without = model.config.zero_shot_config.updated(calibration=0.0)
    with torch.no_grad():
        torch.testing.assert_close(
            model(pixel_batch, vocabulary=mixed).logits,
            model(pixel_batch, vocabulary=mixed, zero_shot_config=without).logits - 1.5 * mixed.trained.float(),
        )
        torch.testing.assert_close(  # nothing to lower among new names alone
            model(pixel_batch, vocabulary=new).logits, model(pixel_batch, vocabulary=new, zero_shot_config=without).logits
        )


def test_names_with_photos_take_their_own_offset(tiny_text_encoder, pixel_batch):
    """``example_calibration`` lowers the trained names beside names given with photos; ``calibration`` beside names
    alone, and beside photos when it is unset. Fitting an offset starts from neither."""
    from visnet_hf.zero_shot import Vocabulary
    from visnet_hf.zero_shot.few_shot import ExampleSet

    model = create(tiny_text_encoder, zero_shot_head="semantic", calibration=1.5)
    model.config.zero_shot_config.example_calibration = 4.0
    names = ["zebra", *CLASS_NAMES]
    mixed = model.vocabulary_for(names)
    photos = ExampleSet(torch.randn(len(names), model.config.num_features), torch.tensor([2.0] + [0.0] * len(CLASS_NAMES)))
    with_photos = Vocabulary.of(names, mixed.embeddings, model.config.trained_class_names, examples=photos)
    settings = model.config.zero_shot_config
    none = settings.without_offset()
    lowered = mixed.trained.float()
    # the offset acts on the sum of the experts, before the temperature: 1 (the semantic head) beside names alone,
    # 1 + 0.5 x sqrt(2) beside a name with two photos
    photos_temperature = 1 + 0.5 * 2**0.5
    with torch.no_grad():
        for vocabulary, offset, temperature in ((mixed, 1.5, 1.0), (with_photos, 4.0, photos_temperature)):
            torch.testing.assert_close(
                model(pixel_batch, vocabulary=vocabulary).logits,
                (model(pixel_batch, vocabulary=vocabulary, zero_shot_config=none).logits - offset * lowered) / temperature,
            )
        unset = settings.updated(calibration=1.5)
        unset.example_calibration = None
        torch.testing.assert_close(
            model(pixel_batch, vocabulary=with_photos, zero_shot_config=unset).logits,
            (model(pixel_batch, vocabulary=with_photos, zero_shot_config=none).logits - 1.5 * lowered) / photos_temperature,
        )


def test_the_scores_are_divided_by_a_temperature_that_grows_with_the_photos(tiny_text_encoder, pixel_batch, tmp_path):
    """The scores of names the model did not train on are a sum of experts; divided by the experts' weights (the
    photos' counted half, per square root of their typical number) their softmax reads as a chance of being right.
    No ranking changes; a temperature given is used as it is and saved with the model."""
    from visnet_hf.errors import ConfigError
    from visnet_hf.models.vsenet import VSENetZeroShotConfig
    from visnet_hf.zero_shot import Vocabulary
    from visnet_hf.zero_shot.few_shot import ExampleSet, typical_photos

    shipped = VSENetZeroShotConfig(head="both", prototype_weight=2.0)
    assert shipped.temperature_for() == 4.0  # names alone: the semantic cosine, ConSE, the prototypes at 2
    assert shipped.temperature_for(typical_photos=4) == 4.0 + 0.5 * 4.0 * 2
    assert shipped.updated(example_weight=2.0).temperature_for(typical_photos=4) == 4.0 + 0.5 * 2.0 * 2
    assert shipped.updated(score_temperature=3.0).temperature_for(typical_photos=16) == 3.0
    assert shipped.without_offset().temperature_for(typical_photos=16) == 1.0  # what an offset is fitted on
    with pytest.raises(ConfigError, match="score_temperature"):
        VSENetZeroShotConfig(score_temperature=0.0)
    counts = torch.tensor([4.0, 0.0, 2.0])
    assert typical_photos(ExampleSet(torch.zeros(3, 5), counts)) == 3.0 and typical_photos(None) == 0.0

    model = create(tiny_text_encoder)  # the defaults: the semantic cosine and ConSE, 2 experts
    photos = ExampleSet(torch.randn(3, model.config.num_features), counts)
    names = model.vocabulary_for(NEW_NAMES)
    with_photos = Vocabulary.of(NEW_NAMES, names.embeddings, model.config.trained_class_names, examples=photos)
    summed = model.config.zero_shot_config.updated(score_temperature=1.0)
    with torch.no_grad():
        trained = model(pixel_batch)
        for vocabulary, temperature in ((names, 2.0), (with_photos, 2.0 + 0.5 * 2.0 * 3**0.5)):
            logits = model(pixel_batch, vocabulary=vocabulary).logits
            raw = model(pixel_batch, vocabulary=vocabulary, zero_shot_config=summed).logits
            torch.testing.assert_close(logits, raw / temperature)
            assert torch.equal(logits.argmax(-1), raw.argmax(-1))
        # the trained vocabulary is the trained heads' prediction, as it was: no temperature
        torch.testing.assert_close(trained.logits, model(pixel_batch, zero_shot_config=summed).logits)
    model.set_classes(NEW_NAMES)
    model.config.zero_shot_config.score_temperature = 2.5
    model.save_pretrained(tmp_path)
    reloaded = VSENetForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.zero_shot_config.score_temperature == 2.5
    with torch.no_grad():
        raw = reloaded(pixel_batch, zero_shot_config=summed).logits
        torch.testing.assert_close(reloaded(pixel_batch).logits, raw / 2.5)
