"""Optimizer groups, schedules and freezing, as the training config sets them."""

from __future__ import annotations

import itertools

import pytest
import torch

import visnet_hf
from visnet_hf.training.config import OptimConfig
from visnet_hf.training.optim import build_optimizer, build_schedule, freeze, train_mode


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return visnet_hf.create_model("frn_resnet18", num_labels=3, image_size=32)


def test_backbone_gets_its_own_learning_rate_and_norms_no_decay(model):
    optimizer = build_optimizer(model, OptimConfig(optimizer="sgd", lr=0.1, backbone_lr=0.01, weight_decay=0.5))
    by_param = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    assert by_param[id(model.backbone.conv1.weight)]["lr"] == 0.01
    assert by_param[id(model.classifier.weight)]["lr"] == 0.1
    assert by_param[id(model.classifier.bias)]["weight_decay"] == 0.0
    assert by_param[id(model.classifier.weight)]["weight_decay"] == 0.5
    assert isinstance(build_optimizer(model, OptimConfig()), torch.optim.AdamW)


def test_freezing_modes(model):
    freeze(model, OptimConfig(freeze="backbone"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("backbone.") for n in trainable)
    freeze(model, OptimConfig(freeze="partial", trainable_prefixes=["backbone.layer4", "classifier"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith(("backbone.layer4", "classifier")) for n in trainable) and "classifier.weight" in trainable
    with pytest.raises(ValueError, match="match no parameter"):
        freeze(model, OptimConfig(freeze="partial", trainable_prefixes=["nothing"]))
    with pytest.raises(ValueError, match="needs trainable_prefixes"):
        OptimConfig(freeze="partial")


def test_a_frozen_backbone_keeps_its_batch_norm_statistics(model):
    """A linear probe: while the heads train, the frozen backbone's features equal its eval-mode features."""
    freeze(model, OptimConfig(freeze="backbone"))
    before = {n: b.clone() for n, b in model.backbone.named_buffers()}
    images, labels = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2] * 2 + [0, 1])
    optimizer = build_optimizer(model, OptimConfig(lr=0.1))
    train_mode(model)
    assert model.training and model.classifier.training and not model.backbone.bn1.training
    for _ in range(2):
        output = model(pixel_values=images, labels=labels)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    for name, buffer in model.backbone.named_buffers():
        torch.testing.assert_close(buffer, before[name], msg=name)
    with torch.no_grad():
        torch.testing.assert_close(output.pooler_output, model.eval()(pixel_values=images).pooler_output)

    model.requires_grad_(True)  # freezing only ever turns training off: start the partial freeze from scratch
    freeze(model, OptimConfig(freeze="partial", trainable_prefixes=["backbone.layer4", "head", "classifier"]))
    train_mode(model)
    assert model.backbone.layer4[0].bn1.training and not model.backbone.layer3[0].bn1.training


def lrs(config: OptimConfig, steps_per_epoch: int, epochs: int) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=config.lr)
    schedule = build_schedule(optimizer, config, steps_per_epoch * epochs, steps_per_epoch)
    values = []
    for _ in range(steps_per_epoch * epochs):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return values


def test_cosine_with_warmup():
    values = lrs(OptimConfig(lr=1.0, scheduler="cosine", warmup_steps=4), steps_per_epoch=10, epochs=2)
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)
    assert values[-1] < 0.01 and all(a >= b for a, b in itertools.pairwise(values[4:]))


def test_multistep_decays_at_epoch_milestones():
    values = lrs(OptimConfig(lr=1.0, scheduler="multistep", milestones=[1, 3], decay=0.1), steps_per_epoch=5, epochs=4)
    assert values[4] == 1.0 and values[5] == pytest.approx(0.1) and values[14] == pytest.approx(0.1)
    assert values[15] == pytest.approx(0.01)
