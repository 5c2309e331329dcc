"""Benchmark 5e on your own model and classes (benchmarks/bench_fewshot_yours.py): the framework's figure is what
`set_classes` gives a user, and the command scores every method on the images it did not draw, says how many, and
leaves out a k that would leave a class nothing to score."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch

import visnet_hf
from tests.helpers import CLASS_NAMES, assert_close32

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

NEW = ["lion", "truck", "boat", "owl"]


@pytest.fixture(scope="module")
def saved_vsenet(tiny_text_encoder, tiny_parquet, tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32
    ).eval()
    images = list(datasets.Dataset.from_parquet(tiny_parquet)["image"])
    model.fit_prototypes([(model.image_processor()(images[:48], return_tensors="pt")["pixel_values"], torch.arange(48) % 4)])
    folder = tmp_path_factory.mktemp("vsenet")
    model.save_pretrained(folder)
    return str(folder)


def new_classes_file(tiny_parquet, path: Path, per_class: list[int]) -> tuple[str, list, list[int]]:
    """The tiny set's images under new names, ``per_class[i]`` images of class i."""
    source = datasets.Dataset.from_parquet(tiny_parquet)
    images, labels = [], []
    for label, count in enumerate(per_class):
        rows = [i for i, value in enumerate(source["label"]) if value == label][:count]
        images += [source[i]["image"] for i in rows]
        labels += [label] * len(rows)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NEW)})
    datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(str(path))
    return str(path), images, labels


