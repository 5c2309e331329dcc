"""The main job end to end: train.py / visnet train, evaluation, prediction, resume, DDP, bf16, config errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import visnet_hf
from visnet_hf.cli import main as cli
from visnet_hf.training import ConfigError, load_config
from visnet_hf.training import main as train_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one AcceleratorState per process; each in-process run must read its own settings."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def write_config(tmp_path: Path, data_path: str, model: str, text_encoder: str | None = None, extra: str = "") -> Path:
    model_section = f"  name: {model}\n  image_size: 32\n"
    if text_encoder:
        model_section += f"  text_encoder: {text_encoder}\n"
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""model:
{model_section}data:
  source: parquet
  path: {data_path}
  val_fraction: 0.25
optim:
  optimizer: sgd
  lr: 0.05
  scheduler: cosine
  warmup_steps: 2
stages:
  - name: train
    epochs: 2
batch_size: 16
output_dir: {tmp_path / 'run'}
log_every_steps: 2
{extra}"""
    )
    return path


@pytest.mark.parametrize("model", ["frn_resnet18", "vsenet_resnet18"])
def test_train_eval_predict_reload(model, tiny_parquet, tiny_text_encoder, tmp_path, capsys):
    config = write_config(tmp_path, tiny_parquet, model, tiny_text_encoder if model.startswith("vsenet") else None)
    results = train_main(["--config", str(config)])
    run = tmp_path / "run"
    printed = capsys.readouterr().out
    assert "[train 2/2]" in printed and f"Model: {run / 'model'}" in printed
    for name in ("config.yaml", "eval_results.json", "confusion_matrix.png", "training_curves.png"):
        assert (run / name).exists(), name
    assert list((run / "logs").rglob("events.out.tfevents*")), "no TensorBoard log"
    assert len(list((run / "checkpoints").iterdir())) == 2
    metrics = json.loads((run / "eval_results.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["top5_accuracy"] == 1.0  # 4 classes: top-5 covers all
    assert set(metrics["report"]["per_class"]) == {"cat", "dog", "car", "ship"}
    assert sum(map(sum, metrics["confusion_matrix"])) == 24
    assert len(metrics["history"]) == 2 and metrics["history"][1]["train_loss"] < metrics["history"][0]["train_loss"] * 1.5
    assert load_config(run / "config.yaml").model.name == model  # the resolved config reloads

    assert cli(["eval", "--model", str(run / "model"), "--data", tiny_parquet, "--max-samples", "32"]) == 0
    evaluation = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= evaluation["accuracy"] <= 1.0 and Path(evaluation["confusion_png"]).exists()

    image_dir = tmp_path / "images"
    image_dir.mkdir()
    from .conftest import generated_images

    for index, image in enumerate(generated_images(2)):
        image.save(image_dir / f"{index}.png")
    assert cli(["predict", "--model", str(run / "model"), str(image_dir)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines() if line.startswith("{")]
    assert len(lines) == 2 and lines[0]["predictions"][0]["label"] in {"cat", "dog", "car", "ship"}
    if model.startswith("vsenet"):
        scores = {}
        for head in ("semantic", "conse", "both"):
            command = ["zero-shot", "--model", str(run / "model"), "--classes", "zebra, lorry", "--zero-shot-head", head]
            assert cli([*command, str(image_dir / "0.png")]) == 0
            line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
            assert {p["label"] for p in line["predictions"]} == {"zebra", "lorry"}
            scores[head] = {p["label"]: p["score"] for p in line["predictions"]}
        assert scores["semantic"] != scores["both"]  # the option reaches the model

    from transformers import AutoModelForImageClassification

    reloaded = AutoModelForImageClassification.from_pretrained(run / "model")
    assert reloaded.config.id2label == {0: "cat", 1: "dog", 2: "car", 3: "ship"}


def test_resume_continues_exactly(tiny_parquet, tmp_path):
    """Constraint state (filter_values' reference weights) and the EMA go through save_state / load_state too."""
    extra = "checkpoint_every_steps: 2\nkeep_checkpoints: 20\ntrackers: []\n"
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra=extra)
    constraint = "stages.0.constraints=[{name: filter_values, weight: 0.01}, {name: label_deviation, weight: 0.5}]"
    uninterrupted = train_main(["--config", str(config), constraint, "optim.ema_decay=0.9"])
    reference = load_file(tmp_path / "run" / "model" / "model.safetensors")
    history = uninterrupted["state"]["history"]

    # Pretend the run was killed after step 2 (mid-epoch 1): drop every checkpoint written after it.
    checkpoints = sorted((tmp_path / "run" / "checkpoints").iterdir())
    for later in checkpoints:
        if int(later.name.split("_")[1]) > 2:
            import shutil

            shutil.rmtree(later)
    resumed = train_main(["--config", str(config), "--resume", constraint, "optim.ema_decay=0.9"])
    assert resumed["state"]["global_step"] == uninterrupted["state"]["global_step"]
    assert [h["train_loss"] for h in resumed["state"]["history"]] == pytest.approx([h["train_loss"] for h in history], abs=1e-6)
    final = load_file(tmp_path / "run" / "model" / "model.safetensors")
    for name, tensor in reference.items():
        torch.testing.assert_close(final[name], tensor, atol=1e-6, rtol=0)


def test_bf16_training_with_constraints(tiny_parquet, tmp_path, monkeypatch):
    extra = """trackers: []
"""
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra=extra)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    results = train_main(
        [
            "--config", str(config), "stages.0.epochs=1",
            "stages.0.constraints=[{name: label_deviation, weight: 0.5}, {name: grey_values, weight: 0.1}]",
        ]
    )
    assert results["mixed_precision"] == "bf16"
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in results["state"]["history"])
    assert {"train_label_deviation", "train_grey_values", "train_ce"} <= set(results["state"]["history"][0])


