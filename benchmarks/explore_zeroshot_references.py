"""Exploration (not part of BENCHMARKS.md): stronger zero-shot references on frozen features.

On the same frozen EfficientNet-Lite0 features and splits as bench_zeroshot.py, compares for the 25
unseen Tiny-ImageNet names: the DeViSE-style projection; ConSE (the seen-class linear probe's top-T
softmax weights averaged over the seen class embeddings); their sum; and three ways to build the
class embeddings (the name; the name plus its WordNet synonyms from classes.tsv; six templates).
It prints top-1 figures; it is the starting point for a ConSE-style zero-shot mode in VSENet.

    python benchmarks/explore_zeroshot_references.py [--cache features.pt]
"""

from __future__ import annotations

import argparse
import csv
import os

import torch
import torch.nn.functional as F
from bench_zeroshot import DATA, fit_linear, frozen_features, splits, topk

TEMPLATES = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the small {}.",
    "itap of a {}.",
    "a {}.",
]


def main() -> None:
    from visnet_hf import ClassTexts, TextEncoder
    from visnet_hf.text_encoders import default_text_encoder

    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", help="where to keep the frozen features between runs")
    args = parser.parse_args()
    seen_train, seen_test, unseen, seen_names, unseen_names = splits()
    if args.cache and os.path.exists(args.cache):
        (train_x, train_y), (seen_x, seen_y), (unseen_x, unseen_y) = torch.load(args.cache)
    else:
        features = frozen_features(seen_train, seen_test, unseen)
        if args.cache:
            torch.save(features, args.cache)
        (train_x, train_y), (seen_x, seen_y), (unseen_x, unseen_y) = features

    with open(DATA / "classes.tsv") as handle:
        synonyms = {row["name"]: row["synonyms"] for row in csv.DictReader(handle, delimiter="\t")}
    encoder = TextEncoder(default_text_encoder())

    def embed(names, mode):
        if mode == "names":
            return encoder.embed_classes(ClassTexts.build(names))
        if mode == "synonyms":
            return encoder.embed_classes(
                ClassTexts.build(names, descriptions=[[s.strip() for s in synonyms[n].split(",")] for n in names])
            )
        return encoder.embed_classes(ClassTexts.build(names, templates=TEMPLATES))

    probe = fit_linear(train_x, train_y, len(seen_names), lambda z: z)
    with torch.no_grad():
        p_unseen = probe(unseen_x).softmax(-1)
        print("probe seen", topk(probe(seen_x), seen_y, 1))
    for mode in ("names", "synonyms", "templates"):
        seen_c, unseen_c = embed(seen_names, mode), embed(unseen_names, mode)
        devise = fit_linear(train_x, train_y, seen_c.shape[1], lambda z, c=seen_c: F.normalize(z, dim=-1) @ c.T / 0.1)
        with torch.no_grad():
            devise_scores = F.normalize(devise(unseen_x), dim=-1) @ unseen_c.T
            print(mode, "devise zero-shot top-1", round(topk(devise_scores, unseen_y, 1), 4))
            for top in (5, 10, 20):
                best = p_unseen.topk(top)
                weights = torch.zeros_like(p_unseen).scatter(1, best.indices, best.values)
                conse_scores = F.normalize(weights @ seen_c, dim=-1) @ unseen_c.T
                print(
                    mode,
                    f"conse T={top}",
                    round(topk(conse_scores, unseen_y, 1), 4),
                    "devise+conse",
                    round(topk(conse_scores + devise_scores, unseen_y, 1), 4),
                )


if __name__ == "__main__":
    main()
