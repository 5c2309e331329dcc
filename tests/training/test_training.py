"""The main job end to end: train.py / visnet train, evaluation, prediction, resume, DDP, bf16, config errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import visnet_hf
from tests.helpers import CLASS_NAMES, generated_images, launch_two_processes, write_config
from visnet_hf.cli import main as cli
from visnet_hf.text import ClassTexts, TextEncoder, template_sets
from visnet_hf.training import ConfigError, NonFiniteLossError, load_config, train
from visnet_hf.training import main as train_main

pytestmark = pytest.mark.slow  # every test here trains, or starts a process

ROOT = Path(__file__).resolve().parents[2]


def run(config: Path, *overrides: str) -> dict:
    """Train in this process, letting errors through as exceptions (``train_main`` turns them into exit status 2)."""
    return train(load_config(config, list(overrides)))


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar the run logged to TensorBoard, as ``tag -> [(step, value), ...]``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((run_dir / "logs").rglob("events.out.tfevents*")).parent))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("model", ["frn_resnet18", "vsenet_resnet18"])
def test_train_eval_predict_reload(model, tiny_parquet, tiny_text_encoder, tmp_path, capsys):
    config = write_config(tmp_path, tiny_parquet, model, tiny_text_encoder if model.startswith("vsenet") else None)
    train_main(["--config", str(config)])
    run_dir = tmp_path / "run"
    printed = capsys.readouterr().out
    assert (
        "Training on 72 images of 4 classes; evaluating on 24 images: a stratified 25% held out of train.parquet (seed 0)"
        in printed
    )
    assert "[train 2/2] step 8" in printed and "on 24 images" in printed and f"Model: {run_dir / 'model'}" in printed
    if model.startswith("vsenet"):  # which WordNet sense each class name was read as, said before training
        assert "WordNet senses of 4 classes: 0 given by the data, 4 guessed from the name" in printed
        assert "'ship' → ship (n04194289, guessed)" in printed
    # Off a terminal (here: captured), a plain progress line every log_every_steps (2) optimizer steps.
    progress = [line for line in printed.splitlines() if re.match(r"\[train \d/2\] step \d+/8  loss \d", line)]
    assert [line.split()[3] for line in progress] == ["2/8", "4/8", "6/8", "8/8"] and all(" lr " in line for line in progress)
    for name in ("config.yaml", "eval_results.json", "confusion_matrix.png", "training_curves.png"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "logs").rglob("events.out.tfevents*")), "no TensorBoard log"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000004", "step_00000008"]
    metrics = json.loads((run_dir / "eval_results.json").read_text())
    confusion = torch.tensor(metrics["confusion_matrix"])
    assert metrics["num_examples"] == int(confusion.sum()) == 24
    assert metrics["accuracy"] == pytest.approx(float(confusion.trace() / 24))
    assert metrics["scored"] == "a stratified 25% held out of train.parquet (seed 0)"
    assert set(metrics["report"]["per_class"]) == {"cat", "dog", "car", "ship"}
    assert [h["step"] for h in metrics["history"]] == [4, 8]
    assert load_config(run_dir / "config.yaml").model.name == model  # the resolved config reloads

    # --held-out re-scores exactly the run's eval split (read from the model folder), and agrees with it.
    capsys.readouterr()
    assert cli(["eval", "--model", str(run_dir / "model"), "--held-out"]) == 0
    held_out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    best = json.loads((run_dir / "model" / "eval_results.json").read_text())
    assert held_out["num_examples"] == best["num_examples"] == 24
    assert held_out["accuracy"] == pytest.approx(best["accuracy"])
    assert held_out["scored"] == best["split"] == "a stratified 25% held out of train.parquet (seed 0)"

    image_dir = tmp_path / "images"
    image_dir.mkdir()
    for index, image in enumerate(generated_images(2)):
        image.save(image_dir / f"{index}.png")
    assert cli(["predict", "--model", str(run_dir / "model"), str(image_dir)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines() if line.startswith("{")]
    assert len(lines) == 2 and lines[0]["predictions"][0]["label"] in {"cat", "dog", "car", "ship"}
    if model.startswith("vsenet"):
        scores = {}
        for head in ("semantic", "conse", "both"):
            command = ["zero-shot", "--model", str(run_dir / "model"), "--classes", "zebra, lorry", "--zero-shot-head", head]
            assert cli([*command, str(image_dir / "0.png")]) == 0
            line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
            assert {p["label"] for p in line["predictions"]} == {"zebra", "lorry"}
            scores[head] = {p["label"]: p["score"] for p in line["predictions"]}
        assert scores["semantic"] != scores["both"]  # the option reaches the model

    from transformers import AutoModelForImageClassification

    reloaded = AutoModelForImageClassification.from_pretrained(run_dir / "model")
    assert reloaded.config.id2label == {0: "cat", 1: "dog", 2: "car", 3: "ship"}


def test_eval_scores_a_given_file_whole_and_says_so(tiny_parquet, tmp_path, capsys):
    """`visnet eval --data FILE` scores every image of FILE (it used to hold out 10% of it)."""
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    run(config, "stages.0.epochs=1")
    model_dir = str(tmp_path / "run" / "model")
    capsys.readouterr()
    assert cli(["eval", "--model", model_dir, "--data", tiny_parquet, "--split", "train"]) == 0
    whole = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert whole["num_examples"] == 96 and whole["scored"] == "all of train.parquet"
    written = json.loads(Path(whole["metrics_file"]).read_text())
    assert sum(map(sum, written["confusion_matrix"])) == 96

    assert cli(["eval", "--model", model_dir, "--data", tiny_parquet, "--held-out", "--val-fraction", "0.5", "--seed", "1"]) == 0
    half = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert half["num_examples"] == 48 and half["scored"] == "a stratified 50% held out of train.parquet (seed 1)"


def test_constraint_schedules_count_from_the_start_of_their_stage(tiny_parquet, tmp_path, test_plugins):
    """A stage-2 constraint with warmup ramps from the stage's first step, not the run's."""
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="log_every_steps: 1\n")
    stages = (
        "stages=[{name: first, epochs: 1}, {name: second, epochs: 1, constraints: [{name: constant, weight: 2.0, warmup: 4}]}]"
    )
    run(config, stages)
    logged = dict(scalars(tmp_path / "run")["train/constant"])
    # 72 training images in batches of 16 (the last 8 dropped): 4 steps per stage. Stage 2 takes the
    # run's steps 4..7 (logged after each, as 5..8); the ramp is weight * (step_in_stage + 1) / warmup.
    assert logged == pytest.approx({5: 0.5, 6: 1.0, 7: 1.5, 8: 2.0})


def test_gradient_accumulation_keeps_the_learning_rate_schedule(tiny_parquet, tmp_path):
    """With k micro-batches per step the schedule covers the same curve in the same optimizer steps."""
    curves = {}
    for k in (1, 2):
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        config = write_config(folder, tiny_parquet, "frn_resnet18", extra="log_every_steps: 1\n")
        results = run(
            config,
            f"gradient_accumulation_steps={k}",
            f"batch_size={16 // k}",
            "optim.warmup_steps=3",
            "data.max_train_samples=64",
            "stages.0.epochs=2",
        )
        curves[k] = scalars(folder / "run")["train/lr"]
        assert results["state"]["counter"]["step"] == 8  # 64 images / 16 per optimizer step, 2 epochs
    assert [step for step, _ in curves[2]] == [step for step, _ in curves[1]] == list(range(1, 9))
    assert [lr for _, lr in curves[2]] == pytest.approx([lr for _, lr in curves[1]])
    # Warm-up over 3 steps, then a cosine over the other 5 that ends at zero at the end of the run.
    assert [lr for _, lr in curves[2][:3]] == pytest.approx([0.05 * 2 / 3, 0.05, 0.05])
    assert curves[2][-1][1] == pytest.approx(0.0, abs=1e-12)


def test_no_host_read_per_step_when_nothing_is_logged(tiny_parquet, tmp_path, monkeypatch):
    """The loss terms stay on the device: a training step reads nothing back (only logging does)."""
    import visnet_hf.training.loop as loop

    reads = {"inside": False, "count": 0}
    for method in ("item", "tolist", "__float__", "__bool__", "__int__"):
        original = getattr(torch.Tensor, method)

        def counting(self, *args, _original=original, **kwargs):
            if reads["inside"]:
                reads["count"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, counting)
    original_step = loop.train_step

    def watched_step(run_state, batch):
        reads["inside"] = True
        try:
            return original_step(run_state, batch)
        finally:
            reads["inside"] = False

    monkeypatch.setattr(loop, "train_step", watched_step)
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\nlog_every_steps: 1000\n")
    results = run(config, "stages.0.epochs=1", "stages.0.constraints=[{name: label_deviation, weight: 0.5}]")
    assert results["state"]["counter"]["step"] == 4
    assert reads["count"] == 0


def test_resume_continues_exactly(tiny_parquet, tmp_path):
    """Constraint state (filter_values' reference weights) and the EMA go through save_state / load_state too."""
    extra = "checkpoint_every_steps: 2\nkeep_checkpoints: 20\ntrackers: []\n"
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra=extra)
    constraint = "stages.0.constraints=[{name: filter_values, weight: 0.01}, {name: label_deviation, weight: 0.5}]"
    uninterrupted = train_main(
        ["--config", str(config), constraint, "optim.ema_decay=0.9", "gradient_accumulation_steps=2", "batch_size=8"]
    )
    reference = load_file(tmp_path / "run" / "model" / "model.safetensors")
    history = uninterrupted["state"]["history"]

    # Pretend the run was killed after step 2 (mid-epoch 1): drop every checkpoint written after it.
    for later in sorted((tmp_path / "run" / "checkpoints").iterdir()):
        if int(later.name.split("_")[1]) > 2:
            shutil.rmtree(later)
    resumed = train_main(
        ["--config", str(config), "--resume", constraint, "optim.ema_decay=0.9", "gradient_accumulation_steps=2", "batch_size=8"]
    )
    assert resumed["state"]["counter"] == uninterrupted["state"]["counter"]
    assert [h["train_loss"] for h in resumed["state"]["history"]] == pytest.approx([h["train_loss"] for h in history], abs=1e-6)
    final = load_file(tmp_path / "run" / "model" / "model.safetensors")
    for name, tensor in reference.items():
        torch.testing.assert_close(final[name], tensor, atol=1e-6, rtol=0)


