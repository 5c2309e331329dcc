"""What timm and transformers users bring to training: timm's optimizers (layer-wise decay, no_weight_decay),
schedules by name, Mixup / CutMix with soft targets, gradient checkpointing."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

import visnet_hf
from tests.helpers import CLASS_NAMES, write_config
from visnet_hf.training import ConfigError, load_config, train
from visnet_hf.training.config import MixupConfig, OptimConfig
from visnet_hf.training.mixing import build_mixup, mix
from visnet_hf.training.optim import build_optimizer, build_schedule


def by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict]:
    """Each trainable parameter's group, by the parameter's name."""
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    return {name: group_of[id(p)] for name, p in model.named_parameters() if id(p) in group_of}


@pytest.fixture(scope="module")
def vit():
    """FRN over timm's tiny test ViT: a position embedding, a class token and six blocks."""
    torch.manual_seed(0)
    return visnet_hf.create_model("frn_test_vit", num_labels=3)


# -- optimizers -------------------------------------------------------------------------------


def test_any_timm_optimizer_by_name_with_its_keywords(vit):
    lamb = build_optimizer(vit, OptimConfig(optimizer="lamb", optimizer_kwargs={"betas": [0.8, 0.9]}))
    assert type(lamb).__name__ == "Lamb" and lamb.param_groups[0]["betas"] == (0.8, 0.9)
    assert type(build_optimizer(vit, OptimConfig(optimizer="lookahead_adamw"))).__name__ == "Lookahead"
    sgd = build_optimizer(vit, OptimConfig(optimizer="sgd"))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"]
    assert not build_optimizer(vit, OptimConfig(optimizer="sgd", momentum=0.0)).param_groups[0]["nesterov"]
    with pytest.raises(ValueError, match="optimizer='adamww' is not a timm optimizer. Did you mean 'adamw'"):
        OptimConfig(optimizer="adamww")
    with pytest.raises(ValueError, match="optimizer='adamw' with optimizer_kwargs=.*'momentun'"):
        OptimConfig(optimizer="adamw", optimizer_kwargs={"momentun": 0.9})


def test_what_the_backbone_names_takes_no_weight_decay(vit):
    """A ViT's position embedding and class token are not 1-D, yet timm exempts them: so does the optimizer."""
    groups = by_name(vit, build_optimizer(vit, OptimConfig(weight_decay=0.1)))
    assert vit.no_weight_decay() >= {"backbone.pos_embed", "backbone.cls_token"}
    assert groups["backbone.pos_embed"]["weight_decay"] == groups["backbone.cls_token"]["weight_decay"] == 0.0
    assert groups["backbone.blocks.0.attn.qkv.weight"]["weight_decay"] == 0.1
    assert groups["backbone.blocks.0.norm1.weight"]["weight_decay"] == groups["classifier.bias"]["weight_decay"] == 0.0


def test_layer_decay_scales_each_layer_group_as_timm_does(vit):
    optimizer = build_optimizer(vit, OptimConfig(lr=0.1, layer_decay=0.5, backbone_lr=None))
    groups = by_name(vit, optimizer)
    # timm's own layer-decay groups over the same model (its group_matcher, under the backbone's prefix)
    from timm.optim._param_groups import param_groups_layer_decay

    names = {id(p): n for n, p in vit.named_parameters()}
    timm_scale = {names[id(p)]: g["lr_scale"] for g in param_groups_layer_decay(vit, layer_decay=0.5) for p in g["params"]}
    assert {name: group["lr"] / 0.1 for name, group in groups.items()} == pytest.approx(timm_scale)
    assert groups["classifier.weight"]["lr"] == groups["head.input.weight"]["lr"] == 0.1  # the heads: the full rate
    assert groups["backbone.blocks.5.mlp.fc1.weight"]["lr"] == pytest.approx(0.05)
    assert groups["backbone.pos_embed"]["lr"] == pytest.approx(0.1 * 0.5**7)  # below six blocks and the top
    # timm's factory reads the model itself the same way
    direct = timm.optim.create_optimizer_v2(vit, opt="adamw", lr=0.1, weight_decay=0.1, layer_decay=0.5)
    assert len(direct.param_groups) > 8
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match=f"layer_decay={bad} must lie in"):
            OptimConfig(layer_decay=bad)


