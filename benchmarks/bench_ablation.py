"""Benchmark 5b-ablation: the shipped zero-shot config with each knob removed in turn, on the folds.

Every row trains the shipped config (configs/vsenet_tinyimagenet_zeroshot.yaml) with one knob switched off on
the 5 folds of bench_zeroshot.py (120 seen classes trained, 30 held out and scored by name, a development split
for seen accuracy); the seen test split and unseen_dev are never read. A knob that only changes scoring is removed
from the shipped fold models' scores, with no retraining. Each knob's effect is the paired difference
from the shipped config, fold by fold, with its standard error over the folds. A knob holds (:func:`holds`) when
removing it costs more than two standard errors of pseudo-unseen zero-shot top-1 (the config's purpose), or of the
generalised harmonic mean (the trained classes kept beside the new names, ``keep_trained``) while zero-shot top-1
gains no two standard errors from the removal. The knobs that do not
hold alone are then removed together, one at a time, the least useful first, each removal kept only while the config
without all of them so far still does not cost two standard errors against the shipped one (:func:`backward`):
those removals leave the shipped config. Only the knobs of :data:`KNOBS` the config has are ablated.

Cost beside each: what it does to inference (the backbone passes per image), the lines of code that implement it,
and what a user must provide or wait for.

    python benchmarks/bench_ablation.py                   # 16 minutes on 2 cores with each view set's features cached (27 without)
    python benchmarks/bench_ablation.py --backward-only   # the joint removal alone, from the rows already measured

That run writes results/tinyimagenet_ablation_shipped.json. The first ablation, whose removals the shipped config
made, was of the config the search had chosen (results/tinyimagenet_ablation.json), which ``--config`` reproduces:

    git show b346a28:configs/vsenet_tinyimagenet_zeroshot.yaml > /tmp/searched.yaml
    python benchmarks/bench_ablation.py --config /tmp/searched.yaml                   # or --backward-only beside it
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time
from pathlib import Path

from _common import RESULTS, write_result
from bench_zeroshot import CONFIG, DEV_FRACTION, base_config

ZS = "model.overrides.zero_shot_config"
# name: (what removes it: training overrides, or zero-shot settings the shipped fold models are scored with; its cost
# to a user; the code that implements it)
KNOBS = {
    "test-time flip": (
        ["model.overrides.test_time_flip=false"],
        "2x the backbone passes at inference (and in the feature cache)",
        ["visnet_hf.models._base:VisnetPreTrainedModel.backbone_features"],
    ),
    "test-time zoom": (
        ["model.overrides.test_time_zoom=null"],
        "2x the backbone passes at inference (and in the feature cache)",
        ["visnet_hf.models._base:centre_zoom", "visnet_hf.models._base:VisnetPreTrainedModel.backbone_features"],
    ),
    "WordNet descriptions": (
        ["model.overrides.text_config.describe=null"],
        "one more text per class to embed; a sense per name (given by the data, or guessed)",
        ["visnet_hf.wordnet:fill_descriptions", "visnet_hf.wordnet:describe", "visnet_hf.wordnet:sense_of"],
    ),
    "visual prototypes": (
        [f"{ZS}.prototype_weight=0.0"],
        "a frozen backbone while training (centroids fitted once); no streaming",
        ["visnet_hf.zero_shot.prototypes:VisualPrototypes", "visnet_hf.zero_shot.prototypes:borrowing_logits"],
    ),
    "WordNet hierarchy in the prototypes": (
        [f"{ZS}.prototype_hierarchy=0.0"],
        "a WordNet sense per name (given, or guessed)",
        ["visnet_hf.wordnet:hypernym_path", "visnet_hf.wordnet:wu_palmer", "visnet_hf.wordnet:hierarchy_similarity"],
    ),
    "WordNet glosses in the prototypes": (
        [f"{ZS}.prototype_glosses=0.0"],
        "the definitions embedded once per vocabulary (a text encoder at set_classes)",
        ["visnet_hf.zero_shot.prototypes:gloss_similarity", "visnet_hf.zero_shot.vocabulary:gloss_matrix"],
    ),
    "class centring": (
        ["model.overrides.text_config.centering=false"],
        "none (one subtraction)",
        ["visnet_hf.models.vsenet.text_side:TextSide.scored_embeddings"],
    ),
    "ConSE in the zero-shot head (both -> semantic)": (
        {"head": "semantic"},  # a scoring setting: the shipped fold models scored without it (no retraining)
        "none (a matrix product)",
        ["visnet_hf.zero_shot.conse:conse_logits"],
    ),
    "the backbone's ImageNet labels (ConSE over its classifier)": (
        {"backbone_label_weight": 0.0},  # a scoring setting too
        "the backbone's pretrained classifier kept and trained frozen; its labels embedded once at creation "
        "(1,000: about 90 s with all-mpnet-base-v2 on 2 cores)",
        [
            "visnet_hf.zero_shot.backbone_labels:BackboneLabels",
            "visnet_hf.zero_shot.backbone_labels:pretrained_labels",
            "visnet_hf.models.vsenet.modeling_vsenet:_backbone_label_state",
        ],
    ),
    "each name's classifier borrowed from the backbone's classifier": (
        {"backbone_classifier_weight": 0.0},  # a scoring setting too
        "the backbone's pretrained classifier kept, as for its labels (above); a product with its 1,000 rows per image",
        ["visnet_hf.zero_shot.backbone_labels:BackboneLabels.borrowed"],
    ),
    "WordNet hierarchy in the borrowed classifiers": (
        {"backbone_classifier_hierarchy": 0.0},  # a scoring setting too
        "a WordNet sense per name (given, or guessed)",
        ["visnet_hf.zero_shot.backbone_labels:BackboneLabels.lenders", "visnet_hf.wordnet:hierarchy_similarity"],
    ),
    "softmax head for the trained classes (both -> semantic)": (
        ["model.overrides.head=semantic"],
        "none (a linear layer)",
        ["visnet_hf.models.vsenet.modeling_vsenet:VSENetForImageClassification._combine"],
    ),
}


def removal_overrides(removal: list[str] | dict) -> list[str]:
    """A knob's removal as training overrides (a scoring knob's zero-shot settings under ``zero_shot_config``)."""
    return [f"{ZS}.{key}={value}" for key, value in removal.items()] if isinstance(removal, dict) else removal


def model_settings(config) -> dict:
    """The VSENet config a training config's model overrides make, defaults filled in: two configs that spell the
    same model differently (a default given or left out) compare equal."""
    from visnet_hf.models._factory import config_fields
    from visnet_hf.models.vsenet import VSENetConfig

    fields = config_fields(VSENetConfig)
    return VSENetConfig(**{k: v for k, v in config.model.overrides.items() if k in fields}).to_dict()


def present_knobs(config) -> dict:
    """The knobs the config has: removing one changes the model it trains or how it scores (a config ablated
    before has already lost some)."""
    from visnet_hf.training import override

    shipped = model_settings(config)
    return {name: knob for name, knob in KNOBS.items() if model_settings(override(config, removal_overrides(knob[0]))) != shipped}


def holds(row: dict) -> str | None:
    """On which figure a knob holds (``None``: neither): zero-shot top-1, or else the generalised harmonic mean where
    removing the knob does not gain two standard errors of zero-shot top-1. The second figure was added when the
    ablation of the shipped config found the first knob whose two figures disagree (ConSE in the zero-shot head, beside
    the backbone's labels); it changes none of the first ablation's verdicts (results/tinyimagenet_ablation.json)."""
    zero_shot, generalised = row["zero_shot_top1"], row["gzsl_harmonic_mean"]
    if zero_shot["gain"] > 2 * zero_shot["gain_se"]:
        return "zero-shot top-1"
    if generalised["gain"] > 2 * generalised["gain_se"] and zero_shot["gain"] > -2 * zero_shot["gain_se"]:
        return "generalised harmonic mean"
    return None


def lines_of(paths: list[str]) -> int:
    """Lines of the named functions and classes (``module:qualified.name``), docstrings included."""
    import importlib

    total = 0
    for path in paths:
        module, name = path.split(":")
        target = importlib.import_module(module)
        for part in name.split("."):
            target = getattr(target, part)
        total += len(inspect.getsourcelines(target)[0])
    return total


def standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")


def backward(config, folds, result: dict, log) -> dict:
    """The knobs that did not hold alone, removed together one at a time, the least useful first; each removal is
    kept only while the config without every knob removed so far still does not cost two standard errors of
    pseudo-unseen zero-shot top-1 against the shipped one. Two knobs that stand in for each other each look useless
    removed alone; this step does not remove both on that evidence."""
    from visnet_hf.training.selection import cross_validate

    shipped = {
        s["fold"]: s["zero_shot_top1"]
        for s in result["cv"]["scores"]
        if s["candidate"] == "shipped" and s["variant"] == "as trained"
    }
    order = sorted((row for row in result["rows"] if not row["holds"]), key=lambda row: row["zero_shot_top1"]["gain"])
    removed: list[str] = []
    steps = []
    for row in order:
        trial = [*removed, *row["overrides"]]
        table = cross_validate(config, {f"without {row['knob']} too": trial}, folds, log=log, dev_fraction=DEV_FRACTION)
        scores = {s.fold: s.zero_shot_top1 for s in table.scores}
        differences = [shipped[fold] - scores[fold] for fold in sorted(scores)]
        gain, se = statistics.mean(differences), standard_error(differences)
        leaves = not gain > 2 * se
        if leaves:
            removed = trial
        steps.append(
            {
                "knob": row["knob"],
                "overrides": trial,
                "zero_shot_top1": statistics.mean(scores.values()),
                "gain": gain,
                "gain_se": se,
                "per_fold": differences,
                "leaves": leaves,
            }
        )
        log(f"[backward] without {row['knob']} and those before: {gain:+.4f} ± {se:.4f}: {'leaves' if leaves else 'stays'}")
    return {"steps": steps, "overrides": removed, "left": [step["knob"] for step in steps if step["leaves"]]}


def main() -> None:
    from visnet_hf.data import load_splits
    from visnet_hf.training.selection import cross_validate, pseudo_unseen_folds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--config", default=CONFIG, help="the config to ablate (default: the shipped zero-shot config)")
    parser.add_argument(
        "--backward-only", action="store_true", help="only the joint removal, from the knobs' rows already in the results"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    config = base_config(args.cache_dir, args.config)
    folds = pseudo_unseen_folds(load_splits(config.data).class_names, args.folds, 30, seed=0)
    log = lambda line: print(line, flush=True)  # noqa: E731
    result_name = "tinyimagenet_ablation_shipped" if Path(args.config).resolve() == CONFIG.resolve() else "tinyimagenet_ablation"
    if args.backward_only:
        result = json.loads((RESULTS / f"{result_name}.json").read_text())
        result["backward"] = {**backward(config, folds, result, log), "command": "python bench_ablation.py --backward-only"}
        write_result(result_name, {k: v for k, v in result.items() if k != "benchmark"})  # the rows' command kept
        return
    knobs = present_knobs(config)
    log(f"[ablation] knobs the config has: {', '.join(knobs)}; not: {', '.join(k for k in KNOBS if k not in knobs) or 'none'}")
    candidates = {"shipped": [], **{f"without {name}": o for name, (o, _, _) in knobs.items() if isinstance(o, list)}}
    variants = {"as trained": {}, **{f"without {name}": o for name, (o, _, _) in knobs.items() if isinstance(o, dict)}}
    table = cross_validate(config, candidates, folds, variants=variants, log=log, dev_fraction=DEV_FRACTION)

    def scores(candidate: str, variant: str = "as trained") -> dict:
        return {s.fold: s for s in table.scores if s.candidate == candidate and s.variant == variant}

    shipped = scores("shipped")
    rows = []
    for name, (overrides, cost, code) in knobs.items():
        removed = scores("shipped", f"without {name}") if isinstance(overrides, dict) else scores(f"without {name}")
        row = {
            "knob": name,
            "overrides": removal_overrides(overrides),
            "cost": cost,
            "lines_of_code": lines_of(code),
            "code": code,
        }
        for metric in ("zero_shot_top1", "seen_accuracy", "gzsl_harmonic_mean"):
            differences = [getattr(shipped[f], metric) - getattr(removed[f], metric) for f in shipped]
            row[metric] = {
                "without": statistics.mean(getattr(removed[f], metric) for f in removed),
                "gain": statistics.mean(differences),
                "gain_se": standard_error(differences),
                "per_fold": differences,
            }
        row["holds_on"] = holds(row)
        row["holds"] = row["holds_on"] is not None
        rows.append(row)
        print(f"[ablation] {name}: {row['zero_shot_top1']['gain']:+.4f} ± {row['zero_shot_top1']['gain_se']:.4f}", flush=True)
    result = {
        "folds": args.folds,
        "dev_fraction": DEV_FRACTION,
        "shipped": {
            metric: statistics.mean(getattr(s, metric) for s in shipped.values())
            for metric in ("zero_shot_top1", "seen_accuracy", "gzsl_harmonic_mean")
        },
        "rows": rows,
        "cv": table.to_dict(),
    }
    result["backward"] = backward(config, folds, result, log)
    write_result(result_name, {**result, "seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
