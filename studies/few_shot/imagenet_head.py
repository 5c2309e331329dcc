"""Few-shot study: the backbone's own ImageNet-1k classifier as a names' expert, on the fold episodes of the seen classes.

The shipped backbone (EfficientNet-Lite0, ImageNet-1k weights) comes with the 1,000-way classifier it was trained
with, and its labels are words: ConSE (Norouzi et al. 2014) was defined on exactly that, an ImageNet-1k classifier's
probabilities mixing its labels' text embeddings into an embedding of the image, compared with new names. A VSENet
drops that classifier (its heads are trained on the run's classes); this study asks what keeping it would give.

Every Tiny-ImageNet class is an ImageNet-1k class, so the classifier was trained on the very classes the episodes
treat as new, with their labels. Two readings are therefore scored on the same episodes:

* **new to the head**: each episode's 25 classes' own labels are removed from the classifier's 1,000 (their logits
  masked) before its probabilities mix the other labels' embeddings: what the head gives for a class it was not
  trained on (the case of a user's new class), with its relatives (other dog breeds, other vehicles) still there;
* **in the head**: nothing masked: what a class the head was trained on gives (the head's own scores for the 25
  labels, restricted to them, are listed too: that is supervised ImageNet classification, not zero-shot).

Each is scored alone (names only), and added to the shipped method's scores (names and k photos, BENCHMARKS.md 5e) at
weights w of the model's other experts (each at the model's logit scale), paired against the shipped method over the
same 75 + 15 episodes (bench_fewshot's fold models and draws; names alone on the k = 1 draws' queries); at weight 2,
the photos' weight (the shipped 4, chosen without it) is tried at 3 and 6 too. The labels'
texts are embedded as the model embeds a class (its templates and WordNet descriptions, timm's ImageNet-1k synsets);
ConSE mixes the top 10 labels. Neither unseen_dev nor the seen test split is looked at. "Shipped" is the method
before this study (the library's expert, ``zero_shot_config.backbone_label_weight``, which it led to, left out).

    python studies/few_shot/imagenet_head.py --work-dir /tmp/fs   # reuses bench_fewshot's fold models there (trains them if absent)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # the benchmark's setup (a script, not the library)

from _common import machine_text, write_study  # noqa: E402
from bench_fewshot import KS, accuracy, example_set, fold_draws, fold_models, study_command, zero_shot_logits  # noqa: E402

SHIPPED = {"example_weight": 4.0, "example_shrinkage": 0.8}
WEIGHTS = (0.5, 1.0, 2.0, 4.0)
PHOTO_WEIGHTS = (3.0, 6.0)  # the photos' weight beside the head's expert at weight 2 (the shipped 4 was chosen without it)
CONSE_TOP = 10


class ImageNetHead:
    """The backbone's ImageNet-1k classifier and its labels embedded in a fold model's text space, as the model kept
    them (``zero_shot_config.backbone_label_weight`` in the config: :mod:`visnet_hf.zero_shot.backbone_labels`)."""

    def __init__(self, model) -> None:
        kept = model.zero_shot.backbone_labels
        if kept is None:
            raise SystemExit("The fold models kept no backbone classifier: the config must set backbone_label_weight.")
        self.weight, self.bias, self.embeddings = kept.weight, kept.bias, kept.embeddings
        self.synsets = list(model.config.backbone_label_synsets)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.weight.T + self.bias

    def conse(self, features: torch.Tensor, names: torch.Tensor, masked: list[int] | None) -> torch.Tensor:
        """Cosines of the images' ConSE embeddings (the top labels' embeddings mixed by the head's probabilities,
        the ``masked`` labels left out) to the ``names``' embeddings."""
        logits = self.logits(features)
        if masked:
            logits[:, masked] = float("-inf")
        probabilities, top = logits.softmax(-1).topk(CONSE_TOP, dim=-1)
        mixed = (probabilities.unsqueeze(-1) * self.embeddings[top]).sum(1)
        return F.normalize(mixed, dim=-1) @ F.normalize(names, dim=-1).T


def variants() -> list[str]:
    names = ["ConSE over the head, new to the head", "ConSE over the head, in the head", "the head's own labels"]
    for reading in ("new to the head", "in the head"):
        names += [f"shipped + {w:g} x ConSE over the head, {reading}" for w in WEIGHTS]
    names += [f"shipped + 2 x ConSE over the head, new to the head, photo weight {p:g}" for p in PHOTO_WEIGHTS]
    return names


@torch.no_grad()
def episode_scores(fold, draw, head: ImageNetHead, names_only: bool) -> dict[str, float]:
    """Top-1 of the shipped method and of each variant on one episode (``names_only``: no photos)."""
    model, scale = fold.model, fold.model.logit_scale_value()
    names = fold.everything.embeddings[draw.chosen]
    own = [head.synsets.index(fold.everything.synsets[i]) for i in draw.chosen]
    by_names = zero_shot_logits(
        fold.side, draw.vocabulary, draw.queries, summed=True, backbone_labels=False, borrowed_classifiers=False
    )
    photos = torch.zeros_like(by_names)
    if not names_only:
        from visnet_hf.zero_shot.few_shot import example_logits

        examples = example_set(fold.side, draw.support, draw.support_labels, len(draw.chosen))
        photos = example_logits(
            draw.queries, examples, [None] * len(draw.chosen), model.zero_shot.prototypes, SHIPPED["example_shrinkage"], scale
        )
    shipped = by_names + SHIPPED["example_weight"] * photos
    experts = {"new to the head": head.conse(draw.queries, names, own), "in the head": head.conse(draw.queries, names, None)}
    scores = {
        "shipped": shipped,
        "ConSE over the head, new to the head": experts["new to the head"],
        "ConSE over the head, in the head": experts["in the head"],
        "the head's own labels": head.logits(draw.queries)[:, own],
    }
    for reading, expert in experts.items():
        for w in WEIGHTS:
            scores[f"shipped + {w:g} x ConSE over the head, {reading}"] = shipped + w * scale * expert
    for weight in PHOTO_WEIGHTS:
        scores[f"shipped + 2 x ConSE over the head, new to the head, photo weight {weight:g}"] = (
            by_names + weight * photos + 2 * scale * experts["new to the head"]
        )
    return {name: accuracy(logits, draw.query_labels) for name, logits in scores.items()}


