"""Few-shot study: a new name's classifier borrowed from the backbone's ImageNet-1k classifier, by text similarity.

The shipped model reads the backbone's pretrained classifier one way (``zero_shot_config.backbone_label_weight``:
ConSE, the image's most probable labels' text embeddings mixed into a point compared with each name). This study
reads it the other way round, as the visual prototypes read the trained classes' centroids: a name's score is the
classifier's logits for the labels whose texts resemble the name's, mixed by the softmax over the labels of
``beta`` x the text cosine (the name's own label, by WordNet sense, left out, as the library leaves it out), which
amounts to a linear classifier for the name made of the labels' rows (a convex combination of known classifiers, as
in Changpinyo et al. 2016, "Synthesized classifiers for zero-shot learning"). The logits are standardised over the
1,000 labels per image; the mix is then either standardised over the episode's names per image (**per vocabulary**)
or taken as it is (**per image**: what a scorer could compute without the rest of the vocabulary), and added to the
shipped method's scores (the labels' expert in, the library's own borrowed classifiers out, photo weight 6, the library's rule) at weight w x the model's logit scale / 10;
the best setting found is also scored with the photos weighed 7.5 and 9 (were the new expert counted in the names'
weight that sets the photo weight).
On the same 75 + 15 fold episodes as BENCHMARKS.md 5e (bench_fewshot's fold models and draws; names alone on the
k = 1 draws' queries), paired against the shipped method. Every setting is listed; the best is chosen on these
episodes (optimistic). Neither unseen_dev nor the seen test split is looked at.

    python studies/few_shot/label_prototypes.py --work-dir /tmp/fs   # 10 minutes with the shipped config's fold models there
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
sys.path.insert(0, str(HERE))

from _common import machine_text, write_study  # noqa: E402
from bench_fewshot import accuracy, example_set, scores_by_k, study_command, zero_shot_logits  # noqa: E402
from imagenet_head import ImageNetHead, variant_table  # noqa: E402

BETAS = (10.0, 20.0, 50.0)
WEIGHTS = (0.5, 1.0, 2.0, 3.0, 4.0)
NORMS = ("per vocabulary", "per image")
SHRINKAGE = 0.8
PHOTO_WEIGHTS = (7.5, 9.0)  # beside the best setting: the photo weight the names' weight would give with it counted


def borrowed(head: ImageNetHead, queries: torch.Tensor, names: torch.Tensor, own: list[int], beta: float, norm: str):
    """``(queries, names)``: each name's mix of the labels' standardised logits, by its text softmax over the labels."""
    logits = head.logits(queries)
    logits = (logits - logits.mean(-1, keepdim=True)) / logits.std(-1, keepdim=True)
    cosines = F.normalize(names, dim=-1) @ F.normalize(head.embeddings, dim=-1).T
    cosines[:, own] = float("-inf")
    mixed = logits @ (beta * cosines).softmax(-1).T
    if norm == "per vocabulary":
        mixed = (mixed - mixed.mean(-1, keepdim=True)) / (mixed.std(-1, keepdim=True) + 1e-6)
    return mixed


@torch.no_grad()
def episode_scores(fold, draw, head: ImageNetHead, names_only: bool) -> dict[str, float]:
    from visnet_hf.zero_shot.few_shot import example_logits

    model, scale = fold.model, fold.model.logit_scale_value()
    settings = model.config.zero_shot_config
    names = fold.everything.embeddings[draw.chosen]
    own = [head.synsets.index(fold.everything.synsets[i]) for i in draw.chosen]
    shipped = zero_shot_logits(fold.side, draw.vocabulary, draw.queries, summed=True, borrowed_classifiers=False)
    if not names_only:
        examples = example_set(fold.side, draw.support, draw.support_labels, len(draw.chosen))
        photos = example_logits(draw.queries, examples, [None] * len(draw.chosen), model.zero_shot.prototypes, SHRINKAGE, scale)
        shipped = shipped + settings.photo_weight() * photos
    scores = {"shipped": accuracy(shipped, draw.query_labels)}
    if not names_only:  # the best setting with the photos weighed more, as the names' weight would grow with it
        expert = borrowed(head, draw.queries, names, own, 20.0, "per image")
        for photo_weight in PHOTO_WEIGHTS:
            logits = shipped + (photo_weight - settings.photo_weight()) * photos + 3.0 * scale / 10 * expert
            scores[f"shipped + 3 x, per image, beta 20, photo weight {photo_weight:g}"] = accuracy(logits, draw.query_labels)
    for norm in NORMS:
        for beta in BETAS:
            expert = borrowed(head, draw.queries, names, own, beta, norm)
            if names_only and norm == NORMS[0]:  # alone, both mixes rank the names alike
                scores[f"alone, beta {beta:g}"] = accuracy(expert, draw.query_labels)
            for weight in WEIGHTS:
                logits = shipped + weight * scale / 10 * expert
                scores[f"shipped + {weight:g} x, {norm}, beta {beta:g}"] = accuracy(logits, draw.query_labels)
    return scores


def main() -> None:
    started = time.perf_counter()
    work, config, seen, folds = study_command(__doc__.splitlines()[0])
    heads: list[ImageNetHead] = []  # the labels' texts are the same for every fold (one frozen encoder): built once

    def score(fold, draw, names_only: bool) -> dict[str, float]:
        heads[:] = heads or [ImageNetHead(fold.model)]
        return episode_scores(fold, draw, heads[0], names_only)

    scores = scores_by_k(config, work, folds, seen, score, started)
    shipped = [v for values in scores["shipped"].values() for v in values]
    rows = []
    for name, by_k in scores.items():
        row = {"variant": name, "top1_by_k": {k: statistics.mean(v) for k, v in by_k.items() if v}}
        if not name.startswith("alone"):  # paired with the shipped method on the episodes the row was scored on
            pairs = [(a, b) for k, values in by_k.items() for a, b in zip(values, scores["shipped"][k]) if values]
            differences = [a - b for a, b in pairs]
            row.update(gain=statistics.mean(differences), se=statistics.stdev(differences) / len(differences) ** 0.5)
            row["episodes"] = len(differences)
        rows.append(row)
    result = {"episodes": len(shipped), "variants": rows, "seconds": time.perf_counter() - started}
    write_study("tinyimagenet_fewshot_label_prototypes", result, HERE, "LABEL_PROTOTYPES.md", report)


def report(result: dict) -> str:
    rows = {row["variant"]: row for row in result["variants"]}
    lines = [
        "# Few-shot study: a new name's classifier borrowed from the backbone's ImageNet-1k classifier",
        "",
        f"Command: `{result['command']}` ({result['seconds'] / 60:.0f} min). Machine: {machine_text(result['machine'])}.",
        "",
        f"{result['episodes']} fold episodes of the seen classes (bench_fewshot's folds and draws, 25 pseudo-new classes;",
        "names alone on the k = 1 draws' queries); nothing here looks at unseen_dev or the seen test split. Each name's",
        "own ImageNet label is left out. Top-1 by number of photos per class, and the paired difference from the shipped",
        "method (the backbone's labels' ConSE in, photo weight by the library's rule) over the same episodes (mean ±",
        "standard error). Every setting is listed; the best is chosen here, so it is an optimistic estimate.",
        "",
        *variant_table(rows, result["episodes"]),
    ]
    added = [
        row for row in rows.values() if "gain" in row and row["variant"] != "shipped" and "photo weight" not in row["variant"]
    ]
    best = max(added, key=lambda row: row["gain"])
    best_image = max((row for row in added if "per image" in row["variant"]), key=lambda row: row["gain"])
    lines += [
        "",
        f"Best: {best['variant']}, {100 * best['gain']:+.2f} ± {100 * best['se']:.2f} points; of the per-image mixes "
        f"(a scorer needs no other name to compute them): {best_image['variant']}, "
        f"{100 * best_image['gain']:+.2f} ± {100 * best_image['se']:.2f}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
