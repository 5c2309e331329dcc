"""A user's own photos, end to end by flags alone: a folder of class folders is trained on, evaluated whole and
predicted on, and every mistake is one `visnet: error:` line before any data is read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

import visnet_hf
from tests.cli.test_cli_errors import error_of
from visnet_hf.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photos(tiny_parquet, tmp_path_factory) -> tuple[Path, Path]:
    """``photos/<class>/*.jpg`` to train on (18 of each class) and ``test_photos/<class>/*.jpg`` (6 of each): real
    CIFAR-10 images when the shared data is there, written as JPEG files as a camera would."""
    root = tmp_path_factory.mktemp("own")
    dataset = datasets.Dataset.from_parquet(tiny_parquet)
    names = dataset.features["label"].names
    counts: dict[str, int] = {}
    for image, label in zip(dataset["image"], dataset["label"], strict=True):
        name = names[label]
        counts[name] = counts.get(name, 0) + 1
        folder = root / ("photos" if counts[name] <= 18 else "test_photos") / name
        folder.mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(folder / f"IMG_{counts[name]:04d}.jpg", quality=95)
    return root / "photos", root / "test_photos"


@pytest.fixture(scope="module")
def trained(photos, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("run") / "my_photos"
    flags = ["--data", str(photos[0]), "--model", "frn_resnet18", "--epochs", "2", "--output-dir", str(output)]
    assert cli(["train", *flags, "--image-size", "32", "--batch-size", "16", "trackers=[]"]) == 0
    return output


@pytest.mark.slow
def test_train_by_flags_then_evaluate_the_whole_folder_and_predict(trained, photos, capsys):
    assert (trained / "model" / "model.safetensors").exists()
    config = json.loads((trained / "model" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["car", "cat", "dog", "ship"]

    capsys.readouterr()
    assert cli(["eval", "--model", str(trained / "model"), "--data", str(photos[1])]) == 0  # no --source: a folder
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["num_examples"] == 24  # every image of the folder, none held out
    whole = json.loads(Path(result["metrics_file"]).read_text())["report"]["per_class"]

    # a test folder without one class (the first, so that the folder's own class numbers differ from the model's)
    fewer = photos[1].parent / "test_photos_without_car"
    shutil.copytree(photos[1], fewer, ignore=lambda folder, names: ["car"] if Path(folder) == photos[1] else [])
    assert cli(["eval", "--model", str(trained / "model"), "--data", str(fewer), "--output-dir", str(fewer.parent / "e")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["num_examples"] == 18 and "among the model's 4 classes (the data holds 3 of them)" in result["scored"]
    part = json.loads(Path(result["metrics_file"]).read_text())["report"]["per_class"]
    assert {name: part[name]["recall"] for name in ("cat", "dog", "ship")} == {
        name: whole[name]["recall"] for name in ("cat", "dog", "ship")
    }  # each image scored among the same 4 classes, by its class's name

    # a file whose labels are numbers without names: the numbers are the model's classes
    names = json.loads((trained / "model" / "config.json").read_text())["id2label"]
    rows = [(str(path), int(label)) for label, name in names.items() for path in sorted((photos[1] / name).iterdir())]
    numbers = datasets.Dataset.from_dict({"image": [p for p, _ in rows], "label": [n for _, n in rows]})
    numbers.cast_column("image", datasets.Image()).to_parquet(photos[1].parent / "numbers.parquet")
    assert cli(["eval", "--model", str(trained / "model"), "--data", str(photos[1].parent / "numbers.parquet")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["scored"].endswith("its label numbers as the model's classes") and result["num_examples"] == 24
    per_class = json.loads(Path(result["metrics_file"]).read_text())["report"]["per_class"]
    assert {name: per_class[name]["recall"] for name in whole} == {name: whole[name]["recall"] for name in whole}

    broken = photos[1].parent / "mixed"
    broken.mkdir(exist_ok=True)
    (broken / "good.jpg").write_bytes(next((photos[1] / "cat").iterdir()).read_bytes())
    (broken / "broken.jpg").write_bytes(b"not a jpeg")
    (broken / "._good.jpg").write_bytes(b"macOS's copy of a photo's metadata: hidden, and no photo")
    capsys.readouterr()
    assert cli(["predict", "--model", str(trained / "model"), str(broken)]) == 1  # answered the rest, then exit 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert [Path(row["file"]).name for row in rows if "predictions" in row] == ["good.jpg"]
    assert [Path(row["file"]).name for row in rows if "error" in row] == ["broken.jpg"]
    assert cli(["predict", "--model", str(trained / "model"), str(broken / "good.jpg")]) == 0


@pytest.mark.slow
def test_resume_from_a_checkpoint_path(trained, photos, capsys):
    checkpoints = sorted((trained / "checkpoints").iterdir())
    first = checkpoints[0]
    flags = ["--data", str(photos[0]), "--model", "frn_resnet18", "--epochs", "2", "--output-dir", str(trained)]
    capsys.readouterr()
    assert cli(["train", *flags, "--image-size", "32", "--batch-size", "16", "--resume", str(first), "trackers=[]"]) == 0
    printed = capsys.readouterr().out
    assert (
        "[train 2/2]" in printed
        and "[train 1/2]" not in printed.split("Training on")[-1].split("\n", 1)[1].split("[train 2/2]")[0]
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trackers=[wandbb]"], "trackers: 'wandbb' is not a tracker accelerate knows. Did you mean 'wandb'"),
        (["trackers=[comet_ml]"], "pip install comet_ml"),
        (
            ["model.overrides.drop_rat=0.1"],
            "model.overrides.drop_rat: not a field of FRNConfig nor a keyword of timm's ResNet. Did you mean 'drop_rate'",
        ),
        (["hub.push=true", "hub.repo_id=me/my-model"], "hub.push: the Hub cannot be reached: HF_HUB_OFFLINE is set"),
        (
            ["--pretrained-file", "weights/resnet18.safetensors"],
            "model.pretrained_file='weights/resnet18.safetensors' is not a file (a relative path is read from the working",
        ),
    ],
    ids=["tracker-typo", "tracker-not-installed", "model-keyword", "offline-push", "missing-weights-file"],
)
def test_mistakes_are_one_error_before_any_data_is_read(argv, message, photos, tmp_path, capsys):
    output = tmp_path / "out"
    flags = ["--data", str(photos[0]), "--model", "frn_resnet18", "--epochs", "1", "--output-dir", str(output)]
    err = error_of(cli, ["train", *flags, *argv], capsys)
    assert err.startswith("visnet: error: ") and message in err, err
    assert not output.exists()


def test_a_missing_folder_and_an_unknown_model(tmp_path, capsys, monkeypatch):
    err = error_of(cli, ["train", "--data", str(tmp_path / "nowhere"), "--model", "frn_resnet18", "--epochs", "1"], capsys)
    assert err.startswith("visnet: error: ") and "data.path=" in err and "nowhere' does not exist" in err
    assert "HF_HUB_OFFLINE" not in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a Hub id, offline: said why it was not looked up
    err = error_of(cli, ["train", "--data", "someone/photos", "--model", "frn_resnet18", "--epochs", "1"], capsys)
    assert "data.path='someone/photos' does not exist (with HF_HUB_OFFLINE set, an owner/name" in err and "--source hub" in err
    err = error_of(cli, ["train", "--data", str(tmp_path), "--model", "frn_resnett18", "--epochs", "1"], capsys)
    assert "frn_resnett18" in err and "frn_resnet18" in err  # a suggestion
    assert f"data.path='{tmp_path}' holds no images" in err
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "IMG_0001.jpg").write_bytes(b"")
    err = error_of(cli, ["train", "--data", str(loose), "--model", "frn_resnet18", "--epochs", "1"], capsys)
    assert "holds images but no class folders, so they have no labels; move them into one folder per class" in err
    err = error_of(cli, ["eval", "--model", str(tmp_path / "nothing"), "--data", str(tmp_path)], capsys)
    assert err.startswith("visnet: error: ")


def test_push_offline_is_an_error_not_a_traceback(tmp_path, capsys):
    folder = tmp_path / "model"
    visnet_hf.create_model("frn_resnet18", num_labels=2, image_size=32).save_pretrained(folder)
    err = error_of(cli, ["push", "--model", str(folder), "--repo-id", "me/model"], capsys)
    assert err.startswith("visnet: error: ") and "HF_HUB_OFFLINE" in err


def test_version_and_a_fast_help():
    """The installed `visnet` command (importing visnet_hf as a library registers the Auto classes, which
    needs transformers; the command itself loads only what the subcommand asks for)."""
    visnet = shutil.which("visnet") or str(Path(sys.executable).parent / "visnet")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    version = subprocess.run([visnet, "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.strip() == f"visnet {visnet_hf.__version__}"
    best = float("inf")
    for _ in range(3):  # the fastest of three: a busy CI machine adds noise, not import time
        started = time.perf_counter()
        shown = subprocess.run([visnet, "--help"], capture_output=True, text=True, env=env)
        best = min(best, time.perf_counter() - started)
        assert shown.returncode == 0 and "train" in shown.stdout and "predict" in shown.stdout
    assert best < 1.5, f"visnet --help took {best:.2f} s: a heavy import (torch, timm, transformers) crept into the CLI"