# -- schedules --------------------------------------------------------------------------------


def lrs(config: OptimConfig, steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    schedule = build_schedule(optimizer, config, steps, None)
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return values


def test_transformers_schedules_by_name():
    assert lrs(OptimConfig(lr=1.0, scheduler="linear", warmup_steps=2), 6) == pytest.approx([0, 0.5, 1, 0.75, 0.5, 0.25])
    restarts = lrs(OptimConfig(lr=1.0, scheduler="cosine_with_restarts", scheduler_kwargs={"num_cycles": 2}), 8)
    assert restarts[0] == restarts[4] == 1.0 and restarts[3] < 0.2
    floor = lrs(OptimConfig(lr=1.0, scheduler="cosine_with_min_lr", scheduler_kwargs={"min_lr_rate": 0.1}), 10)
    assert min(floor) == pytest.approx(0.1, abs=0.03)
    with pytest.raises(ValueError, match="scheduler='cosin' is not a schedule. Did you mean 'cosine'"):
        OptimConfig(scheduler="cosin")
    with pytest.raises(ValueError, match="scheduler='cosine_with_min_lr' with scheduler_kwargs=\\{\\}"):
        OptimConfig(scheduler="cosine_with_min_lr")
    with pytest.raises(ValueError, match="scheduler_kwargs are for transformers' schedules"):
        OptimConfig(scheduler="cosine", scheduler_kwargs={"num_cycles": 2})


# -- Mixup and CutMix -------------------------------------------------------------------------


def test_mix_gives_soft_targets_and_leaves_an_odd_batchs_last_image():
    torch.manual_seed(0)
    np.random.seed(0)  # timm's Mixup draws from numpy (whose state accelerate checkpoints for --resume)
    mixup = build_mixup(MixupConfig(mixup_alpha=1.0, cutmix_alpha=0.0), num_classes=4)
    images, labels = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 3, 1])
    model_batch, constraint_batch = mix(mixup, {"pixel_values": images, "labels": labels})
    soft = model_batch["labels"]
    assert soft.shape == (5, 4) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(-1), torch.ones(5))
    lam = soft[0, 0].item()  # image 0 mixed with image 3 (the batch's reverse of the first four)
    assert 0 < lam < 1 and soft[0, 3].item() == pytest.approx(1 - lam, abs=1e-6)
    torch.testing.assert_close(model_batch["pixel_values"][0], lam * images[0] + (1 - lam) * images[3])
    torch.testing.assert_close(model_batch["pixel_values"][4], images[4])  # the odd one out, unmixed
    assert soft[4].tolist() == [0, 1, 0, 0]
    assert constraint_batch["labels"].tolist() == soft.argmax(-1).tolist()
    assert constraint_batch["pixel_values"] is model_batch["pixel_values"]


@pytest.mark.parametrize("objective", ["align", "finetune", "joint"])
def test_vsenet_losses_read_one_hot_soft_targets_as_hard_labels(objective, tiny_text_encoder):
    """Every VSENet objective (the aligned semantic head's structured targets too) takes soft targets;
    one-hot ones give the hard labels' loss, and a mix gives the mix of the two losses (CE is linear in the target)."""
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "vsenet_resnet18",
        class_names=CLASS_NAMES,
        text_encoder=tiny_text_encoder,
        image_size=32,
        head="both",
        label_smoothing=0.1,
    )
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    model.eval()
    hard = model(pixel_values=images, labels=labels, objective=objective).loss_terms
    one_hot = model(pixel_values=images, labels=F.one_hot(labels, 4).float(), objective=objective).loss_terms
    assert hard.keys() == one_hot.keys()
    for name in hard:
        torch.testing.assert_close(one_hot[name], hard[name], rtol=1e-5, atol=1e-6, msg=name)
    other = torch.tensor([1, 2, 3, 0])
    mixed = model(
        pixel_values=images, labels=0.3 * F.one_hot(labels, 4).float() + 0.7 * F.one_hot(other, 4).float(), objective=objective
    )
    second = model(pixel_values=images, labels=other, objective=objective).loss_terms
    for name in hard:
        if name != "weight_reg":
            torch.testing.assert_close(
                mixed.loss_terms[name], 0.3 * hard[name] + 0.7 * second[name], rtol=1e-5, atol=1e-6, msg=name
            )


