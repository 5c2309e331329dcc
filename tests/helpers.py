"""What tests share besides fixtures: paths of the real data, generated images, configs, comparisons."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CIFAR10 = SHARED / "data" / "cifar10" / "train.parquet"
TINY_IMAGENET = SHARED / "data" / "tiny-imagenet"
EFFICIENTNET_WEIGHTS = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"

CLASS_NAMES = ["cat", "dog", "car", "ship"]


def generated_images(count: int, size: int = 32, seed: int = 0) -> list[Image.Image]:
    """Images with structure (a coloured square on a gradient), not just noise."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        y, x = np.mgrid[0:size, 0:size]
        array = np.stack([x, y, (x + y) / 2], axis=-1) * (255 / size)
        top, left = rng.integers(0, size // 2, 2)
        array[top : top + size // 3, left : left + size // 3] = rng.integers(0, 256, 3)
        images.append(Image.fromarray(array.astype(np.uint8)))
    return images


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a served page or a process group)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def one_thread():
    """Train in this process with one thread, as a subprocess with ``OMP_NUM_THREADS=1`` does: the same
    sums in the same order, so that the weights of the two can be compared exactly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def write_config(tmp_path: Path, data_path: str, model: str, text_encoder: str | None = None, extra: str = "") -> Path:
    """A small training config: 2 epochs of SGD on ``data_path`` at 32x32, a quarter held out."""
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
output_dir: {tmp_path / "run"}
log_every_steps: 2
{extra}"""
    )
    return path


# Each class's WordNet sense in the tiny data sets ("cat": the Egyptian cat, to differ from the sense guessed).
WNIDS = {"cat": "n02124075", "dog": "n02084071", "car": "n02958343", "ship": "n04194289"}


def with_column(parquet: str, path: Path, column: str, values: dict[str, str | None]) -> str:
    """``parquet`` with a ``column`` holding, for each example, its class's entry of ``values``."""
    import datasets

    dataset = datasets.Dataset.from_parquet(parquet)
    names = dataset.features["label"].names
    dataset.add_column(column, [values[names[label]] for label in dataset["label"]]).to_parquet(str(path))
    return str(path)


def assert_close32(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Two float32 computations of one quantity along different kernel paths (batched differently, or by
    hand): equal up to float32 rounding on any x86 CPU. Vectorised kernels (AVX2, AVX-512) sum in other
    orders; over a few thousand terms of unit size that moves a result by up to ~1e-4 of its magnitude,
    so the tolerance is 1e-3 of the largest magnitude compared (a real mistake moves scores by far more).
    Where a test can, it computes in float64 instead (``model.double()``) and compares tightly."""
    scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, atol=1e-3 * scale, rtol=1e-3)


class RecordingApi:
    """A stand-in for huggingface_hub.HfApi that records what would go out."""

    def __init__(self):
        self.calls = []

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {**kwargs, "files": files}))


def launch_two_processes(config: Path, *overrides: str, pythonpath: str | None = None):
    """``accelerate launch --multi_gpu --num_processes 2 train.py --config CONFIG ...`` on the CPU (gloo)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")])
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
        str(ROOT / "train.py"),
        "--config",
        str(config),
        *overrides,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
