"""Benchmark 5b-ablation: the shipped zero-shot config with each knob removed in turn, on the folds.

Every row trains the shipped config (configs/vsenet_tinyimagenet_zeroshot.yaml) with one knob switched off on
the 5 folds of bench_zeroshot.py (120 seen classes trained, 30 held out and scored by name, a development split
for seen accuracy); the seen test split and unseen_dev are never read. Each knob's effect is the paired difference
from the shipped config, fold by fold, with its standard error over the folds. A knob holds when removing it
costs more than two standard errors of pseudo-unseen zero-shot top-1 (the config's purpose). The knobs that do not
hold alone are then removed together, one at a time, the least useful first, each removal kept only while the config
without all of them so far still does not cost two standard errors against the shipped one (:func:`backward`):
those removals leave the shipped config.

Cost beside each: what it does to inference (the backbone passes per image), the lines of code that implement it,
and what a user must provide or wait for.

    python benchmarks/bench_ablation.py                   # about 40 minutes on 2 cores (each view set's features cached once)
    python benchmarks/bench_ablation.py --backward-only   # the joint removal alone, from the rows already measured

The shipped config has since lost the knobs this removed; BENCHMARKS.md's figures were measured on the config
the search had chosen, before the ablation, which ``--config`` reproduces:

    git show b346a28:configs/vsenet_tinyimagenet_zeroshot.yaml > /tmp/searched.yaml
    python benchmarks/bench_ablation.py --config /tmp/searched.yaml                   # or --backward-only beside it
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time

from _common import RESULTS, write_result
from bench_zeroshot import CONFIG, DEV_FRACTION, base_config

ZS = "model.overrides.zero_shot_config"
KNOBS = {  # name: (the overrides that remove it, its cost to a user, the code that implements it)
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
        None,  # a scoring setting: the shipped fold models scored without it (no retraining)
        "none (a matrix product)",
        ["visnet_hf.zero_shot.conse:conse_logits"],
    ),
    "softmax head for the trained classes (both -> semantic)": (
        ["model.overrides.head=semantic"],
        "none (a linear layer)",
        ["visnet_hf.models.vsenet.modeling_vsenet:VSENetForImageClassification._combine"],
    ),
}


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
    if args.backward_only:
        result = json.loads((RESULTS / "tinyimagenet_ablation.json").read_text())
        result["backward"] = {**backward(config, folds, result, log), "command": "python bench_ablation.py --backward-only"}
        write_result("tinyimagenet_ablation", {k: v for k, v in result.items() if k != "benchmark"})  # the rows' command kept
        return
    candidates = {"shipped": [], **{f"without {name}": o for name, (o, _, _) in KNOBS.items() if o is not None}}
    variants = {"as trained": {}, "semantic": {"head": "semantic"}}
    table = cross_validate(config, candidates, folds, variants=variants, log=log, dev_fraction=DEV_FRACTION)

    def scores(candidate: str, variant: str = "as trained") -> dict:
        return {s.fold: s for s in table.scores if s.candidate == candidate and s.variant == variant}

    shipped = scores("shipped")
    rows = []
    for name, (overrides, cost, code) in KNOBS.items():
        removed = scores(f"without {name}") if overrides is not None else scores("shipped", "semantic")
        row = {
            "knob": name,
            "overrides": overrides or [f"{ZS}.head=semantic"],
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
        row["holds"] = row["zero_shot_top1"]["gain"] > 2 * row["zero_shot_top1"]["gain_se"]
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
    write_result("tinyimagenet_ablation", {**result, "seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