def test_frn_loss_reads_soft_targets():
    torch.manual_seed(0)
    model = visnet_hf.create_model("frn_resnet18", num_labels=4, image_size=32, label_smoothing=0.1).eval()
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(
        model(pixel_values=images, labels=F.one_hot(labels, 4).float()).loss, model(pixel_values=images, labels=labels).loss
    )


def test_mixup_config_checks():
    with pytest.raises(ValueError, match="mixup_alpha and cutmix_alpha are both 0"):
        MixupConfig(mixup_alpha=0, cutmix_alpha=0)
    with pytest.raises(ValueError, match="prob=1.5 must lie in"):
        MixupConfig(prob=1.5)


def test_mixup_is_refused_with_cached_features(tiny_parquet, tmp_path):
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="mixup: {mixup_alpha: 0.8}\n")
    with pytest.raises(ConfigError, match="mixup mixes images, and data.cache_features"):
        load_config(config, ["data.cache_features=true", "optim.freeze=backbone"])


# -- gradient checkpointing -------------------------------------------------------------------


def test_gradient_checkpointing_reaches_timms_backbone_and_changes_no_gradient(monkeypatch, tiny_text_encoder):
    import timm.models.resnet

    calls = []
    original = timm.models.resnet.checkpoint_seq
    monkeypatch.setattr(timm.models.resnet, "checkpoint_seq", lambda *a, **k: calls.append(1) or original(*a, **k))
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for name, kwargs in [
        ("frn_resnet18", {"num_labels": 4}),
        ("vsenet_resnet18", {"class_names": CLASS_NAMES, "text_encoder": tiny_text_encoder}),
    ]:
        torch.manual_seed(0)
        model = visnet_hf.create_model(name, image_size=32, **kwargs).train()
        model(pixel_values=images, labels=labels).loss.backward()
        plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        model.activation_checkpointing_enable()
        assert model.backbone.grad_checkpointing and model.is_activation_checkpointing
        calls.clear()
        model(pixel_values=images, labels=labels).loss.backward()
        assert calls, f"{name}: the backbone did not checkpoint"
        for n, grad in plain.items():
            torch.testing.assert_close(model.get_parameter(n).grad, grad, rtol=1e-4, atol=1e-6, msg=n)
        model.activation_checkpointing_disable()
        assert not model.backbone.grad_checkpointing


# -- in a run ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_with_mixup_cutmix_layer_decay_and_checkpointing(tiny_parquet, tmp_path, monkeypatch):
    """The knobs together, as a config sets them, with a constraint that reads labels: the model gets soft
    targets, the constraint hard ones, the backbone checkpoints."""
    seen: dict[str, list] = {"model": [], "constraint": []}
    model_forward = visnet_hf.FRNForImageClassification.forward

    def spy(self, *args, labels=None, **kwargs):
        if labels is not None:
            seen["model"].append(labels.dtype)
        return model_forward(self, *args, labels=labels, **kwargs)

    monkeypatch.setattr(visnet_hf.FRNForImageClassification, "forward", spy)
    from visnet_plugins.label_deviation import LabelDeviation

    penalty = LabelDeviation.__call__

    def constraint_spy(self, model, batch, outputs):
        seen["constraint"].append(batch["labels"].dtype)
        return penalty(self, model, batch, outputs)

    monkeypatch.setattr(LabelDeviation, "__call__", constraint_spy)
    extra = (
        "mixup: {mixup_alpha: 0.8, cutmix_alpha: 1.0, switch_prob: 0.5}\n"
        "stages: [{name: train, epochs: 1, constraints: [{name: label_deviation, weight: 0.1}]}]\n"
    )
    config = load_config(
        write_config(tmp_path, tiny_parquet, "frn_test_vit", extra=extra),
        [
            "model.image_size=null",
            "optim.layer_decay=0.75",
            "optim.optimizer=lamb",
            "optim.scheduler=linear",
            "model.gradient_checkpointing=true",
        ],
    )
    results = train(config)
    assert results["model"].backbone.grad_checkpointing
    assert set(seen["model"]) == {torch.float32} and set(seen["constraint"]) == {torch.int64}
    assert type(results["model"]).__name__ == "FRNForImageClassification"