def test_the_returned_model_is_the_one_scored_and_exported(tiny_parquet, tmp_path):
    """With an EMA the run scores and exports the averaged weights; ``results["model"]`` is that model too."""
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    results = train_main(["--config", str(config), "stages.0.epochs=1", "optim.ema_decay=0.5"])
    exported = load_file(tmp_path / "run" / "model" / "model.safetensors")
    returned = results["model"].state_dict()
    for name, tensor in exported.items():
        torch.testing.assert_close(returned[name], tensor, msg=name)


def test_bf16_training_with_constraints(tiny_parquet, tmp_path, monkeypatch):
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    results = train_main(
        [
            "--config",
            str(config),
            "stages.0.epochs=1",
            "data.max_train_samples=32",
            "stages.0.constraints=[{name: label_deviation, weight: 0.5}, {name: grey_values, weight: 0.1}]",
        ]
    )
    assert results["mixed_precision"] == "bf16"
    history = results["state"]["history"][0]
    assert all(
        torch.isfinite(torch.tensor(history[f"train_{name}"])) for name in ("loss", "ce", "label_deviation", "grey_values")
    )
    assert history["train_loss"] == pytest.approx(
        history["train_ce"] + history["train_label_deviation"] + history["train_grey_values"], rel=1e-5
    )


