"""Study 5c: levers for seen accuracy and zero-shot on Tiny-ImageNet, measured on pseudo-unseen folds only.

Each fold (5 folds of 30 of the 150 seen classes, as in bench_zeroshot.py) trains the shipped config's
VSENet, as align-then-joint stages, on the other 120 classes without a development split (10% of their
training part), once per text encoder, with WiSE-FT's far end (alpha 1.0) so that both ends of the
interpolation are at hand; once more with MPNet and label smoothing 0.1, a lever that needs retraining.
Every lever that needs no retraining is then scored on the same fold model: seen accuracy on the
development split, zero-shot top-1 on the 30 held-out classes (their training part), and the
generalised zero-shot harmonic mean with the offset fitted on the fold. Neither the seen test split
nor ``unseen_dev`` is looked at.

    python studies/zero_shot/levers.py            # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from _study import write_result
from bench_zeroshot import ALIGN_JOINT, DEV_FRACTION, base_config

LEVERS = {
    # WiSE-FT: every weight at alpha (0: the aligned model, 1: fine-tuned) ...
    **{f"WiSE-FT alpha {alpha}": {"alpha": alpha} for alpha in (0.0, 0.25, 0.5, 0.75, 1.0)},
    # ... or only the semantic side (projection, temperature), the softmax head kept fine-tuned.
    **{f"WiSE-FT alpha {alpha}, softmax head fine-tuned": {"alpha": alpha, "semantic_only": True} for alpha in (0.25, 0.5, 0.75)},
    # The trained vocabulary's mix of its two heads (a field of the model).
    **{f"alpha 1.0, softmax_weight {w}": {"alpha": 1.0, "model": {"softmax_weight": w}} for w in (0.25, 0.75)},
    # ConSE's reach into the trained prediction (a zero-shot setting).
    **{f"alpha 0.5, conse_top_k {k}": {"alpha": 0.5, "zero_shot": {"conse_top_k": k}} for k in (5, 20)},
}
# What each fold model is trained with: the text encoder, and levers that need retraining.
TRAINED = {
    "sentence-transformers/all-MiniLM-L6-v2": ["model.text_encoder=sentence-transformers/all-MiniLM-L6-v2"],
    "sentence-transformers/all-mpnet-base-v2": ["model.text_encoder=sentence-transformers/all-mpnet-base-v2"],
    "sentence-transformers/all-mpnet-base-v2, label smoothing 0.1": [
        "model.text_encoder=sentence-transformers/all-mpnet-base-v2",
        "model.overrides.label_smoothing=0.1",
    ],
}
METRICS = ("zero_shot_top1", "seen_accuracy", "gzsl_harmonic_mean")


def score_levers(model, ends, fold_config, data) -> dict:
    import copy

    from visnet_hf.training.selection import score_fold
    from visnet_hf.wise_ft import interpolate_state

    rows = {}
    for name, lever in LEVERS.items():
        state = interpolate_state(ends["start"], ends["final"], lever["alpha"])
        if lever.get("semantic_only"):
            state = {key: ends["final"][key] if key.startswith("classifier.") else value for key, value in state.items()}
        variant = copy.deepcopy(model) if lever.get("model") else model  # a model field: on a copy of the model
        variant.config.update(lever.get("model", {}))
        variant.load_state_dict(state)
        scored = score_fold(variant, fold_config, data, lever.get("zero_shot"))
        rows[name] = {metric: scored[metric] for metric in METRICS}
    return rows


def main() -> None:
    from visnet_hf.data import load_splits
    from visnet_hf.training import make_accelerator, override, train
    from visnet_hf.training.selection import fold_config as fold_training_config
    from visnet_hf.training.selection import fold_data, pseudo_unseen_folds

    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    # The shipped config, trained as align then joint so that WiSE-FT has an aligned end to start from.
    base = override(base_config(None), [ALIGN_JOINT, "wise_ft={stage: align, alpha: 1.0}"])
    folds = pseudo_unseen_folds(load_splits(base.data).class_names, 5, 30, seed=0)[: args.folds]
    results = {}
    for variant, variant_overrides in TRAINED.items():
        config = override(base, variant_overrides)
        per_fold = []
        for fold in folds:
            with tempfile.TemporaryDirectory() as output:
                fold_config = fold_training_config(config, fold, output, dev_fraction=DEV_FRACTION)
                trained = train(fold_config, make_accelerator(fold_config))
            model = trained["model"].eval()
            rows = score_levers(
                model, trained["wise_ft_endpoints"], fold_config, fold_data(fold_config.data, fold, fold_config.seed)
            )
            per_fold.append(rows)
            print(variant, fold.index, {name: round(row["zero_shot_top1"], 4) for name, row in rows.items()}, flush=True)
        results[variant] = {
            name: {metric: statistics.fmean(rows[name][metric] for rows in per_fold) for metric in METRICS} for name in LEVERS
        }
        results[variant]["per_fold"] = per_fold
    write_result(
        "tinyimagenet_levers",
        {
            "folds": len(folds),
            "dev_fraction": DEV_FRACTION,
            "levers": results,
            "seconds": time.perf_counter() - started,
            "notes": [
                "Means over the folds. Seen accuracy: the development split of each fold's 120 classes; zero-shot: "
                "the 30 held-out classes' training part; nothing here scores the seen test split or unseen_dev.",
                "Not tried here: longer schedules beyond bench_zeroshot.py's 6-epoch candidate. Measured elsewhere since: "
                "class descriptions (WordNet, a class-texts knob of 5b), the direction of the semantic map "
                "(bench_projection_direction.py, 5d), image-side partial unfreezing (bench_unfreeze.py, 5e).",
            ],
        },
    )


if __name__ == "__main__":
    main()
