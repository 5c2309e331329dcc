"""Sharing: model cards, push (against a recording stand-in for the Hub), Hub-id loading from a cache,
offline bundles, timm export, and templates inside the wheel."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results

import visnet_hf
from tests.helpers import CLASS_NAMES, RecordingApi, write_config
from visnet_hf import hub
from visnet_hf.cli import main as cli
from visnet_hf.training import ConfigError, load_config
from visnet_hf.training import main as train_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run(tiny_parquet, tiny_text_encoder, tmp_path_factory) -> Path:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    tmp_path = tmp_path_factory.mktemp("hub_run")
    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    train_main(["--config", str(config), "stages.0.epochs=1", "stages.0.constraints=[{name: label_deviation, weight: 0.5}]"])
    AcceleratorState._reset_state()
    return tmp_path / "run" / "model"


@pytest.mark.slow
def test_card_from_a_real_run_passes_huggingface_hub_validation(trained_run, tmp_path, monkeypatch):
    text = (trained_run / "README.md").read_text()
    card = ModelCard(text)  # parses and validates the YAML metadata
    data = card.data
    assert isinstance(data, ModelCardData)
    assert data.library_name == "transformers" and data.pipeline_tag == "image-classification"
    assert data.license == "apache-2.0" and "visnet_hf" in data.tags and "resnet18" in data.tags
    _, results = model_index_to_eval_results(data.to_dict()["model-index"])
    metrics = json.loads((trained_run / "eval_results.json").read_text())
    assert [r.metric_value for r in results] == [round(metrics["accuracy"], 4), round(metrics["top5_accuracy"], 4)]
    assert all(r.task_type == "image-classification" for r in results)
    assert "cat, dog, car, ship" in text
    assert "`label_deviation` (weight 0.5), stage `train`" in text
    assert "## Limitations" in text and "name: vsenet_resnet18" in text

    # The usage snippet runs as written.
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})


@pytest.mark.slow
def test_card_command_renders_the_same_card(trained_run, tmp_path):
    original = (trained_run / "README.md").read_text()
    copy = tmp_path / "model"
    import shutil

    shutil.copytree(trained_run, copy)
    (copy / "README.md").unlink()
    assert cli(["card", str(copy), "--repo-id", str(trained_run)]) == 0
    assert (copy / "README.md").read_text() == original


@pytest.mark.slow
def test_card_of_a_zero_shot_vocabulary_names_the_head_and_calibration(trained_run, tmp_path):
    model = visnet_hf.VSENetForImageClassification.from_pretrained(trained_run)
    model.set_classes([*CLASS_NAMES, "zebra"])
    model.config.zero_shot_config.head, model.config.zero_shot_config.calibration = "conse", 1.5
    model.save_pretrained(tmp_path)
    text = str(hub.render_card(tmp_path))
    assert "Trained on (4): cat, dog, car, ship. The names not among them" in text
    assert "scored by the `conse` zero-shot head; `zero_shot_config.calibration` = 1.5" in text
    assert "New names are scored by the `conse` zero-shot head." in text
    model = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path, zero_shot_config={"prototype_weight": 2.0})
    model.fit_prototypes([{"image_features": torch.rand(8, model.config.num_features), "labels": torch.arange(8) % 4}])
    model.save_pretrained(tmp_path)
    text = str(hub.render_card(tmp_path))
    assert "zero-shot head, plus 2.0 times their visual-prototype score" in text and "at sharpness 5.0" in text
    assert "WordNet" not in text
    model.config.zero_shot_config.prototype_hierarchy = 2.5
    model.save_pretrained(tmp_path)
    assert "at sharpness 5.0, plus 2.5 times the Wu-Palmer similarity of their WordNet senses)" in str(hub.render_card(tmp_path))
    model.config.zero_shot_config.prototype_glosses = 5.0  # the card reads the config; scoring would need the glosses
    model.config.save_pretrained(tmp_path)
    assert "WordNet senses, plus 5.0 times the similarity of their WordNet definitions)" in str(hub.render_card(tmp_path))
    assert f'pipeline("zero-shot-image-classification", model="{tmp_path}")' in text


@pytest.mark.slow
def test_push_uploads_weights_config_processor_card_and_training_config(trained_run, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(trained_run, folder)
    api = RecordingApi()
    with pytest.warns(UserWarning, match="a path on this machine"):  # the tiny encoder is a local folder
        uploaded = hub.push_model(folder, "someone/vsenet-tiny", private=True, api=api)
    expected = [
        "README.md",
        "config.json",
        "eval_results.json",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",  # the text encoder's tokenizer: what the zero-shot pipeline loads
        "tokenizer_config.json",
        "training_config.yaml",
    ]
    assert uploaded == expected
    assert api.calls[0] == (
        "create_repo",
        {"repo_id": "someone/vsenet-tiny", "private": True, "exist_ok": True, "repo_type": "model"},
    )
    name, upload = api.calls[1]
    assert name == "upload_folder" and upload["repo_id"] == "someone/vsenet-tiny" and upload["files"] == expected
    card = (folder / "README.md").read_text()
    assert 'pipeline("image-classification", model="someone/vsenet-tiny")' in card
    assert ModelCard(card).data.model_name == "vsenet-tiny"


@pytest.mark.slow
def test_a_push_warns_when_the_text_encoder_is_a_path_of_this_machine(trained_run, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(trained_run, folder)  # trained with the tiny encoder, given as a local path
    with pytest.warns(
        UserWarning, match=r"the text encoder is recorded as '.*tiny_bert.*', a path on this machine.*visnet bundle-text-encoder"
    ):
        hub.push_model(folder, "someone/vsenet-tiny", api=RecordingApi())
    assert cli(["bundle-text-encoder", str(folder)]) == 0
    assert hub.unportable_text_encoder(folder) is None  # bundled: it switches classes anywhere


@pytest.mark.slow
def test_the_default_text_encoder_is_recorded_by_its_hub_id(minilm_path, tiny_parquet, tmp_path):
    """Not the site-packages path of the PyPI copy, which means nothing on another machine."""
    from visnet_hf.training.setup import build_model

    config = load_config(None, ["model.name=vsenet_resnet18", "model.image_size=32", f"data.path={tiny_parquet}"])
    model = build_model(config, ["cat", "dog"])
    assert model.config.text_config.encoder == "sentence-transformers/all-MiniLM-L6-v2"
    model.save_pretrained(tmp_path / "model")
    assert (
        json.loads((tmp_path / "model" / "config.json").read_text())["text_config"]["encoder"]
        == "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert "`sentence-transformers/all-MiniLM-L6-v2`" in str(hub.render_card(tmp_path / "model"))
    assert hub.unportable_text_encoder(tmp_path / "model") is None
    # Offline, the id resolves to the PyPI copy: switching classes works without the Hub.
    reloaded = visnet_hf.VSENetForImageClassification.from_pretrained(tmp_path / "model")
    reloaded.set_classes(["zebra", "ox", "cat"])
    assert reloaded.config.text_config.encoder == "sentence-transformers/all-MiniLM-L6-v2"
    assert reloaded(torch.randn(1, 3, 32, 32)).logits.shape == (1, 3)


@pytest.mark.slow
def test_training_pushes_when_the_config_says_so(tiny_parquet, tmp_path, monkeypatch):
    api = RecordingApi()
    monkeypatch.setattr(hub.sharing, "make_api", lambda: api)
    config = write_config(
        tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\nhub: {push: true, repo_id: someone/frn-tiny}\n"
    )
    with pytest.raises(ConfigError, match="hub.push: the Hub cannot be reached: HF_HUB_OFFLINE is set"):
        load_config(config)  # caught before the first step, not after the training it would waste
    monkeypatch.setattr(hub.sharing, "push_problem", lambda: None)  # the recording API stands in for the Hub
    results = train_main(["--config", str(config), "stages.0.epochs=1"])
    assert [call[0] for call in api.calls] == ["create_repo", "upload_folder"]
    assert "model.safetensors" in results["pushed_files"] and "README.md" in results["pushed_files"]
    with pytest.raises(ConfigError, match="hub.push needs hub.repo_id"):
        load_config(config, ["hub.repo_id=null"])


@pytest.mark.slow
def test_hub_id_and_local_folder_load_through_one_path(trained_run, tmp_path):
    """A Hub id resolves to the local cache offline, through the same from_pretrained as a folder."""
    snapshot = tmp_path / "cache" / "models--someone--vsenet-tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        (snapshot / name).write_bytes((trained_run / name).read_bytes())
    (tmp_path / "cache" / "models--someone--vsenet-tiny" / "refs").mkdir()
    (tmp_path / "cache" / "models--someone--vsenet-tiny" / "refs" / "main").write_text("0" * 40)
    from transformers import AutoModelForImageClassification

    by_id = visnet_hf.VSENetForImageClassification.from_pretrained("someone/vsenet-tiny", cache_dir=tmp_path / "cache")
    by_auto = AutoModelForImageClassification.from_pretrained("someone/vsenet-tiny", cache_dir=tmp_path / "cache")
    local = visnet_hf.VSENetForImageClassification.from_pretrained(trained_run)
    pixel_values = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(by_id(pixel_values).logits, local(pixel_values).logits)
    torch.testing.assert_close(by_auto(pixel_values).logits, local(pixel_values).logits)
    with pytest.raises(ValueError, match="holds a model of type 'vsenet', not 'frn'"):
        visnet_hf.FRNForImageClassification.from_pretrained("someone/vsenet-tiny", cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_offline_bundle_switches_classes_without_the_original_encoder(trained_run, tmp_path):
    import shutil

    folder = tmp_path / "bundle"
    shutil.copytree(trained_run, folder)
    assert cli(["bundle-text-encoder", str(folder)]) == 0
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["encoder"] = "/nowhere/on/this/machine"  # as on another machine
    (folder / "config.json").write_text(json.dumps(config))
    code = (
        "import visnet_hf, torch;"
        f"m = visnet_hf.VSENetForImageClassification.from_pretrained({str(folder)!r});"
        "m.set_classes(['zebra', 'ox']); print(m(torch.randn(1, 3, 32, 32)).logits.shape, m.config.id2label)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""}, check=True
    )
    assert "torch.Size([1, 2]) {0: 'zebra', 1: 'ox'}" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vsenet", "frn"])
def test_backbone_exports_to_timm_format(family, trained_run, tiny_text_encoder, tmp_path):
    import timm

    if family == "vsenet":
        folder = trained_run
    else:
        folder = tmp_path / "frn"
        visnet_hf.create_model("frn_resnet18", num_labels=3, image_size=32).save_pretrained(folder)
    from transformers import AutoModelForImageClassification

    saved = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert cli(["export-timm", str(folder), str(tmp_path / "timm")]) == 0
    weights = tmp_path / "timm" / "model.safetensors"
    assert not (tmp_path / "timm" / "pytorch_model.bin").exists()
    num_classes = {"num_classes": 0} if family == "vsenet" else {}
    backbone = timm.create_model(
        "resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)), **num_classes
    ).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(pixel_values), saved.backbone(pixel_values))
    assert json.loads((tmp_path / "timm" / "config.json").read_text())["architecture"] == "resnet18"


@pytest.mark.slow
def test_templates_metrics_and_plugins_ship_inside_the_wheel(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("visnet_hf-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "visnet_hf/hub_cards/vsenet.md",
        "visnet_hf/hub_cards/frn.md",
        "visnet_hf/metrics/accuracy/accuracy.py",
        "visnet_hf/metrics/confusion_matrix/confusion_matrix.py",
        "visnet_plugins/grey_values.py",
    ):
        assert expected in names, expected
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[visnet_hf.constraints]" in text and "semantic_structure" in text and "visnet = visnet_hf.cli:main" in text
