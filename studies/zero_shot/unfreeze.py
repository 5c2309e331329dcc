"""Study 5e: image-side partial unfreezing on Tiny-ImageNet, measured on pseudo-unseen folds only.

The shipped zero-shot config (without visual prototypes, which need a frozen backbone) against the same
config whose backbone's last block and head convolution train too, at a tenth of the heads' learning rate
(LiT's question asked of the image tower: does tuning it for 120 classes help or hurt names it never saw?).
Each fold trains on 120 classes without a development split (10% of their training part) and is scored
as in bench_zeroshot.py: zero-shot top-1 on the 30 held-out classes (their training part), seen accuracy
on the development split, GZSL H with the fold's offset. Neither the seen test split nor ``unseen_dev``
is looked at. The unfrozen candidate reads the images (no feature cache): minutes per fold on 2 cores.

    python studies/zero_shot/unfreeze.py --folds 3   # about 65 minutes on 2 cores (the unfrozen candidate: 20 a fold)
"""

from __future__ import annotations

import argparse
import time

from _study import write_result
from bench_zeroshot import DEV_FRACTION, HEADS, base_config

FROZEN = ["model.overrides.zero_shot_config.prototype_weight=0.0"]
CANDIDATES = {
    "frozen backbone (the shipped config without visual prototypes)": FROZEN,
    "last block and head convolution trainable, backbone_lr 1e-4": [
        *FROZEN,
        "data.cache_features=false",
        "optim.freeze=partial",
        "optim.trainable_prefixes=[backbone.blocks.6, backbone.conv_head, backbone.bn2, projection, classifier, logit_scale]",
        "optim.backbone_lr=0.0001",
    ],
}
METRICS = ("zero_shot_top1", "seen_accuracy", "gzsl_harmonic_mean")


def main() -> None:
    from visnet_hf.data import load_splits
    from visnet_hf.training.selection import cross_validate, pseudo_unseen_folds

    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=3, help="how many of the 5 folds (the first ones)")
    parser.add_argument("--cache-dir", default=None, help="where the frozen candidate's backbone features are cached")
    args = parser.parse_args()
    started = time.perf_counter()
    config = base_config(args.cache_dir)
    folds = pseudo_unseen_folds(load_splits(config.data).class_names, 5, 30, seed=0)[: args.folds]
    table = cross_validate(config, CANDIDATES, folds, variants=HEADS, log=print, dev_fraction=DEV_FRACTION)
    rows = [
        {
            "candidate": candidate,
            "head": head,
            **{metric: table.mean(candidate, head, metric) for metric in METRICS},
            "train_seconds": table.mean(candidate, head, "train_seconds"),
            "per_fold": [s.zero_shot_top1 for s in table.scores if (s.candidate, s.variant) == (candidate, head)],
        }
        for candidate, head in table.choices()
    ]
    write_result(
        "tinyimagenet_unfreeze",
        {
            "folds": [fold.index for fold in folds],
            "dev_fraction": DEV_FRACTION,
            "rows": rows,
            "seconds": time.perf_counter() - started,
            "notes": [
                "Means over the folds named. Seen accuracy: the development split of each fold's 120 classes; zero-shot: "
                "the 30 held-out classes' training part; nothing here scores the seen test split or unseen_dev.",
                "Trainable parameters of the second candidate: EfficientNet-Lite0's last block (blocks.6), its head "
                "convolution and batch norm, and the heads; everything else frozen, batch norm statistics of frozen "
                "layers kept.",
            ],
        },
    )


if __name__ == "__main__":
    main()
