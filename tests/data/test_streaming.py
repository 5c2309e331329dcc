"""Streaming: shards split across processes, webdataset tars, steps instead of epochs, exact resume mid-stream."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import generated_images, launch_two_processes, one_thread, write_config
from visnet_hf.data import DataConfig
from visnet_hf.data.streaming import load_streams
from visnet_hf.errors import ConfigError, DataError
from visnet_hf.training import load_config, train
from visnet_hf.training.checkpoints import latest_checkpoint

pytestmark = pytest.mark.slow  # every test here trains, or starts a process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def parquet_shards(tiny_parquet, tmp_path_factory) -> tuple[list[str], str]:
    """The tiny 4-class set as 8 training shards of 9 images and one eval file of 24."""
    folder = tmp_path_factory.mktemp("shards")
    parts = datasets.Dataset.from_parquet(tiny_parquet).train_test_split(test_size=0.25, seed=0, stratify_by_column="label")
    shards = []
    for index in range(8):
        path = folder / f"train-{index:05d}.parquet"
        parts["train"].shard(num_shards=8, index=index, contiguous=True).to_parquet(str(path))
        shards.append(str(path))
    parts["test"].to_parquet(str(folder / "eval.parquet"))
    return shards, str(folder / "eval.parquet")


def _write(tmp_path: Path, files: str, eval_file: str, extra: str) -> Path:
    path = write_config(tmp_path, "unused", "frn_resnet18", extra=f"trackers: []\n{extra}")
    text = path.read_text().replace(
        "  path: unused\n", f"  path: [{files}]\n  eval_path: {eval_file}\n  streaming: true\n  shuffle_buffer: 16\n"
    )
    text = text.replace("stages:\n  - name: train\n    epochs: 2\n", "stages:\n  - name: train\n    steps: 8\n")
    path.write_text(text.replace("batch_size: 16", "batch_size: 8"))
    return path


def ids(stream) -> list[int]:
    return [zlib.crc32(row["image"]["bytes"]) for row in stream.cast_column("image", datasets.Image(decode=False))]


def test_each_process_streams_its_own_shards(parquet_shards):
    shards, eval_file = parquet_shards
    config = DataConfig(path=shards, eval_path=eval_file, streaming=True)
    everything = sorted(ids(load_streams(config).train))
    parts = [ids(load_streams(config, rank=rank, world_size=2).train) for rank in (0, 1)]
    assert len(everything) == 72 and sorted(parts[0] + parts[1]) == everything
    assert not set(parts[0]) & set(parts[1]) and len(parts[0]) == len(parts[1]) == 36  # 4 whole shards each
    assert load_streams(config).class_names == ["cat", "dog", "car", "ship"]


def test_a_stream_needs_an_eval_split_class_names_and_steps(parquet_shards, tmp_path):
    shards, eval_file = parquet_shards
    with pytest.raises(DataError, match="data.streaming needs an eval split"):
        load_streams(DataConfig(path=shards, streaming=True))
    plain = tmp_path / "plain.parquet"
    datasets.Dataset.from_dict({"image": [], "label": []}).to_parquet(str(plain))
    with pytest.raises(DataError, match="has no class names .* give data.class_names"):
        load_streams(DataConfig(path=str(plain), eval_path=str(plain), streaming=True))
    config = _write(tmp_path, ", ".join(shards), eval_file, "")
    with pytest.raises(ValueError, match=r"stages\[0\] is counted in epochs, but the data is a stream"):
        train(load_config(config, ["stages=[{name: a, epochs: 1}]"]))
    with pytest.raises(ConfigError, match="cache_features needs the whole dataset"):
        load_config(config, ["data.cache_features=true"])


def test_a_streamed_image_folder_reads_classes_as_a_loaded_one_does(tmp_path):
    """Each class is the folder under the split folder, its images at any depth beneath it, and each process gets its
    own part of them."""
    images = iter(generated_images(6))
    for relative in ["train/lion/images/a.png", "train/lion/b.png", "train/truck/images/c.png", "train/truck/d.png"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        next(images).save(tmp_path / relative)
    for relative in ["validation/lion/e.png", "validation/truck/x/f.png"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        next(images).save(tmp_path / relative)
    config = DataConfig(path=str(tmp_path), streaming=True, eval_split="validation")
    streams = load_streams(config)
    assert streams.class_names == ["lion", "truck"]
    assert [row["label"] for row in streams.train] == [0, 0, 1, 1] and [row["label"] for row in streams.eval] == [0, 1]
    parts = [[row["image"].size for row in load_streams(config, rank, 2).train] for rank in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == 2


def test_a_saved_dataset_streams_as_it_loads(tmp_path):
    """A ``DatasetDict`` written by ``save_to_disk`` streams its splits, the same rows as loading them, in parts."""
    import datasets

    from visnet_hf.data import load_splits

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["lion", "truck"])})
    rows = {"image": generated_images(6), "label": [0, 1, 0, 1, 0, 1]}
    table = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict(train=table.select(range(4)), validation=table.select([4, 5])).save_to_disk(tmp_path / "saved")
    config = DataConfig(path=str(tmp_path / "saved"), streaming=True, eval_split="validation")
    streams = load_streams(config)
    loaded = load_splits(DataConfig(path=str(tmp_path / "saved"), eval_split="validation"))
    assert streams.class_names == loaded.class_names == ["lion", "truck"]
    assert [row["label"] for row in streams.train] == loaded.train["label"] == [0, 1, 0, 1]
    assert [row["label"] for row in streams.eval] == loaded.eval["label"] == [0, 1]
    assert [len(list(load_streams(config, rank, 2).train)) for rank in (0, 1)] == [2, 2]
    with pytest.raises(ValueError, match="takes its eval split from its own splits"):
        DataConfig(path=str(tmp_path / "saved"), streaming=True, eval_path=str(tmp_path / "saved"))


def test_streaming_trains_in_steps_and_evaluates_on_every_eval_image(parquet_shards, tmp_path):
    shards, eval_file = parquet_shards
    results = train(load_config(_write(tmp_path, ", ".join(shards), eval_file, "eval_every_steps: 4\n")))
    assert results["state"]["counter"]["step"] == 8
    history = results["state"]["history"]
    assert [h["step"] for h in history] == [4, 8]  # every 4 steps; the last one is also the stage's end
    assert all(h["eval_images"] == 24 for h in history)
    assert json.loads((tmp_path / "run" / "eval_results.json").read_text())["num_examples"] == 24


def webdataset_tars(folder: Path, images, labels, shards: int) -> list[str]:
    paths = []
    for shard in range(shards):
        path = folder / f"shard-{shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for index in range(shard, len(images), shards):
                for suffix, payload in (("png", _png(images[index])), ("cls", str(labels[index]).encode())):
                    info = tarfile.TarInfo(f"{index:06d}.{suffix}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        paths.append(str(path))
    return paths


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_webdataset_source_of_real_images(tiny_parquet, tmp_path):
    source = datasets.Dataset.from_parquet(tiny_parquet)
    images, labels = list(source["image"]), list(source["label"])
    train_tars = webdataset_tars(tmp_path, images[:72], labels[:72], shards=4)
    (tmp_path / "eval").mkdir()
    eval_tars = webdataset_tars(tmp_path / "eval", images[72:], labels[72:], shards=1)
    config = write_config(tmp_path, "unused", "frn_resnet18", extra="trackers: []\n")
    overrides = [
        "data.source=webdataset",
        f"data.path=[{', '.join(train_tars)}]",
        f"data.eval_path={eval_tars[0]}",
        "data.image_column=png",
        "data.label_column=cls",
        "data.class_names=[cat, dog, car, ship]",
        "stages=[{name: train, steps: 4}]",
        "batch_size=8",
    ]
    streamed = train(load_config(config, [*overrides, "data.streaming=true"]))
    assert streamed["state"]["counter"]["step"] == 4 and streamed["final_eval"]["num_examples"] == 24
    mapped = train(load_config(config, [*overrides, "output_dir=" + str(tmp_path / "mapped")]))  # the same tars, map-style
    assert mapped["final_eval"]["num_examples"] == 24


def test_two_processes_stream_disjoint_shards_and_stay_in_step(parquet_shards, tmp_path):
    shards, eval_file = parquet_shards
    config = _write(tmp_path, ", ".join(shards), eval_file, "")
    completed = launch_two_processes(config, "stages=[{name: train, steps: 4}]")
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    first, second = report["run"]["rank_checksums"]
    assert first == second
    assert report["num_examples"] == 24  # each eval image once, gathered from both processes


def test_kill_9_mid_stream_then_resume_ends_like_an_uninterrupted_run(parquet_shards, tmp_path, capsys):
    shards, eval_file = parquet_shards
    extra = "checkpoint_every_steps: 2\nkeep_checkpoints: 10\n"
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference_dir.mkdir(), killed_dir.mkdir()
    overrides = ["stages=[{name: train, steps: 14}]"]  # 9 steps per pass over the 72 images: the stream restarts too
    with one_thread():  # as the subprocess below
        train(
            load_config(_write(reference_dir, ", ".join(shards), eval_file, extra), [*overrides, "checkpoint_every_steps=null"])
        )

    config = _write(killed_dir, ", ".join(shards), eval_file, extra)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "train.py"), "--config", str(config), *overrides]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = killed_dir / "run" / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoints.exists() and [p for p in checkpoints.iterdir() if p.name == "step_00000006"]:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed; make it longer"
    assert latest_checkpoint(killed_dir / "run") is not None
    capsys.readouterr()
    with one_thread():  # resumed in this process: what matters is the kill
        train(load_config(config, overrides), resume=True)
    assert "Resumed from" in capsys.readouterr().out
    expected = load_file(reference_dir / "run" / "model" / "model.safetensors")
    final = load_file(killed_dir / "run" / "model" / "model.safetensors")
    for name, tensor in expected.items():
        torch.testing.assert_close(final[name], tensor, atol=1e-6, rtol=0)
    shutil.rmtree(killed_dir / "run" / "checkpoints")
