"""Speed options: channels_last, torch.compile, torch's optimizer kernels, data-loading options.

Each must change how fast a run goes and nothing else: the same logits, the same losses (within
floating-point reordering), the same saved keys, the same resume.
"""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from safetensors.torch import load_file

import visnet_hf
from tests.helpers import CLASS_NAMES, write_config
from visnet_hf.training import load_config, train
from visnet_hf.training.config import ModelConfig, OptimConfig
from visnet_hf.training.optim import build_optimizer
from visnet_hf.training.runtime import compile_in_place, compile_options, use_channels_last


def test_channels_last_gives_the_same_logits(tiny_text_encoder, pixel_batch):
    torch.manual_seed(0)
    model = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32)
    model.eval()
    with torch.no_grad():
        reference = model(pixel_batch).logits
        model.to(memory_format=torch.channels_last)
        assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        logits = model(pixel_batch.contiguous(memory_format=torch.channels_last)).logits
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-4)


def test_channels_last_defaults_to_convolutional_backbones_on_cuda():
    resnet = visnet_hf.create_model("frn_resnet18", num_labels=4, image_size=32)
    vit = visnet_hf.create_model("frn_resnet18", backbone="test_vit", num_labels=4, image_size=32)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert use_channels_last(ModelConfig(name="frn_resnet18"), resnet, cuda)
    assert not use_channels_last(ModelConfig(name="frn_resnet18"), resnet, cpu)  # nothing that slows 2 CPU cores
    assert not use_channels_last(ModelConfig(name="frn_resnet18"), vit, cuda)  # no convolutions to speed up
    assert use_channels_last(ModelConfig(name="frn_resnet18", channels_last=True), resnet, cpu)  # asked for


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_optimizer_kernels_are_chosen_and_agree(optimizer):
    """``fused`` and ``foreach`` run torch's multi-tensor kernels; every one takes the same steps.

    (On a small MLP: in a deep network Adam's first steps divide near-zero gradients by near-zero
    second moments, where summation-order differences between kernels are magnified.)"""
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4))
    inputs, labels = torch.randn(32, 8), torch.randint(0, 4, (32,))
    expected = {"for": ("foreach", False), "foreach": ("foreach", True), "fused": ("fused", True), "auto": ("fused", None)}
    stepped = {}
    for implementation, (key, value) in expected.items():
        model = copy.deepcopy(reference)
        config = OptimConfig(optimizer=optimizer, lr=0.01, momentum=0.9, weight_decay=0.01, implementation=implementation)
        built = build_optimizer(model, config, "cpu")
        assert built.defaults[key] is value, (implementation, built.defaults)
        assert [g["weight_decay"] for g in built.param_groups] == [0.01, 0.0]  # no decay on biases and norms
        for _ in range(3):
            torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            built.step()
            built.zero_grad()
        stepped[implementation] = model.state_dict()
    for implementation in ("foreach", "fused", "auto"):
        for name, tensor in stepped["for"].items():
            torch.testing.assert_close(stepped[implementation][name], tensor, atol=1e-6, rtol=1e-5)


def test_loading_options_reach_the_data_loader(tiny_parquet, tmp_path):
    from visnet_hf.training import make_accelerator
    from visnet_hf.training.setup import setup

    config = load_config(
        write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n"),
        ["data.num_workers=1", "data.pin_memory=true", "data.persistent_workers=true", "data.prefetch_factor=3"],
    )
    run = setup(config, make_accelerator(config))
    loader = run.train_loader
    assert loader.num_workers == 1 and loader.pin_memory and loader.persistent_workers and loader.prefetch_factor == 3


def test_bad_loading_options_are_config_errors(tiny_parquet, tmp_path):
    from visnet_hf.errors import ConfigError

    path = write_config(tmp_path, tiny_parquet, "frn_resnet18")
    with pytest.raises(ConfigError, match="prefetch_factor=2 needs num_workers > 0"):
        load_config(path, ["data.prefetch_factor=2"])
    with pytest.raises(ConfigError, match="implementation"):
        load_config(path, ["optim.implementation=fastest"])
    with pytest.raises(ConfigError, match="compile"):
        load_config(path, ["model.compile=fast"])