def test_the_framework_is_scored_as_set_classes_scores_for_a_user(saved_vsenet, tiny_parquet, tmp_path):
    from bench_fewshot import Side
    from bench_fewshot_yours import episode_logits

    from visnet_hf.models import VSENetForImageClassification
    from visnet_hf.training import load_config

    path, images, labels = new_classes_file(tiny_parquet, tmp_path / "new.parquet", [6, 6, 6, 6])
    model = VSENetForImageClassification.from_pretrained(saved_vsenet).eval()
    side = Side(model, load_config(None, [f"data.path={path}", f"data.feature_cache_dir={tmp_path / 'cache'}"]))
    source = datasets.Dataset.from_parquet(path)
    x, y = side.features(datasets.Dataset.from_dict({"source_index": list(range(24)), "label": labels}), source)
    support = [i for i in range(24) if i % 6 < 2]  # two photos of each class
    queries = [i for i in range(24) if i % 6 >= 2]
    vocabulary = model.vocabulary_for(NEW)
    settings = {"linear probe": {"weight_decay": 0.1}, "Tip-Adapter over DeViSE": {"alpha": 1.0, "beta": 1.0}}
    devise = torch.nn.Linear(x.shape[1], vocabulary.embeddings.shape[1])
    logits = episode_logits(side, devise, vocabulary, x[support], y[support], x[queries], settings)
    assert set(logits) == {"visnet_hf", "linear probe", "Tip-Adapter over DeViSE", "nearest class mean", "zero-shot"}

    model.set_classes(NEW, examples={name: [images[i] for i in support if labels[i] == n] for n, name in enumerate(NEW)})
    pixels = model.image_processor()([images[i] for i in queries], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        assert_close32(logits["visnet_hf"], model(pixel_values=pixels).logits)


def test_the_command_scores_every_method_on_the_images_it_did_not_draw(saved_vsenet, tiny_parquet, tmp_path, monkeypatch, capsys):
    from bench_fewshot_yours import main

    path, _, _ = new_classes_file(tiny_parquet, tmp_path / "new.parquet", [12, 12, 12, 5])
    output = tmp_path / "mine.json"
    command = ["bench_fewshot_yours.py", "--model", saved_vsenet, "--data", path, "--seen-data", tiny_parquet, "--draws", "2"]
    command += ["--cache-dir", str(tmp_path / "cache"), "--output", str(output)]
    monkeypatch.setattr(sys, "argv", [*command, "--example-weights", "-1"])
    with pytest.raises(SystemExit):  # argparse's error: status 2
        main()
    assert "--example-weights must be >= 0" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", [*command, "--example-weights", "0", "8"])
    main()
    result = json.loads(output.read_text())
    assert result["classes"] == 4 and result["fewest_images_per_class"] == 5 and result["left_out_ks"] == [8, 16]
    assert result["images_scored_per_draw"] == {"1": 41 - 4, "2": 41 - 8, "4": 41 - 16}
    by_draw = result["top1_by_draw"]
    assert by_draw["visnet_hf, example_weight 0"] == by_draw["zero-shot"]  # no weight on the photos: the names alone
    assert by_draw["visnet_hf, example_weight 8"] != by_draw["visnet_hf"]  # the model's own weight is 2
    for method, by_k in result["scores"].items():
        assert list(by_k) == ["1", "2", "4"], method
        assert all(0.0 <= value["mean"] <= 1.0 and value["draws"] == 2 for value in by_k.values())
    assert result["reference_settings"]["Tip-Adapter over DeViSE"] == {"alpha": 256.0, "beta": 1.0}  # 5e's, from its folds
    printed = capsys.readouterr().out
    assert "4 classes of" in printed and "37 at k = 1" in printed
    assert "Goals (issue #36): k = 1:" in printed and "Left out: k = 8, 16" in printed
    assert "k = 2: " in printed and "against the best reference at k = 4," in printed
    assert "its goal, the best reference at k = 8, not scored here" in printed  # not judged against k = 4 instead
    assert (
        "Photo weight against the model's own (2, or what each draw's photos choose where that is more), paired over 6 draws: 0: "
        in printed
    )

    one_image, _, _ = new_classes_file(tiny_parquet, tmp_path / "one.parquet", [12, 12, 12, 1])
    monkeypatch.setattr(sys, "argv", [*command[:4], one_image, *command[5:]])
    with pytest.raises(SystemExit, match="has 1 image"):
        main()
    missing = [*command[:6], "gone/train.parquet", *command[7:]]  # as a run started elsewhere names its data
    monkeypatch.setattr(sys, "argv", missing)
    with pytest.raises(SystemExit, match=r"gone/train.parquet' does not exist \(a relative path .*--seen-data\.$"):
        main()
    monkeypatch.setattr(sys, "argv", command[:5])  # no --seen-data, and a model saved by save_pretrained alone
    with pytest.raises(SystemExit, match="no training_config.yaml.*--seen-data"):
        main()


def test_a_model_that_cannot_be_loaded_is_a_one_line_error(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fewshot_yours.py"
    command = [sys.executable, str(script), "--model", str(tmp_path / "no_model"), "--data", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("bench_fewshot_yours: error: Cannot load a model from")
    assert "Traceback" not in done.stderr


def test_another_photo_weight_is_advised_only_where_it_wins_by_two_standard_errors():
    from bench_fewshot_yours import weight_choice

    own = {"1": [0.50, 0.52, 0.48], "2": [0.60, 0.61, 0.59]}
    result = {
        "framework_settings": {"photo_weight": 8.0, "example_weight": 8.0, "names_weight": 6.0},
        "example_weights": [2.0, 4.0],
        "top1_by_draw": {
            "visnet_hf": own,
            "visnet_hf, example_weight 2": {k: [v + 0.02 for v in values] for k, values in own.items()},  # every draw
            "visnet_hf, example_weight 4": {"1": [0.70, 0.42, 0.48], "2": [0.70, 0.55, 0.59]},  # more on average, noisily
        },
    }
    said = weight_choice(result)
    assert "against the model's own (8), paired over 6 draws: 2: +2.0 ± 0.0 points, 4: +2.3 ± 4.5 points" in said
    assert "`visnet extend --example-weight 2`" in said
    result["example_weights"] = [4.0]
    assert weight_choice(result).endswith("None beats the model's own by two standard errors: keep it.")
    result["framework_settings"]["example_weight"] = None  # the default: the names' own weight, or the photos' choice
    assert "the model's own (6, or what each draw's photos choose where that is more)" in weight_choice(result)
    result["example_weights"] = [2.0]
    result["top1_by_draw"] = {name: {"1": by_k["1"][:1]} for name, by_k in result["top1_by_draw"].items()}  # one draw
    assert weight_choice(result).endswith("Too few draws to choose by (--draws): keep the model's own.")
