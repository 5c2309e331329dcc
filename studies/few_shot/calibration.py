"""Few-shot study: how far the new names' scores are from probabilities, and what one temperature would fix.

The pipelines show the softmax of a VSENet's logits. For names it did not train on, those logits are a sum of
experts (the semantic cosine, ConSE and the visual prototypes, as ``head`` and ``prototype_weight`` sum them, plus
the photo weight x sqrt(n) x the photos' cosine), so the softmax is far surer than the model is right. This study
measures, on the same fold models and 75 episodes as BENCHMARKS.md 5e (and the names alone, k = 0), the
log-loss, the mean top score and the expected calibration error of the shipped scores divided by a temperature T:
each fixed T of a grid, and the rule T = (the names' scores' weight) + c x (the photo weight) x sqrt(k), which
divides the sum of experts back toward their mean. Dividing by T changes no ranking, so no top-1 figure moves.
Neither unseen_dev nor the seen test split is looked at. The scores measured are the experts' sum
(``score_temperature`` 1); the library divides them by the rule with c = 0.5, chosen here.

    python studies/few_shot/calibration.py --work-dir /tmp/fs   # 3 minutes with bench_fewshot's fold models there
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # the benchmark's setup (a script, not the library)

from _common import machine_text, write_study  # noqa: E402
from bench_fewshot import KS, WAYS, example_set, fold_draws, fold_models, shipped_photo_settings, study_command  # noqa: E402

TEMPERATURES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0)
RULE_C = (0.25, 0.5, 1.0)
SHIPPED_C = 0.5  # VSENetZeroShotConfig.temperature_for's rule
BINS = 15


def main() -> None:
    started = time.perf_counter()
    work, config, seen, folds = study_command(__doc__.splitlines()[0])
    ks = (0, *KS)
    # per k, per episode: (logits, labels, the temperature the rule gives for each c)
    episodes: dict[int, list[tuple[torch.Tensor, torch.Tensor, dict[float, float]]]] = {k: [] for k in ks}
    for fold in fold_models(config, work, folds, seen):
        # the shipped scoring (the config's photo settings, whatever the fold folders wrote out)
        settings = replace(
            fold.model.config.zero_shot_config, **shipped_photo_settings(config), score_temperature=1.0
        )  # the experts' sum, before the library's temperature: the one this study measures
        names_weight, photo_weight = settings.names_weight(), settings.photo_weight()
        for draw in fold_draws(fold):
            photos = example_set(fold.side, draw.support, draw.support_labels, WAYS)
            for k, vocabulary in ((draw.k, replace(draw.vocabulary, examples=photos)), (0, draw.vocabulary)):
                with torch.no_grad():
                    logits = fold.model(image_features=draw.queries, vocabulary=vocabulary, zero_shot_config=settings).logits
                rule = {c: names_weight + c * photo_weight * k**0.5 for c in RULE_C}
                episodes[k].append((logits.float(), draw.query_labels, rule))
        print(f"[fold {fold.index}] done ({time.perf_counter() - started:.0f}s)", flush=True)
    rows = {str(k): by_k(episodes[k]) for k in ks}
    result = {"episodes": {str(k): len(episodes[k]) for k in ks}, "rows": rows, "seconds": time.perf_counter() - started}
    write_study("tinyimagenet_fewshot_calibration", result, HERE, "CALIBRATION.md", report)


def figures(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Log-loss, mean top score, expected calibration error (15 equal-width bins) and top-1 of one episode."""
    probabilities = logits.softmax(-1)
    confidence, prediction = probabilities.max(-1)
    correct = (prediction == labels).float()
    error = 0.0
    for low in torch.linspace(0, 1, BINS + 1)[:-1].tolist():
        in_bin = (confidence > low) & (confidence <= low + 1 / BINS)
        if in_bin.any():
            error += float(in_bin.float().mean() * (confidence[in_bin].mean() - correct[in_bin].mean()).abs())
    return {
        "log_loss": float(F.cross_entropy(logits, labels)),
        "top_score": float(confidence.mean()),
        "ece": error,
        "top1": float(correct.mean()),
    }


def mean(per_episode: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.mean(entry[key] for entry in per_episode) for key in per_episode[0]}