@pytest.mark.slow
def test_compiled_and_eager_training_agree_and_save_plain_keys(tmp_path):
    """``model.compile: true`` (inductor, which runs on the CPU here): on a fixed batch, the same
    losses and weights as eager after a few SGD steps, and a state dict without ``_orig_mod.``."""
    torch.manual_seed(0)
    reference = visnet_hf.create_model("frn_resnet18", backbone="test_resnet", num_labels=4, image_size=32)
    batch = {"pixel_values": torch.randn(8, 3, 32, 32), "labels": torch.arange(8) % 4}

    def steps(model) -> list[float]:
        torch.manual_seed(1)  # the same dropout masks
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        losses = []
        for _ in range(4):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        return losses

    eager, compiled = copy.deepcopy(reference), copy.deepcopy(reference)
    options = compile_options(ModelConfig(name="frn_resnet18", compile=True))
    assert options == {"backend": "inductor"}
    compile_in_place(compiled, options)
    eager_losses, compiled_losses = steps(eager), steps(compiled)
    moved = max((eager.state_dict()[k].float() - v.float()).abs().max().item() for k, v in reference.state_dict().items())
    assert moved > 1e-3  # the steps change the weights: comparing them means something
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-5)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no _orig_mod. prefix
    for name, tensor in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[name], tensor, atol=1e-4, rtol=1e-3)

    compiled.save_pretrained(tmp_path / "compiled")
    reloaded = visnet_hf.FRNForImageClassification.from_pretrained(tmp_path / "compiled").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(batch["pixel_values"]).logits, eager.eval()(batch["pixel_values"]).logits, atol=1e-4, rtol=1e-3
        )


@pytest.mark.slow
def test_a_dynamo_backend_from_accelerate_launch_keeps_ema_constraints_and_resume(tiny_parquet, tmp_path, monkeypatch):
    """``accelerate launch --dynamo_backend`` (here ``aot_eager``: dynamo and autograd tracing without
    code generation) compiles the run's model in place: the same losses as eager with EMA and a
    constraint, plain keys in the model and in checkpoints, and an eager resume from a compiled
    checkpoint that ends where the uninterrupted run did."""
    common = [
        "model.overrides={backbone: test_resnet}",
        "batch_size=8",
        "stages.0.epochs=1",
        "optim.ema_decay=0.9",
        "stages.0.constraints=[{name: filter_values, weight: 0.01}]",
    ]
    extra = "trackers: []\ncheckpoint_every_steps: 3\nkeep_checkpoints: 10\n"

    def run(name: str, resume: bool = False) -> dict:
        (tmp_path / name).mkdir(exist_ok=True)
        return train(load_config(write_config(tmp_path / name, tiny_parquet, "frn_resnet18", extra=extra), common), resume=resume)

    eager = run("eager")
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "aot_eager")
    assert compile_options(ModelConfig(name="frn_resnet18")) == {"backend": "aot_eager"}
    compiled = run("compiled")
    monkeypatch.delenv("ACCELERATE_DYNAMO_BACKEND")
    losses = [h["train_loss"] for h in compiled["state"]["history"]]
    assert losses == pytest.approx([h["train_loss"] for h in eager["state"]["history"]], rel=1e-4)

    saved = load_file(tmp_path / "compiled" / "run" / "model" / "model.safetensors")
    assert set(saved) == set(load_file(tmp_path / "eager" / "run" / "model" / "model.safetensors"))
    checkpoints = tmp_path / "compiled" / "run" / "checkpoints"
    for checkpoint in checkpoints.iterdir():
        assert not [key for key in load_file(checkpoint / "model.safetensors") if "_orig_mod" in key], checkpoint

    # The compiled run is killed after step 3 (its later checkpoints never happened); resume it eagerly.
    for later in sorted(checkpoints.iterdir()):
        if int(later.name.split("_")[1]) > 3:
            shutil.rmtree(later)
    resumed = run("compiled", resume=True)
    assert resumed["state"]["counter"] == compiled["state"]["counter"]
    final = load_file(tmp_path / "compiled" / "run" / "model" / "model.safetensors")
    for name, tensor in saved.items():
        torch.testing.assert_close(final[name], tensor, atol=1e-5, rtol=1e-4, msg=name)


def test_fsdp_where_accelerate_cannot_shard_is_said(tiny_parquet, tmp_path, monkeypatch, capsys):
    """accelerate shards with FSDP on GPU-like devices only; on the CPU the run says it replicates."""
    from accelerate.state import AcceleratorState

    from visnet_hf.training import make_accelerator

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        accelerator = make_accelerator(load_config(write_config(tmp_path, tiny_parquet, "frn_resnet18")))
        assert accelerator.distributed_type.value != "FSDP"
        assert "FSDP was asked for, but accelerate runs it on GPUs" in capsys.readouterr().out
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