def main() -> None:
    started = time.perf_counter()
    work, config, seen, folds = study_command(__doc__.splitlines()[0])
    columns = ["0", *map(str, KS)]
    scores: dict[str, dict[str, list[float]]] = {name: {k: [] for k in columns} for name in ["shipped", *variants()]}
    head = None
    for fold in fold_models(config, work, folds, seen):
        head = head or ImageNetHead(fold.model)  # the labels' texts are the same for every fold (one frozen encoder)
        for draw in fold_draws(fold):
            runs = [(str(draw.k), False)] + ([("0", True)] if draw.k == KS[0] else [])
            for column, names_only in runs:
                for name, value in episode_scores(fold, draw, head, names_only).items():
                    scores[name][column].append(value)
        print(f"[fold {fold.index}] done ({time.perf_counter() - started:.0f}s)", flush=True)
    write(scores, time.perf_counter() - started)


def write(scores: dict[str, dict[str, list[float]]], seconds: float) -> None:
    shipped = [v for values in scores["shipped"].values() for v in values]
    rows = []
    for name, by_k in scores.items():
        flat = [v for values in by_k.values() for v in values]
        differences = [a - b for a, b in zip(flat, shipped, strict=True)]
        rows.append(
            {
                "variant": name,
                "top1_by_k": {k: statistics.mean(v) for k, v in by_k.items()},
                "gain": statistics.mean(differences),
                "se": statistics.stdev(differences) / len(differences) ** 0.5,
            }
        )
    result = {"episodes": len(shipped), "conse_top": CONSE_TOP, "variants": rows, "seconds": seconds}
    write_study("tinyimagenet_fewshot_imagenet_head", result, HERE, "IMAGENET_HEAD.md", report)


def variant_table(rows: dict[str, dict], episodes: int | None = None, baseline: str = "shipped") -> list[str]:
    """A study's table: each variant's top-1 by k (names alone first) and its paired gain over the ``baseline``
    (the shipped method), with its number of episodes where it is not ``episodes``."""
    ks = list(rows[baseline]["top1_by_k"])
    header = " | ".join("names alone" if k == "0" else f"k = {k}" for k in ks)
    lines = [f"| scoring | {header} | vs shipped |", "|---|" + "---|" * (len(ks) + 1)]
    for name, row in rows.items():
        cells = " | ".join(f"{100 * row['top1_by_k'][k]:.1f}" if k in row["top1_by_k"] else "" for k in ks)
        gain = f"{100 * row['gain']:+.2f} ± {100 * row['se']:.2f}" if "gain" in row and name != baseline else ""
        if gain and episodes is not None and row.get("episodes", episodes) != episodes:
            gain += f" ({row['episodes']} episodes with photos)"
        lines.append(f"| {name} | {cells} | {gain} |")
    return lines


def report(result: dict) -> str:
    rows = {row["variant"]: row for row in result["variants"]}
    lines = [
        "# Few-shot study: the backbone's own ImageNet-1k classifier as a names' expert",
        "",
        f"Command: `{result['command']}` ({result['seconds'] / 60:.0f} min). Machine: {machine_text(result['machine'])}.",
        "",
        f"{result['episodes']} fold episodes of the seen classes (bench_fewshot's folds and draws, 25 pseudo-new classes;",
        "names alone on the k = 1 draws' queries); nothing here looks at unseen_dev or the seen test split. ConSE mixes",
        f"the top {result['conse_top']} of the head's 1,000 labels' text embeddings (the model's own class texts). Every",
        "Tiny-ImageNet class is an ImageNet-1k class: **new to the head** masks each episode's 25 classes' own labels",
        "(a class the head was not trained on, as a user's new class); **in the head** masks nothing, and the head's own",
        "labels are supervised ImageNet classification, not zero-shot. Top-1 by number of photos per class, and the",
        "paired difference from the shipped method over the same episodes (mean ± standard error).",
        "",
        *variant_table(rows),
    ]
    best_new = max(
        (row for name, row in rows.items() if name.endswith("new to the head") and "+" in name), key=lambda r: r["gain"]
    )
    lines += [
        "",
        f"Best added to the shipped method for a class new to the head: {best_new['variant']}, "
        f"{100 * best_new['gain']:+.2f} ± {100 * best_new['se']:.2f} points. Beside it at weight 2, the photos' weight: "
        + "; ".join(
            f"{name.rsplit(' ', 1)[-1]}: {100 * row['gain']:+.2f} ± {100 * row['se']:.2f}"
            for name, row in rows.items()
            if "photo weight" in name
        )
        + " (4, the shipped weight: the row above; the library's default photo weight is the names' scores' own weight,"
        " which the head's expert at 2 would make 6).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
