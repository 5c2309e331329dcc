"""Few-shot study: names with photos beside names without, and names with more photos than others.

``set_classes(names, examples=...)`` takes photos for some names and not others. A name with photos gets the
photo score (the scaled whitened cosine to its photos' mean, times the photo weight and the square root of their
number) on top of its names' score; a name without has none. On the fold episodes (bench_fewshot's fold models and
draws: 25 pseudo-new classes, k photos each, 75 episodes by k), the photos are taken away from some of the names, or
thinned to fewer for some, and each setting of ``example_threshold`` (the cosine the photos must pass before they
raise a name's score; 0 before this study) scores the same episodes:

- half without: 12 of the 25 names keep no photo;
- one without: 1 of the 25;
- one with: only 1 of the 25 keeps its photos;
- uneven: every name keeps between 1 and k of its k photos (k >= 2).

Top-1 over all the episode's queries (every class has as many), on the queries of names with photos and of those
without, and their harmonic mean; the names alone (zero-shot) and every name with its k photos beside them. The
threshold is chosen on the mean top-1 over the four situations and every k, and paired against none. Only then is
unseen_dev (a development set: the method was developed looking at it) scored, half its names without photos, with the
chosen threshold and with none, on bench_fewshot's final model and its draws of unseen_dev. The seen test split is
not looked at.

    python studies/few_shot/partial.py --work-dir /tmp/fs    # a minute on 2 cores with bench_fewshot's fold models there
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # the benchmark's setup (a script, not the library)

from _common import machine_text, write_study  # noqa: E402
from bench_fewshot import (  # noqa: E402
    DEV_DRAWS,
    KS,
    WAYS,
    Side,
    draw,
    example_set,
    fold_draws,
    fold_models,
    shipped_photo_settings,
    study_command,
)
from bench_zeroshot import DATA  # noqa: E402

THRESHOLDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
SITUATIONS = ("half without", "one without", "one with", "uneven")
REFERENCES = ("names alone", "every name with k photos")


def thinned(photos, situation: str, k: int, support, support_labels, generator: torch.Generator):
    """The episode's photos as ``situation`` leaves them, and which names keep some."""
    if situation == "uneven":
        keep = torch.randint(1, k + 1, (WAYS,), generator=generator)  # each name keeps its first n photos
        order = torch.cat([(support_labels == name).nonzero().flatten() for name in range(WAYS)])
        rank = torch.cat([torch.arange(int((support_labels == name).sum())) for name in range(WAYS)])
        kept = order[rank < keep[support_labels[order]]]
        return example_set(None, support[kept], support_labels[kept], WAYS), torch.ones(WAYS, dtype=torch.bool)
    without = {"half without": WAYS // 2, "one without": 1, "one with": WAYS - 1}[situation]
    bare = torch.randperm(WAYS, generator=generator)[:without]
    has = torch.ones(WAYS, dtype=torch.bool)
    has[bare] = False
    sums, counts = photos.sums.clone(), photos.counts.clone()
    sums[bare], counts[bare] = 0, 0
    return dataclasses.replace(photos, sums=sums, counts=counts), has


def scored(logits: torch.Tensor, labels: torch.Tensor, has: torch.Tensor) -> dict[str, float | None]:
    """Top-1 over all queries, over those of names with photos and of names without, and the harmonic mean of the
    two (``None`` where every name has photos)."""
    right = (logits.argmax(1) == labels).float()
    with_photos = has[labels]
    if with_photos.all():
        return {"all": right.mean().item(), "with photos": right.mean().item(), "without": None, "harmonic": None}
    seen, unseen = right[with_photos].mean().item(), right[~with_photos].mean().item()
    harmonic = 2 * seen * unseen / (seen + unseen) if seen + unseen > 0 else 0.0
    return {"all": right.mean().item(), "with photos": seen, "without": unseen, "harmonic": harmonic}


def main() -> None:
    started = time.perf_counter()
    work, config, seen, folds = study_command(__doc__.splitlines()[0])
    # (situation, setting) -> per k, the episodes' scores in the same order everywhere (paired)
    found: dict[tuple[str, str], list[list[dict]]] = {}
    for fold in fold_models(config, work, folds, seen):
        for episode in fold_draws(fold):
            photos = example_set(fold.side, episode.support, episode.support_labels, WAYS)
            generator = torch.Generator().manual_seed(1000 * fold.index + 10 * episode.k + episode.number)
            for situation in SITUATIONS:
                if situation == "uneven" and episode.k == 1:
                    continue
                examples, has = thinned(photos, situation, episode.k, episode.support, episode.support_labels, generator)
                settings = [(f"{t:g}", examples, t) for t in THRESHOLDS] + [
                    (r, e, 0.0) for r, e in zip(REFERENCES, (None, photos))
                ]
                for setting, given, threshold in settings:
                    logits = scores(fold.model, config, episode.vocabulary, episode.queries, given, threshold)
                    per_k = found.setdefault((situation, setting), [[] for _ in KS])
                    per_k[episode.k_index].append(scored(logits, episode.query_labels, has))
        print(f"[fold {fold.index}] done ({time.perf_counter() - started:.0f}s)", flush=True)
    write(found, development(work, config, chosen_threshold(found)), time.perf_counter() - started)


@torch.no_grad()
def scores(model, config, vocabulary, queries: torch.Tensor, examples, threshold: float) -> torch.Tensor:
    """The queries' logits over ``vocabulary`` given ``examples``, with the config's photo settings and ``threshold``."""
    photos = shipped_photo_settings(config)  # the config's, whatever the fold models saved
    settings = dataclasses.replace(model.config.zero_shot_config, **photos, example_threshold=threshold)
    given = dataclasses.replace(vocabulary, examples=examples)
    return model(image_features=queries, vocabulary=given, zero_shot_config=settings).logits


def development(work: Path, config, threshold: float) -> dict[str, list[list[dict]]]:
    """unseen_dev, half its names without photos: bench_fewshot's final model and draws, with ``threshold`` and none."""
    from visnet_hf.data import load_splits
    from visnet_hf.models import VSENetForImageClassification

    model = VSENetForImageClassification.from_pretrained(work / "final").eval()
    side = Side(model, config)
    unseen = load_splits(
        dataclasses.replace(config.data, path=str(DATA / "unseen_dev.parquet"), val_fraction=0.5), seed=config.seed
    )
    (train_x, train_y), (eval_x, eval_y) = (
        side.features(unseen.train, unseen.train_source),
        side.features(unseen.eval, unseen.eval_source),
    )
    x, y = torch.cat([train_x, eval_x]), torch.cat([train_y, eval_y])
    vocabulary = model.vocabulary_for(unseen.class_names, synonyms=unseen.synonyms, synsets=unseen.synsets)
    classes = len(unseen.class_names)
    found: dict[str, list[list[dict]]] = {f"{t:g}": [[] for _ in KS] for t in sorted({0.0, threshold})}
    for (k_index, k), number in itertools.product(enumerate(KS), range(DEV_DRAWS)):
        generator = torch.Generator().manual_seed(7000 + 10 * k + number)  # bench_fewshot's unseen_dev draws
        support, support_labels, queries, query_labels = draw(x, y, list(range(classes)), k, generator)
        examples, has = thinned(
            example_set(None, support, support_labels, classes), "half without", k, support, support_labels, generator
        )
        for name, episodes in found.items():
            episodes[k_index].append(scored(scores(model, config, vocabulary, queries, examples, float(name)), query_labels, has))
    return found


def chosen_threshold(found) -> float:
    return float(max((f"{t:g}" for t in THRESHOLDS), key=lambda t: overall(found, t)))


def overall(found, threshold: str) -> float:
    """The mean top-1 over every situation and k, each episode once."""
    return statistics.mean(e["all"] for s in SITUATIONS for episodes in found[(s, threshold)] for e in episodes)


def mean_of(per_k: list[list[dict]], key: str) -> dict[str, float | None]:
    """By k, the mean of ``key`` over the episodes (``None`` where the situation has no such part)."""
    means = {}
    for k, episodes in zip(KS, per_k, strict=True):
        values = [e[key] for e in episodes if e[key] is not None]
        if episodes:
            means[str(k)] = statistics.mean(values) if values else None
    return means


def paired(ours: list[list[dict]], other: list[list[dict]]) -> dict:
    differences = [
        a["all"] - b["all"] for mine, theirs in zip(ours, other, strict=True) for a, b in zip(mine, theirs, strict=True)
    ]
    return {
        "gain": statistics.mean(differences),
        "se": statistics.stdev(differences) / len(differences) ** 0.5,
        "episodes": len(differences),
    }


def write(found, dev, seconds: float) -> None:
    thresholds = [f"{t:g}" for t in THRESHOLDS]
    best = f"{chosen_threshold(found):g}"
    result = {
        "thresholds": thresholds,
        "chosen": best,
        "overall_top1": {t: overall(found, t) for t in thresholds},
        "situations": {
            situation: {
                setting: {key: mean_of(found[(situation, setting)], key) for key in ("all", "with photos", "without", "harmonic")}
                for setting in (*thresholds, *REFERENCES)
            }
            for situation in SITUATIONS
        },
        "chosen_vs_none": {s: paired(found[(s, best)], found[(s, "0")]) for s in SITUATIONS},
        "unseen_dev_half_without": {
            setting: {key: mean_of(episodes, key) for key in ("all", "with photos", "without", "harmonic")}
            for setting, episodes in dev.items()
        },
        "unseen_dev_chosen_vs_none": paired(dev[best], dev["0"]),
        "seconds": seconds,
    }
    write_study("tinyimagenet_fewshot_partial", result, HERE, "PARTIAL.md", report)


def report(result: dict) -> str:
    best = result["chosen"]
    lines = [
        "# Few-shot study: names with photos beside names without",
        "",
        f"Command: `{result['command']}` ({result['seconds']:.0f} s, the fold models and their features already there). "
        f"Machine: {machine_text(result['machine'])}.",
        "",
        "The 75 fold episodes of BENCHMARKS.md 5e by k, with the photos taken from some names or thinned "
        "(studies/few_shot/partial.py says how), scored with each `example_threshold` (0: none, as before this study). "
        "Top-1 (%) over all queries; with / without: on the queries of names with photos and of names without; "
        "H: their harmonic mean. The photo settings are the shipped config's (its photo weight, or the library's rule where it sets none). The threshold is chosen on "
        "these episodes; unseen_dev is scored only after, in the last table.",
        "",
        "Mean top-1 over the four situations and every k, by threshold: "
        + ", ".join(f"{t}: {100 * v:.2f}" for t, v in result["overall_top1"].items())
        + f". Chosen: {best}.",
    ]
    for situation, settings in result["situations"].items():
        ks = list(settings["0"]["all"])
        lines += [
            "",
            f"## {situation}",
            "",
            "| threshold | " + " | ".join(f"k = {k}" for k in ks) + " |",
            "|---|" + "---|" * len(ks),
        ]
        for setting, values in settings.items():
            cells = []
            for k in ks:
                cell = f"{100 * values['all'][k]:.1f}"
                if situation != "uneven" and setting != "names alone":
                    cell += f" ({100 * values['with photos'][k]:.0f} / {100 * values['without'][k]:.0f}, H {100 * values['harmonic'][k]:.0f})"
                cells.append(cell)
            name = f"**{setting}**" if setting == best else setting
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        gain = result["chosen_vs_none"][situation]
        lines += [
            "",
            f"Threshold {best} against none, paired over {gain['episodes']} episodes: "
            f"{100 * gain['gain']:+.2f} ± {100 * gain['se']:.2f} points of top-1.",
        ]
    dev, gain = result["unseen_dev_half_without"], result["unseen_dev_chosen_vs_none"]
    ks = list(dev["0"]["all"])
    lines += [
        "",
        "## unseen_dev, half without (a development set), scored once the threshold was chosen",
        "",
        "| threshold | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for setting, values in dev.items():
        cells = [
            f"{100 * values['all'][k]:.1f} ({100 * values['with photos'][k]:.0f} / {100 * values['without'][k]:.0f}, "
            f"H {100 * values['harmonic'][k]:.0f})"
            for k in ks
        ]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Threshold {best} against none, paired over {gain['episodes']} draws: {100 * gain['gain']:+.2f} ± "
        f"{100 * gain['se']:.2f} points of top-1.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