def test_a_frozen_backbone_stays_as_built(tiny_parquet, tmp_path):
    """freeze: backbone trains the heads only; the backbone's batch norms never see a training batch."""
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    results = train_main(["--config", str(config), "stages.0.epochs=1", "optim.freeze=backbone"])
    model = results["model"]
    assert int(model.backbone.bn1.num_batches_tracked) == 0
    assert results["state"]["counter"]["step"] == 4


def test_two_processes_skip_the_same_non_finite_step_and_stay_in_step(tiny_parquet, tmp_path, test_plugins):
    """A NaN on one process only: both drop that optimizer step, finish, and end with the same weights."""
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\non_nonfinite: skip\n")
    nan_on_rank_1 = "stages.0.constraints=[{name: nan_on_call, params: {call: 2, rank: 1}}]"
    completed = launch_two_processes(config, nan_on_rank_1, pythonpath=str(test_plugins))
    assert completed.returncode == 0, completed.stderr[-3000:]
    run_info = json.loads((tmp_path / "run" / "eval_results.json").read_text())["run"]
    assert run_info["num_processes"] == 2
    assert run_info["rank_skipped_steps"] == [1, 1]
    first, second = run_info["rank_checksums"]
    assert first == second
    assert completed.stdout.count("Skipped step 2: a loss was not finite") == 1  # printed by the main process


