"""The benchmark report: BENCHMARKS.md is what the stored results render, the interval for a ratio of zero-shot
scores over resampled classes, and what the zero-shot benchmark's references read and how they are fitted."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import report
from report import ratio_interval

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_md_is_what_the_stored_results_render(monkeypatch):
    monkeypatch.chdir(ROOT)  # the shipped configs' relative paths, as run_all.py --report runs it
    diff = report.stale_lines(report.render(), (ROOT / "BENCHMARKS.md").read_text())
    assert not diff, "BENCHMARKS.md differs from `python benchmarks/report.py`'s rendering:\n" + "\n".join(diff[:40])


@pytest.mark.parametrize(
    ("script", "result", "page"),
    [
        ("few_shot/borrowed_by_class.py", "tinyimagenet_fewshot_borrowed_by_class", "BORROWED_BY_CLASS.md"),
        ("few_shot/calibration.py", "tinyimagenet_fewshot_calibration", "CALIBRATION.md"),
        ("few_shot/fitted_weight.py", "fewshot_fitted_weight", "FITTED_WEIGHT.md"),
        ("few_shot/imagenet_head.py", "tinyimagenet_fewshot_imagenet_head", "IMAGENET_HEAD.md"),
        ("few_shot/label_prototypes.py", "tinyimagenet_fewshot_label_prototypes", "LABEL_PROTOTYPES.md"),
        ("few_shot/methods.py", "tinyimagenet_fewshot_methods", "REPORT.md"),
        ("few_shot/mirrored_photos.py", "fewshot_mirrored_photos", "MIRRORED_PHOTOS.md"),
        ("few_shot/offset.py", "tinyimagenet_fewshot_offset", "OFFSET.md"),
        ("few_shot/other_domain.py", "cifar10_fewshot_other_domain", "OTHER_DOMAIN.md"),
        ("few_shot/partial.py", "tinyimagenet_fewshot_partial", "PARTIAL.md"),
        ("few_shot/photo_variants.py", "tinyimagenet_fewshot_photo_variants", "PHOTO_VARIANTS.md"),
        ("few_shot/weights.py", "tinyimagenet_fewshot_weights", "WEIGHTS.md"),
        ("few_shot/wordnet_lenders.py", "tinyimagenet_fewshot_wordnet_lenders", "WORDNET_LENDERS.md"),
        ("zero_shot/report.py", None, "REPORT.md"),
    ],
)
def test_each_study_page_is_what_its_stored_results_render(monkeypatch, script, result, page):
    """A study's page is written from its results file by the study's own ``report`` (zero-shot: one page, all)."""
    import importlib.util

    path = ROOT / "studies" / script
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"study_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = (
        module.render() if result is None else module.report(json.loads((path.parent / "results" / f"{result}.json").read_text()))
    )
    diff = report.stale_lines(rendered, (path.parent / page).read_text())
    assert not diff, f"{page} differs from what {script} renders from its results:\n" + "\n".join(diff[:40])


def test_check_names_a_figure_edited_by_hand(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(ROOT)
    page = (ROOT / "BENCHMARKS.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| ") and "%" in line)
    edited_row = row.replace("%", "1%", 1)  # one figure of a table, changed by hand
    (tmp_path / "BENCHMARKS.md").write_text(page.replace(row, edited_row, 1))
    monkeypatch.setattr(report, "OUTPUT", tmp_path / "BENCHMARKS.md")
    assert report.main(["--check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"-{edited_row}" in out and f"+{row}" in out
    assert out[-1].startswith("BENCHMARKS.md is not what benchmarks/results/ render: run `python benchmarks/report.py`")
    assert (tmp_path / "BENCHMARKS.md").read_text() != page  # --check writes nothing
    (tmp_path / "BENCHMARKS.md").write_text(page)
    assert report.main(["--check"]) == 0


def test_interval_is_a_point_when_every_class_has_the_same_ratio():
    assert ratio_interval([6, 12, 3], [4, 8, 2]) == (1.5, 1.5)


def test_interval_brackets_the_measured_ratio_and_widens_with_disagreeing_classes():
    agree = ratio_interval([26, 24, 25, 25] * 5, [20, 20, 21, 19] * 5)
    disagree = ratio_interval([40, 10, 30, 20] * 5, [10, 30, 20, 20] * 5)
    assert agree[0] <= 100 / 80 <= agree[1]
    assert disagree[0] <= 1.25 <= disagree[1]
    assert disagree[1] - disagree[0] > 3 * (agree[1] - agree[0])
    assert ratio_interval([40, 10, 30, 20] * 5, [10, 30, 20, 20] * 5) == disagree  # seeded: the report is reproducible


def test_interval_refuses_mismatched_classes():
    with pytest.raises(ValueError, match="same classes"):
        ratio_interval([1, 2], [1])


def test_the_references_read_what_the_model_reads_its_test_time_views_included(tiny_parquet, tiny_text_encoder, tmp_path):
    import torch
    from bench_zeroshot import feature_access

    import visnet_hf
    from tests.helpers import CLASS_NAMES, assert_close32
    from visnet_hf.data import build_transforms, load_splits
    from visnet_hf.data.config import DataConfig
    from visnet_hf.training import load_config

    config = load_config(None, [f"data.path={tiny_parquet}", f"data.feature_cache_dir={tmp_path}"])
    model = visnet_hf.create_model(
        "vsenet_resnet18",
        class_names=CLASS_NAMES,
        text_encoder=tiny_text_encoder,
        image_size=32,
        test_time_flip=True,
        test_time_zoom=0.75,
    ).eval()
    splits = load_splits(DataConfig(path=tiny_parquet))
    features, _ = feature_access(config, model)
    cached, _ = features(splits, "train")
    _, transform = build_transforms(model.config.data_config, config.data.augment)
    pixels = torch.stack([transform(splits.train_source[int(i)]["image"].convert("RGB")) for i in splits.train["source_index"]])
    with torch.no_grad():
        alone = model.backbone.forward_head(model.backbone.forward_features(pixels), pre_logits=True)
        assert_close32(cached, model.backbone_features(pixels)[1])  # the model's four views averaged (batched otherwise)
        assert not torch.allclose(cached, alone, atol=1e-4)  # not each image alone
    assert model.config.test_time_flip and model.config.test_time_zoom == 0.75  # the model is left as it was


def test_every_reference_setting_fits_and_scores_new_names():
    import torch
    from references import PROBE_GRID, ZERO_SHOT_GRIDS, fit_probe, stratified_split

    generator = torch.Generator().manual_seed(0)
    classes = torch.nn.functional.normalize(torch.randn(6, 8, generator=generator), dim=-1)
    labels = torch.arange(60) % 4
    features = torch.randn(60, 16, generator=generator) + torch.nn.functional.pad(classes[labels], (0, 8)) * 4
    for family, grid in ZERO_SHOT_GRIDS.items():
        for name, fit in grid.items():
            score = fit(features[:, :16], labels, classes[:4])
            new = score(features[:5], classes[4:])
            assert new.shape == (5, 2) and torch.isfinite(new).all(), f"{family} / {name}"
    keep, held = stratified_split(labels, 0.25)
    assert len(held) == 4 * 4 and set(labels[held].tolist()) == {0, 1, 2, 3} and not set(keep.tolist()) & set(held.tolist())
    probe = fit_probe(features[keep], labels[keep], 4, **PROBE_GRID[0])
    shifted = fit_probe(features[keep] * 3 + 100, labels[keep], 4, **PROBE_GRID[0])  # standardised: the same probe
    with torch.no_grad():
        torch.testing.assert_close(shifted(features[held] * 3 + 100), probe(features[held]), atol=1e-4, rtol=1e-4)


def test_a_rescored_run_names_the_search_it_started_from_and_what_the_ablation_removed():
    from report import _rescored

    cv = {"zero_shot_top1": 0.4, "seen_accuracy": 0.6}
    searched = {"overrides": ["model.overrides.test_time_flip=true"], "cv": cv}
    assert _rescored({"cv": cv}) == []  # a search run: its own tables say it all
    text = " ".join(_rescored({"searched": searched, "ablated": ["model.overrides.test_time_flip=false"]}))
    assert "model.overrides.test_time_flip=true" in text and "model.overrides.test_time_flip=false" in text
    assert "40.0%" in text
