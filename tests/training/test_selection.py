"""The selection protocol: defaults chosen on pseudo-unseen folds of the training classes, never on the classes scored."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import CLASS_NAMES, write_config
from visnet_hf.cli import main as cli
from visnet_hf.errors import ConfigError
from visnet_hf.training import load_config, selection, train
from visnet_hf.training.selection import TIE, best_choice, pseudo_unseen_folds


def test_a_tie_goes_to_the_earlier_candidate():
    # Fold means of the same counts of images right differ by the float32 rounding of each fold's accuracy
    # (these two are a run's weights 2.5 and 5 of the WordNet knob).
    assert best_choice({"off": 0.3457777798175812, "2.5": 0.3622222185134888, "5": 0.36222222447395325}) == "2.5"
    assert best_choice({"off": 0.34, "2.5": 0.36, "5": 0.3601}) == "5"  # one image of 10,000 more is no tie
    assert best_choice({"off": 0.5, "on": 0.5 + TIE / 2, "more": 0.4}) == "off"  # the same images right, up to rounding
    assert best_choice({"off": 0.5, "on": 0.5 + 10 * TIE}) == "on"
    assert best_choice({"only": 0.1}) == "only"


def test_pseudo_unseen_folds():
    names = [f"class{i}" for i in range(150)]
    folds = pseudo_unseen_folds(names, folds=5, per_fold=30, seed=0)
    held = [n for fold in folds for n in fold.held_out]
    assert len(held) == len(set(held)) == 150
    assert all(set(fold.trained) == set(names) - set(fold.held_out) for fold in folds)
    assert pseudo_unseen_folds(names, 5, 30, seed=0) == folds and pseudo_unseen_folds(names, 5, 30, seed=1) != folds
    with pytest.raises(ConfigError, match="6 folds of 30 pseudo-unseen classes need more than 180 classes"):
        pseudo_unseen_folds(names, folds=6, per_fold=30)


@pytest.mark.slow
def test_cross_validation_trains_without_the_held_out_classes(tiny_parquet, tiny_text_encoder, tmp_path, monkeypatch):
    from visnet_hf.training import setup as training_setup

    config = load_config(
        write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder),
        [
            "stages.0.epochs=1",
            "optim.freeze=backbone",
            "data.cache_features=true",
            f"data.feature_cache_dir={tmp_path / 'cache'}",
        ],
    )
    trained_on = []
    original = training_setup.build_model
    monkeypatch.setattr(
        training_setup,
        "build_model",
        lambda cfg, names, *a, **k: (
            trained_on.append((list(names), cfg.model.overrides.get("projection"))) or original(cfg, names, *a, **k)
        ),
    )
    fitted_on = []  # the images each offset is fitted on
    fit_offset = selection.fit_offset
    monkeypatch.setattr(selection, "fit_offset", lambda *a, **k: fitted_on.append(fit_offset(*a, **k)) or fitted_on[-1])
    folds = selection.pseudo_unseen_folds(CLASS_NAMES, folds=2, per_fold=2, seed=0)
    table = selection.cross_validate(
        config,
        {"a": [], "b": ["model.overrides.projection=mlp"]},
        folds,
        variants={"both": {}, "semantic": {"head": "semantic"}},
        log=lambda line: None,
    )
    # Every candidate on every fold, never on a held-out class.
    assert trained_on == [(list(f.trained), None) for f in folds] + [(list(f.trained), "mlp") for f in folds]
    # Every image of the 2 held-out classes (48); the held-out quarter of the 2 trained ones (12).
    assert len(table.scores) == 2 * 2 * 2 and {(s.unseen_images, s.seen_images) for s in table.scores} == {(48, 12)}
    means = {choice: table.mean(*choice, "zero_shot_top1") for choice in table.choices()}
    assert table.best() == max(means, key=means.get)
    offsets = sorted(s.calibration for s in table.scores if (s.candidate, s.variant) == ("a", "both"))
    assert table.calibration("a", "both") == pytest.approx(sum(offsets) / 2)  # the median of two
    # The offset beside names with photos: 4 photos of each held-out class, fitted on their other 40 images and the 12.
    assert [result["images"] for result in fitted_on] == [60, 52] * 8
    photo_offsets = sorted(s.example_calibration for s in table.scores if (s.candidate, s.variant) == ("a", "both"))
    assert table.example_calibration("a", "both") == pytest.approx(sum(photo_offsets) / 2)


def test_cross_validation_on_a_development_split_leaves_the_test_part_alone(tiny_parquet, tiny_text_encoder, tmp_path):
    config = load_config(
        write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder),
        ["stages.0.epochs=1", "optim.freeze=backbone", "data.cache_features=true", f"data.feature_cache_dir={tmp_path / 'c'}"],
    )
    folds = selection.pseudo_unseen_folds(CLASS_NAMES, folds=1, per_fold=2, seed=0)
    table = selection.cross_validate(config, {"a": []}, folds, log=lambda line: None, dev_fraction=0.25)
    # 96 images, a quarter held out for test: 72 in the training part, 18 per class. The 2 held-out classes
    # are scored on their 36 training-part images; the 2 trained ones on a quarter of theirs (9).
    assert {(s.unseen_images, s.seen_images) for s in table.scores} == {(36, 9)}
    test_part = set(selection.load_splits(config.data, seed=config.seed).eval["source_index"])
    data = selection.fold_data(replace(config.data, dev_fraction=0.25, include_classes=list(folds[0].trained)), folds[0])
    scored = [set(split["source_index"]) for split in (data.seen.eval, data.unseen.train, data.unseen.eval)]
    assert not set().union(*scored) & test_part


@pytest.mark.slow
def test_calibrate_command(tiny_parquet, tiny_text_encoder, tmp_path, capsys):
    """--offset sets it; --data fits it on images of trained and new classes; --pseudo-unseen needs no new-class image."""
    config = write_config(tmp_path, tiny_parquet, "vsenet_resnet18", tiny_text_encoder, extra="trackers: []\n")
    train(
        load_config(
            config,
            [
                "stages.0.epochs=1",
                "data.include_classes=[cat, dog, car]",
                "optim.freeze=backbone",
                "data.cache_features=true",
                f"data.feature_cache_dir={tmp_path / 'cache'}",
            ],
        )
    )
    model_dir = str(tmp_path / "run" / "model")
    assert cli(["calibrate", "--model", model_dir, "--offset", "1.5"]) == 0
    assert json.loads((Path(model_dir) / "config.json").read_text())["zero_shot_config"]["calibration"] == 1.5

    capsys.readouterr()
    assert cli(["calibrate", "--model", model_dir, "--data", tiny_parquet, "--held-out", "--val-fraction", "0.25"]) == 0
    fitted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fitted["images"] == 24 and fitted["method"].startswith("fitted on a stratified 25% held out")
    saved = json.loads((Path(model_dir) / "config.json").read_text())
    assert saved["zero_shot_config"]["calibration"] == pytest.approx(fitted["calibration"])
    assert saved["class_names"] == ["cat", "dog", "car"]
    assert "calibration" in (Path(model_dir) / "README.md").read_text().lower()

    assert cli(["calibrate", "--model", model_dir, "--pseudo-unseen", "1", "--folds", "2"]) == 0
    pseudo = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(pseudo["fold_offsets"]) == 2 and pseudo["calibration"] == pytest.approx(sum(pseudo["fold_offsets"]) / 2)
    # and the offset beside names with photos, fitted on the same folds with photos of the held-out classes
    assert pseudo["example_calibration"] == pytest.approx(sum(pseudo["example_fold_offsets"]) / 2)
    settings = json.loads((Path(model_dir) / "config.json").read_text())["zero_shot_config"]
    assert settings["example_calibration"] == pytest.approx(pseudo["example_calibration"])
    assert settings["calibration"] == pytest.approx(pseudo["calibration"])
    assert json.loads((Path(model_dir) / "calibration.json").read_text())["method"].startswith("median over 2 folds")
    with pytest.raises(SystemExit):
        cli(["calibrate", "--model", model_dir])  # one of the three is required