def test_nonfinite_loss_stops_naming_the_terms(tiny_parquet, tmp_path):
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    nan_weight = "stages.0.constraints=[{name: label_deviation, weight: .nan}]"
    with pytest.raises(
        NonFiniteLossError,
        match=r"Non-finite loss at step 0: ce=.*label_deviation=nan; non-finite term\(s\): \['label_deviation'\]",
    ):
        run(config, nan_weight)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing non-finite was saved


def test_a_skipped_step_is_counted_so_resume_is_exact(tiny_parquet, tmp_path, test_plugins):
    extra = "trackers: []\non_nonfinite: skip\ncheckpoint_every_steps: 2\nkeep_checkpoints: 20\n"
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra=extra)
    nan_once = "stages.0.constraints=[{name: nan_on_call, params: {call: 1}}]"
    uninterrupted = run(config, nan_once)
    assert uninterrupted["skipped_steps"] == 1 and uninterrupted["state"]["counter"]["step"] == 8
    reference = load_file(tmp_path / "run" / "model" / "model.safetensors")
    for later in sorted((tmp_path / "run" / "checkpoints").iterdir()):
        if int(later.name.split("_")[1]) > 2:
            shutil.rmtree(later)
    resumed = train(load_config(config, [nan_once]), resume=True)
    assert resumed["state"]["counter"] == uninterrupted["state"]["counter"]
    assert resumed["skipped_steps"] == 1
    final = load_file(tmp_path / "run" / "model" / "model.safetensors")
    for name, tensor in reference.items():
        torch.testing.assert_close(final[name], tensor, atol=1e-6, rtol=0)


def test_config_errors_listed_together(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {name: frn_resnet18, imag_size: 32}\noptim: {lr: -1, optimizer: adamww}\nbatch_size: 0\nfoo: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"4 problem(s) in {path}")  # the two of optim in one line
    assert "model.imag_size: unknown key. Did you mean 'image_size'?" in message
    assert "optim: lr=-1 must be positive" in message
    assert "optimizer='adamww' is not a timm optimizer. Did you mean 'adamw'" in message
    assert "batch_size=0 must be >= 1" in message
    assert "foo: unknown key" in message
    with pytest.raises(ConfigError, match="is not key=value"):
        load_config(path, ["optim.lr"])
    with pytest.raises(
        ConfigError, match=r"stages\[0\].objective: 'align' is a VSENet objective; 'frn_resnet18' is not a VSENet"
    ):
        load_config(None, ["model.name=frn_resnet18", "stages=[{name: a, objective: align}]"])


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(config):
    loaded = load_config(config)
    assert loaded.model.name in visnet_hf.list_models()
    for stage in loaded.stages:
        visnet_hf.constraints.SoftTuning.build(list(stage.constraints))


