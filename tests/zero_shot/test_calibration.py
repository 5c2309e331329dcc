"""The generalised zero-shot offset: fitted in one place (fit_offset), on images of trained and new classes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import visnet_hf
from tests.helpers import CLASS_NAMES
from visnet_hf.zero_shot import apply_offset, best_offset, fit_offset


@pytest.fixture()
def vsenet(tiny_text_encoder):
    torch.manual_seed(0)
    return visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, head="semantic"
    ).eval()


def test_best_offset_maximises_the_harmonic_mean():
    seen = torch.tensor([True, True, False])
    # Two images of trained classes (0, 1) and two of the new class (2); the new class loses by 1 and 3 unless lowered.
    scores = torch.tensor([[5.0, 1.0, 0.0], [1.0, 5.0, 0.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]])
    labels = torch.tensor([0, 1, 2, 2])
    fitted = best_offset(scores, labels, seen)
    assert (fitted["seen_accuracy"], fitted["unseen_accuracy"], fitted["images"]) == (1.0, 1.0, 4)
    assert 3.0 < fitted["calibration"] < 4.0  # past both gaps, below the trained images' margins
    assert apply_offset(scores, seen, 2.0)[2].argmax() == 2
    with pytest.raises(ValueError, match="both trained and new classes"):
        best_offset(scores[:2], labels[:2], seen)


def test_fit_offset_recovers_the_offset_that_makes_the_labels(vsenet):
    images = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mean_embed = vsenet(images).image_embeds.mean(0)
    # Like a trained model, favour trained names: pull their embeddings towards where images land.
    embeddings = torch.randn(6, vsenet.config.embedding_dim, generator=torch.Generator().manual_seed(2))
    embeddings[:4] = F.normalize(embeddings[:4], dim=-1) + 3 * mean_embed
    vocabulary = vsenet.vocabulary_for([*CLASS_NAMES, "zebra", "ox"], class_embeddings=embeddings)
    with torch.no_grad():
        scores = vsenet(images, vocabulary=vocabulary).logits  # uncalibrated: the offset is still 0
    seen = vocabulary.trained
    # Ground truth that only a calibrated model gets right: predictions after an offset of `true_offset`.
    gaps = (scores[:, seen].max(1).values - scores[:, ~seen].max(1).values).sort().values
    true_offset = float(gaps[3 * len(gaps) // 4])
    assert true_offset > 0, "the fixture's random model should favour trained names for some images"
    labels = (scores - true_offset * seen.float()).argmax(1)
    batches = [(images[:32], labels[:32]), {"pixel_values": images[32:], "labels": labels[32:]}]
    result = fit_offset(vsenet, batches, vocabulary)
    assert result["seen_accuracy"] == 1.0 and result["unseen_accuracy"] == 1.0 and result["images"] == 64
    assert vsenet.config.zero_shot_config.calibration == 0.0  # fitting changes nothing; keeping it is the caller's
    settings = vsenet.config.zero_shot_config.updated(calibration=result["calibration"])
    with torch.no_grad():
        predictions = vsenet(images, vocabulary=vocabulary, zero_shot_config=settings).logits.argmax(1)
    assert torch.equal(predictions, labels) and (~seen[predictions]).sum() > (~seen[scores.argmax(1)]).sum()


def test_fit_offset_needs_a_mixed_vocabulary(vsenet):
    with pytest.raises(ValueError, match="mixes trained and new class names"):
        fit_offset(vsenet, [], vsenet.vocabulary_for(["zebra", "ox"]))