def test_a_frozen_backbone_stays_as_built(tiny_parquet, tmp_path):
    """freeze: backbone trains the heads only; the backbone's batch norms never see a training batch."""
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    results = train_main(["--config", str(config), "stages.0.epochs=1", "optim.freeze=backbone"])
    model = results["model"]
    assert int(model.backbone.bn1.num_batches_tracked) == 0
    assert results["state"]["global_step"] > 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_end_with_the_same_weights(tiny_parquet, tmp_path):
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--main_process_port", str(_free_port()), str(ROOT / "train.py"), "--config", str(config), "stages.0.epochs=1",
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "eval_results.json").read_text())["run"]
    assert run["num_processes"] == 2
    first, second = run["rank_checksums"]
    assert first == second


def test_nonfinite_loss_stops_naming_the_terms(tiny_parquet, tmp_path):
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    from visnet_hf.training.loop import NonFiniteLossError

    nan_weight = "stages.0.constraints=[{name: label_deviation, weight: .nan}]"
    with pytest.raises(
        NonFiniteLossError, match=r"Non-finite loss at step 0: ce=.*label_deviation=nan; non-finite term\(s\): \['label_deviation'\]"
    ):
        train_main(["--config", str(config), nan_weight])
    skipped = train_main(["--config", str(config), nan_weight, "on_nonfinite=skip", "stages.0.epochs=1"])
    assert skipped["skipped_steps"] == skipped["state"]["skipped_steps"] > 0


def test_config_errors_listed_together(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {name: frn_resnet18, imag_size: 32}\noptim: {lr: -1, optimizer: adam}\nbatch_size: 0\nfoo: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"5 problem(s) in {path}")
    assert "model.imag_size: unknown key; did you mean 'image_size'?" in message
    assert "optim: lr=-1 must be positive" in message
    assert "optim.optimizer: expected one of ['sgd', 'adamw'], got 'adam'" in message
    assert "batch_size=0 must be >= 1" in message
    assert "foo: unknown key" in message
    with pytest.raises(ConfigError, match="is not key=value"):
        load_config(path, ["optim.lr"])


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(config):
    loaded = load_config(config)
    assert loaded.model.name in visnet_hf.list_models()
    for stage in loaded.stages:
        visnet_hf.constraints.SoftTuning.build(list(stage.constraints))


def test_community_plugin_installs_and_trains_next_to_built_ins(tiny_parquet, tmp_path):
    """Install the example third-party package, then use its constraint by name: no change to visnet_hf."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "plugins" / "visnet-confidence-penalty")],
        check=True, capture_output=True, text=True, timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    listed = subprocess.run([sys.executable, "-m", "visnet_hf.cli", "plugins", "list"], env=env, capture_output=True, text=True, check=True)
    assert "confidence_penalty     visnet-confidence-penalty 0.2.0      loads" in listed.stdout

    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: [tensorboard]\n")
    constraints = (
        "stages.0.constraints=[{name: label_deviation, weight: 0.5}, {name: filter_values, weight: 0.01},"
        " {name: confidence_penalty, weight: 0.2, params: {threshold: 1.0}}]"
    )
    completed = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(config), "stages.0.epochs=1", constraints],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "label_deviation" in completed.stdout and "confidence_penalty" in completed.stdout
    history = json.loads((tmp_path / "run" / "eval_results.json").read_text())["history"]
    assert {"train_label_deviation", "train_filter_values", "train_confidence_penalty"} <= set(history[0])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "run" / "logs").rglob("events.out.tfevents*")).parent))
    events.Reload()
    assert {"train/label_deviation", "train/filter_values", "train/confidence_penalty"} <= set(events.Tags()["scalars"])


def test_zero_shot_evaluation_on_classes_held_out_of_training(tiny_parquet, tiny_text_encoder, tmp_path, capsys):
    config = write_config(
        tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder,
        extra="trackers: []\n",
    )
    results = train_main(["--config", str(config), "stages.0.epochs=1", "data.include_classes=[cat, dog, car]"])
    assert results["model"].config.class_names == ["cat", "dog", "car"]
    capsys.readouterr()
    model_dir = str(tmp_path / "run" / "model")
    assert cli(["eval", "--model", model_dir, "--data", tiny_parquet, "--val-fraction", "0.25"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    zero_shot = report["generalised_zero_shot"]
    assert set(zero_shot) == {"seen_accuracy", "unseen_accuracy", "harmonic_mean"}
    metrics = json.loads(Path(report["metrics_file"]).read_text())
    assert metrics["class_names"] == ["cat", "dog", "car", "ship"]
    # Held out before filtering: the 24 eval images are the training run's 18 held-out ones plus the 6 'ship' ones.
    assert sum(map(sum, metrics["confusion_matrix"])) == 24
    unseen_row = metrics["confusion_matrix"][3]
    assert zero_shot["unseen_accuracy"] == pytest.approx(unseen_row[3] / sum(unseen_row))
