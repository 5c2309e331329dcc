"""Few-shot study: the borrowed classifiers' labels chosen by WordNet as well as by text.

``zero_shot_config.backbone_classifier_weight`` lends each name a classifier made of the backbone's ImageNet-1k
classifier's rows, mixed by the softmax over the labels of 20 x the name's text cosine to each label
(:meth:`visnet_hf.zero_shot.BackboneLabels.lenders`). On unseen_dev the losses came where the text encoder matched a
name by its surface ("cardigan" borrowing from "book jacket" and "cardoon": BORROWED_BY_CLASS.md). A name whose
WordNet sense is known could borrow from its relatives in the hierarchy instead: here the mix is the softmax of
20 x the text cosine plus ``gamma`` x the Wu-Palmer similarity of the name's sense to each label's (0 for a name
without one), for gamma from 0 (the text alone, the mix before this study) to 40, and by the hierarchy alone (the
text cosine left out). Everything else is the shipped method: the borrowed classifier standardised and weighed as the
library does (3 x the logit scale / 10), each name's own label left out, photo weight 6.
On the same 75 + 15 fold episodes as BENCHMARKS.md 5e (bench_fewshot's fold models and draws; names alone on the
k = 1 draws' queries), paired against the text alone. Every setting is listed; the best is chosen on these
episodes (optimistic). Neither unseen_dev nor the seen test split is looked at. The library now mixes with
gamma 10 (``zero_shot_config.backbone_classifier_hierarchy``, its default); the script checks that its row scores
as the library does.

    python studies/few_shot/wordnet_lenders.py --work-dir /tmp/fs   # 2 minutes with the shipped config's fold models there
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # the benchmark's setup (a script, not the library)
sys.path.insert(0, str(HERE))

from _common import machine_text, write_study  # noqa: E402
from bench_fewshot import accuracy, example_set, paired_rows, scores_by_k, study_command, zero_shot_logits  # noqa: E402
from imagenet_head import variant_table  # noqa: E402

from visnet_hf import VSENetZeroShotConfig  # noqa: E402

SHIPPED = VSENetZeroShotConfig().backbone_classifier_hierarchy

GAMMAS = (0.0, 2.0, 5.0, 10.0, 20.0, 40.0)  # 0: the text alone, the mix before
BASELINE = "text alone (the mix before)"
ALONE = (20.0, 50.0)  # the hierarchy alone, at these sharpnesses


def row_name(gamma: float) -> str:
    return f"text + WordNet, gamma {gamma:g}" + (" (shipped)" if gamma == SHIPPED else "")


@torch.no_grad()
def borrowed(model, vocabulary, queries: torch.Tensor, gamma: float, text: bool) -> torch.Tensor:
    """``(queries, names)``: the library's borrowed classifiers (:meth:`BackboneLabels.borrowed`), each name's
    mix of the labels by the softmax of (20 x the text cosine, when ``text``) + ``gamma`` x the Wu-Palmer
    similarity of its sense to each label's, at the logit scale / 10."""
    labels = model.zero_shot.backbone_labels
    own = labels.own_labels(vocabulary.names, vocabulary.synsets)
    classes = model.scored_embeddings(vocabulary.embeddings)
    classes = classes if text else torch.zeros_like(classes)  # no text: every cosine 0, the hierarchy alone mixes
    return labels.borrowed(queries, classes, own, model.logit_scale_value(), vocabulary.synsets, gamma)


@torch.no_grad()
def episode_scores(fold, draw, names_only: bool) -> dict[str, float]:
    from visnet_hf.zero_shot.few_shot import example_logits

    model = fold.model
    settings = model.config.zero_shot_config
    base = zero_shot_logits(fold.side, draw.vocabulary, draw.queries, summed=True, borrowed_classifiers=False)
    if not names_only:
        examples = example_set(fold.side, draw.support, draw.support_labels, len(draw.chosen))
        photos = example_logits(
            draw.queries,
            examples,
            [None] * len(draw.chosen),
            model.zero_shot.prototypes,
            settings.example_shrinkage,
            model.logit_scale_value(),
            settings.example_threshold,
        )
        base = base + settings.photo_weight() * photos
    weight = settings.backbone_classifier_weight
    scores = {}
    for gamma in GAMMAS:
        name = BASELINE if gamma == 0 else row_name(gamma)
        logits = base + weight * borrowed(model, draw.vocabulary, draw.queries, gamma, text=True)
        scores[name] = accuracy(logits, draw.query_labels)
    for gamma in ALONE:
        logits = base + weight * borrowed(model, draw.vocabulary, draw.queries, gamma, text=False)
        scores[f"WordNet alone, gamma {gamma:g}"] = accuracy(logits, draw.query_labels)
    if names_only:  # the check that the library mixes as the row of its gamma: its zero-shot scores, to the bit
        library = zero_shot_logits(fold.side, draw.vocabulary, draw.queries, summed=True)
        scores["the library's scores"] = accuracy(library, draw.query_labels)
    return scores


def main() -> None:
    started = time.perf_counter()
    work, config, seen, folds = study_command(__doc__.splitlines()[0])
    scores = scores_by_k(config, work, folds, seen, episode_scores, started)
    library = scores.pop("the library's scores")["0"]
    if any(abs(a - b) > 1e-9 for a, b in zip(library, scores[row_name(SHIPPED)]["0"], strict=True)):
        raise SystemExit("the study's mix at the library's gamma scores otherwise than the library: fix the study first")
    rows = paired_rows(scores, BASELINE)
    episodes = sum(len(v) for v in scores[BASELINE].values())
    result = {"episodes": episodes, "variants": rows, "seconds": time.perf_counter() - started}
    write_study("tinyimagenet_fewshot_wordnet_lenders", result, HERE, "WORDNET_LENDERS.md", report)


def report(result: dict) -> str:
    rows = {row["variant"]: row for row in result["variants"]}
    best = max((row for row in rows.values() if row["variant"] != BASELINE), key=lambda row: row["gain"])
    return "\n".join(
        [
            "# Few-shot study: the borrowed classifiers' labels chosen by WordNet as well as by text",
            "",
            f"Command: `{result['command']}` ({result['seconds'] / 60:.0f} min). Machine: {machine_text(result['machine'])}.",
            "",
            f"{result['episodes']} fold episodes of the seen classes (bench_fewshot's folds and draws, 25 pseudo-new classes;",
            "names alone on the k = 1 draws' queries, column 0); nothing here looks at unseen_dev or the seen test split.",
            "Each name borrows from the labels by the softmax of 20 x its text cosine plus gamma x the Wu-Palmer",
            "similarity of its WordNet sense to each label's (own label left out), weighed as the library weighs the",
            "borrowed classifiers. Top-1 by number of photos per class, and the paired difference from the text alone",
            "(gamma 0, the mix before) over the same episodes (mean ± standard error). Every setting is listed; the best",
            "is chosen here, so it is an optimistic estimate. The library mixes as the row marked shipped (checked on",
            "every names-alone episode: the same scores).",
            "",
            *variant_table(rows, result["episodes"], baseline=BASELINE),
            "",
            f"Best: {best['variant']}, {100 * best['gain']:+.2f} ± {100 * best['se']:.2f} points.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
