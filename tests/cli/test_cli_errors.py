"""A command-line user's mistakes end in `visnet: error: <what to fix>` and exit status 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import visnet_hf
from tests.helpers import generated_images, write_config
from visnet_hf.cli import main as cli
from visnet_hf.errors import ConfigError
from visnet_hf.training import main as train_main

ROOT = Path(__file__).resolve().parents[2]


def error_of(command, argv, capsys) -> str:
    """Run a CLI entry point in-process; assert it exits with status 2 and return its error message
    (from the ``prog: error:`` line on; progress bars before it are not part of it)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        command(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if ": error: " in line)
    return "\n".join(lines[start:]) + "\n"


@pytest.fixture(scope="module")
def saved_frn(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("frn")
    visnet_hf.create_model("frn_resnet18", num_labels=2, id2label={0: "a", 1: "b"}, image_size=32).save_pretrained(folder)
    return str(folder)


@pytest.mark.slow
def test_a_misspelled_config_key_in_train_py(tiny_parquet, tmp_path):
    """Through the real entry point, as `accelerate launch train.py` runs it."""
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\nlog_evry_steps: 5\n")
    command = [sys.executable, str(ROOT / "train.py"), "--config", str(config)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "VISNET_DEBUG": ""})
    assert completed.returncode == 2
    assert completed.stderr.startswith(
        f"train.py: error: 1 problem(s) in {config}:\n  - log_evry_steps: unknown key. Did you mean 'log_every_steps'"
    )
    assert "Traceback" not in completed.stderr
    with pytest.raises(ConfigError, match="log_evry_steps: unknown key"):  # --debug: the exception itself
        train_main(["--config", str(config), "--debug"])


@pytest.mark.slow
def test_an_unknown_constraint_is_a_config_problem(tiny_parquet, tmp_path, capsys):
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\n")
    err = error_of(train_main, ["--config", str(config), "stages.0.constraints=[{name: label_deviaton}]", "batch_size=0"], capsys)
    assert err.startswith(f"train.py: error: 2 problem(s) in {config}:")
    assert "stages[0].constraints[0].name: Unknown constraint 'label_deviaton'. Did you mean 'label_deviation'?" in err
    assert "batch_size=0 must be >= 1" in err
    assert not (tmp_path / "run").exists()  # reported before anything was read or written


def test_a_model_that_is_neither_a_folder_nor_a_hub_id(capsys, tmp_path):
    image = tmp_path / "cat.png"
    generated_images(1)[0].save(image)
    err = error_of(cli, ["predict", "--model", str(tmp_path / "no" / "model"), str(image)], capsys)
    assert err.startswith(f"visnet: error: Cannot load a model from '{tmp_path / 'no' / 'model'}': there is no such folder.")
    assert "Give a folder written by save_pretrained" in err and "Repo id must" not in err  # not the Hub's id rules


def test_a_model_given_without_its_flag_is_named_with_the_spelling_meant(capsys, tmp_path):
    err = error_of(cli, ["eval", "outputs/run/model", "--data", "photos"], capsys)
    assert (
        err
        == "visnet: error: unrecognized arguments: outputs/run/model (visnet eval takes the model as --model outputs/run/model)\n"
    )
    err = error_of(cli, ["export", "--model", "m", "--output-dir", str(tmp_path), "--opset", "17"], capsys)
    assert err == "visnet: error: unrecognized arguments: --opset 17\n"  # a flag no command has: argparse's own words


def test_missing_data_and_image_files(saved_frn, tiny_parquet, capsys, tmp_path):
    err = error_of(cli, ["eval", "--model", saved_frn, "--data", str(tmp_path / "test.parquet")], capsys)
    assert err == f"visnet: error: Parquet file '{tmp_path / 'test.parquet'}' does not exist.\n"
    err = error_of(cli, ["predict", "--model", saved_frn, str(tmp_path / "photo.jpg")], capsys)
    assert err == f"visnet: error: {tmp_path / 'photo.jpg'} does not exist; give image files or folders of images.\n"
    err = error_of(cli, ["eval", "--model", saved_frn], capsys)
    assert "Give the data to evaluate (--data), or --held-out" in err
    err = error_of(cli, ["eval", "--model", saved_frn, "--data", tiny_parquet, "--class-synset-column", "wnid"], capsys)
    assert err.startswith("visnet: error: data.class_synset_column='wnid' is not a column of the")
    err = error_of(cli, ["eval", "--model", saved_frn, "--held-out"], capsys)
    assert "has no training_config.yaml, so the run's held-out split is unknown" in err
    err = error_of(cli, ["zero-shot", "--model", saved_frn, "--classes", "zebra", str(tmp_path)], capsys)
    suffixes = ".avif, .bmp, .gif, .heic, .heif, .jfif, .jpe, .jpeg, .jpg, .png, .tif, .tiff, .webp"  # what a folder takes
    assert err == f"visnet: error: No image files ({suffixes}) in {tmp_path}.\n"
    generated_images(1)[0].save(tmp_path / "cat.png")
    err = error_of(cli, ["zero-shot", "--model", saved_frn, "--classes", "zebra", str(tmp_path)], capsys)
    assert "is not a VSENet; only a VSENet can switch to new class names" in err


def test_debug_shows_the_traceback(saved_frn, tmp_path):
    from visnet_hf.errors import DataError

    with pytest.raises(DataError, match="does not exist"):
        cli(["--debug", "eval", "--model", saved_frn, "--data", str(tmp_path / "test.parquet")])


def test_quickstart_without_the_shared_data_names_both_places(tmp_path, monkeypatch, capsys):
    """A clone without ../shared and no network: one line naming the local file and the Hub dataset."""
    monkeypatch.chdir(tmp_path)
    err = error_of(train_main, ["--config", str(ROOT / "configs" / "quickstart.yaml")], capsys)
    assert err.count("\n") == 1
    working = f"(a relative path is read from the working directory, {tmp_path})"
    assert f"Parquet file '../shared/data/cifar10/train.parquet' does not exist {working}." in err
    assert "The Hub dataset 'uoft-cs/cifar10' cannot be loaded" in err
    assert "Point data.path at a local copy (e.g. data.path=/path/to/train.parquet)" in err


def test_predict_reads_photos_from_the_web_and_names_one_it_cannot_download(saved_frn, web_folder, capsys):
    """`visnet predict https://.../photo.jpg` answers the photo as a local file's; a URL that gives nothing gets an
    error line, the others are answered, and the status is 1."""
    folder, url = web_folder
    generated_images(1)[0].save(folder / "cat.png")
    assert cli(["predict", "--model", saved_frn, str(folder / "cat.png")]) == 0
    local = json.loads(capsys.readouterr().out)["predictions"]
    assert cli(["predict", "--model", saved_frn, f"{url}/cat.png", f"{url}/dog.png"]) == 1
    out, err = capsys.readouterr()
    answered, missing = (json.loads(line) for line in out.splitlines())
    assert answered == {"file": f"{url}/cat.png", "predictions": local}
    assert missing["error"].startswith(f"{url}/dog.png cannot be downloaded: FileNotFoundError")
    assert err.endswith(f"visnet: error: 1 of 2 images could not be read: {url}/dog.png\n")