def by_k(episodes) -> dict:
    fixed = {str(t): mean([figures(logits / t, labels) for logits, labels, _ in episodes]) for t in TEMPERATURES}
    rule = {}
    for c in RULE_C:
        temperatures = [temperatures_by_c[c] for _, _, temperatures_by_c in episodes]
        rule[str(c)] = {
            "temperature": statistics.mean(temperatures),
            **mean([figures(logits / t, labels) for (logits, labels, _), t in zip(episodes, temperatures, strict=True)]),
        }
    best = min(fixed, key=lambda t: fixed[t]["log_loss"])
    return {"fixed": fixed, "best_fixed": best, "rule": rule, "shipped_against_none": shipped_gain(episodes)}


def shipped_gain(episodes) -> dict[str, float]:
    """The library's rule (c = 0.5) against no temperature, paired over the same episodes: the log-loss it saves
    and the calibration error it removes (mean ± standard error)."""
    saved, removed = [], []
    for logits, labels, temperatures_by_c in episodes:
        plain, tempered = figures(logits, labels), figures(logits / temperatures_by_c[SHIPPED_C], labels)
        saved.append(plain["log_loss"] - tempered["log_loss"])
        removed.append(plain["ece"] - tempered["ece"])
    se = lambda values: statistics.stdev(values) / len(values) ** 0.5  # noqa: E731
    return {
        "log_loss_saved": statistics.mean(saved),
        "log_loss_se": se(saved),
        "ece_removed": statistics.mean(removed),
        "ece_se": se(removed),
    }


def report(result: dict) -> str:
    rows = result["rows"]
    lines = [
        "# Few-shot study: the new names' scores as probabilities",
        "",
        f"Command: `{result['command']}` ({result['seconds'] / 60:.1f} min). Machine: {machine_text(result['machine'])}.",
        "",
        "The shipped scores of new names (BENCHMARKS.md 5e's fold models and episodes; k = 0 is the names alone, on",
        "every episode's queries) divided by a temperature T: log-loss, mean top score (what the pipelines show beside",
        "the top label), expected calibration error (15 bins) and top-1, which no T changes. Episodes per k: "
        + ", ".join(f"k = {k}: {n}" for k, n in result["episodes"].items())
        + ". Nothing here looks at unseen_dev or the seen test split.",
        "",
        "| k | top-1 | T = 1: log-loss | top score | ECE | best fixed T | log-loss | top score | ECE |"
        + "".join(f" rule c = {c}: T | log-loss | ECE |" for c in rows["0"]["rule"]),
        "|---|---|---|---|---|---|---|---|---|" + "---|---|---|" * len(rows["0"]["rule"]),
    ]
    for k, entry in rows.items():
        plain, best = entry["fixed"]["1.0"], entry["fixed"][entry["best_fixed"]]
        cells = [
            k,
            f"{100 * plain['top1']:.1f}",
            f"{plain['log_loss']:.2f}",
            f"{100 * plain['top_score']:.1f}",
            f"{100 * plain['ece']:.1f}",
            f"{float(entry['best_fixed']):g}",
            f"{best['log_loss']:.2f}",
            f"{100 * best['top_score']:.1f}",
            f"{100 * best['ece']:.1f}",
        ]
        for rule in entry["rule"].values():
            cells += [f"{rule['temperature']:.1f}", f"{rule['log_loss']:.2f}", f"{100 * rule['ece']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"The library's rule (c = {SHIPPED_C}, `zero_shot_config.score_temperature` unset) against no temperature, paired "
        "over the same episodes (mean ± standard error):",
        "",
        "| k | episodes | log-loss saved | calibration error removed (points) |",
        "|---|---|---|---|",
    ]
    for k, entry in rows.items():
        gain = entry["shipped_against_none"]
        lines.append(
            f"| {k} | {result['episodes'][k]} | {gain['log_loss_saved']:.2f} ± {gain['log_loss_se']:.2f} "
            f"| {100 * gain['ece_removed']:.1f} ± {100 * gain['ece_se']:.1f} |"
        )
    lines += [
        "",
        "The rule: T = the names' scores' weight (`names_weight()`) + c x the photo weight x sqrt(k); the library",
        "divides its scores of names it did not train on by it with c = 0.5 (`temperature_for`), the best log-loss of",
        "the three c at 1 to 16 photos on these episodes. Log-loss by fixed T, for each k:",
        "",
        "| k | " + " | ".join(f"T = {float(t):g}" for t in rows["0"]["fixed"]) + " |",
        "|---|" + "---|" * len(rows["0"]["fixed"]),
    ]
    for k, entry in rows.items():
        lines.append(f"| {k} | " + " | ".join(f"{value['log_loss']:.2f}" for value in entry["fixed"].values()) + " |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