def test_community_plugin_installs_and_trains_next_to_built_ins(tiny_parquet, tmp_path, monkeypatch, capsys):
    """Install the example third-party package, then use its constraint by name: no change to visnet_hf."""
    from visnet_hf.constraints import plugins

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "plugins" / "visnet-confidence-penalty"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    monkeypatch.syspath_prepend(str(target))  # as if installed: entry points are read from sys.path
    plugins.refresh()
    try:
        capsys.readouterr()
        assert cli(["plugins", "list"]) == 0
        assert "confidence_penalty     visnet-confidence-penalty 0.2.0      loads" in capsys.readouterr().out

        config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: [tensorboard]\n")
        constraints = (
            "stages.0.constraints=[{name: label_deviation, weight: 0.5}, {name: filter_values, weight: 0.01},"
            " {name: confidence_penalty, weight: 0.2, params: {threshold: 1.0}}]"
        )
        train_main(["--config", str(config), "stages.0.epochs=1", constraints])
        printed = capsys.readouterr().out
        assert "label_deviation" in printed and "confidence_penalty" in printed
        history = json.loads((tmp_path / "run" / "eval_results.json").read_text())["history"]
        assert {"train_label_deviation", "train_filter_values", "train_confidence_penalty"} <= set(history[0])
        assert {"train/label_deviation", "train/filter_values", "train/confidence_penalty"} <= set(scalars(tmp_path / "run"))
    finally:
        monkeypatch.undo()
        plugins.refresh()  # later tests see the built-ins alone


def test_zero_shot_evaluation_on_classes_held_out_of_training(tiny_parquet, tiny_text_encoder, tmp_path, capsys):
    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    results = run(config, "stages.0.epochs=1", "data.include_classes=[cat, dog, car]")
    assert results["model"].config.class_names == ["cat", "dog", "car"]
    capsys.readouterr()
    model_dir = str(tmp_path / "run" / "model")
    assert cli(["eval", "--model", model_dir, "--held-out", "--all-classes"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    zero_shot = report["generalised_zero_shot"]
    metrics = json.loads(Path(report["metrics_file"]).read_text())
    assert metrics["class_names"] == ["cat", "dog", "car", "ship"]
    # Held out before filtering: the 24 eval images are the training run's 18 held-out ones plus the 6 'ship' ones.
    assert report["num_examples"] == sum(map(sum, metrics["confusion_matrix"])) == 24
    assert (zero_shot["seen_images"], zero_shot["unseen_images"]) == (18, 6)
    unseen_row = metrics["confusion_matrix"][3]
    assert zero_shot["unseen_accuracy"] == pytest.approx(unseen_row[3] / sum(unseen_row))


@pytest.mark.slow
def test_training_stages_leave_the_models_objective_alone(tiny_parquet, tiny_text_encoder, tmp_path):
    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    stages = "stages=[{name: a, steps: 2, objective: joint}, {name: b, steps: 2, objective: align}]"
    results = train(load_config(config, [stages, "export=false", "checkpoints=false"]))
    assert results["model"].config.objective == "finetune"  # as created: the stages passed theirs per call


@pytest.mark.slow
def test_class_texts_come_from_a_data_column(parquet_with_synonyms, tiny_text_encoder, tmp_path):
    config = write_config(tmp_path, parquet_with_synonyms, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    results = train(
        load_config(config, ["stages.0.epochs=1", "data.class_texts_column=synonyms", "model.overrides.templates=clip7"])
    )
    model = results["model"]
    assert model.config.class_synonyms == [["cat", "puss"], ["dog", "hound"], ["car", "auto"], ["ship"]]
    assert model.config.text_config.templates == list(template_sets()["clip7"])
    expected = TextEncoder(tiny_text_encoder).embed_classes(
        ClassTexts.build(CLASS_NAMES, templates="clip7", synonyms=model.config.class_synonyms)
    )
    torch.testing.assert_close(model.trained_class_embeddings, expected, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_resolution_other_than_the_images(tiny_parquet, tiny_text_encoder, tmp_path):
    """32 px images, a model at 64 px: training resizes, the saved processor and the pipeline give 64 px."""
    from transformers import AutoImageProcessor, pipeline

    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    results = train(load_config(config, ["stages.0.epochs=1", "model.image_size=64", "data.max_train_samples=32"]))
    assert results["model"].config.data_config["input_size"] == [3, 64, 64]
    model_dir = tmp_path / "run" / "model"
    processor = AutoImageProcessor.from_pretrained(model_dir)
    assert processor(generated_images(1, size=32)[0], return_tensors="pt")["pixel_values"].shape == (1, 3, 64, 64)
    predictions = pipeline("image-classification", model=str(model_dir))(generated_images(1, size=32)[0])
    assert {p["label"] for p in predictions} <= set(CLASS_NAMES)
