"""Study 5d: which way the semantic map should point, measured on pseudo-unseen folds only.

VSENet projects images into the text encoder's space (as DeViSE does). The reverse, class texts mapped
into the image feature space (DEM, Zhang et al. 2017), is reported to score new classes better because it
keeps the hubs of the high-dimensional space on the image side. Both are fitted here the same way (one linear
map, cosine softmax at temperature 0.1, 30 epochs of AdamW) on the shipped zero-shot config's cached
features and class texts, on the 5 folds of bench_zeroshot.py: trained on 120 of the 150 seen classes
(less a development split) and scored by name on the 30 held out. Neither the seen test split nor
``unseen_dev`` is looked at.

Beside them, closed-form linear maps from the zero-shot literature, fitted on the same features
(standardised and unit-normalised with the fold's training statistics) and the fold's centred class
embeddings, each at the few strengths listed (all reported; none is chosen): ridge regression of the
images onto their class's embedding (Dinu et al. 2015), ESZSL (Romera-Paredes and Torr 2015) and SAE's
image-to-text encoder (Kodirov et al. 2017). They test whether a better linear map, rather than the
training of VSENet's, is where zero-shot accuracy is left.

    python studies/zero_shot/projection_direction.py     # about 5 minutes on 2 cores with a warm feature cache
"""

from __future__ import annotations

import time

from _study import write_result
from bench_zeroshot import REFERENCE_MAPS, base_config, fold_references
from references import eszsl_map, ridge_map, sae_map

CLOSED_FORMS = {
    **{f"ridge_{strength:g}": ridge_map(strength) for strength in (10, 30, 100)},
    **{f"eszsl_{gamma:g}_{lam:g}": eszsl_map(gamma, lam) for gamma, lam in ((10, 1), (100, 1))},
    **{f"sae_{lam:g}": sae_map(lam) for lam in (1, 5)},
}


def main() -> None:
    from visnet_hf.data import load_splits
    from visnet_hf.training.selection import pseudo_unseen_folds
    from visnet_hf.training.setup import build_model

    started = time.perf_counter()
    config = base_config(None)
    splits = load_splits(config.data)
    folds = pseudo_unseen_folds(splits.class_names, 5, 30, seed=0)
    # Only the frozen pretrained backbone and the text encoder are used: the model's own heads stay untrained.
    model = build_model(config, splits.class_names, synonyms=splits.synonyms).eval()
    scores = fold_references(config, model, folds, {**REFERENCE_MAPS, **CLOSED_FORMS})
    print(scores)
    write_result(
        "tinyimagenet_projection_direction",
        {
            "folds": len(folds),
            "text_encoder": model.config.text_config.encoder,
            "describe_classes": model.config.text_config.describe,
            "image_size": config.model.image_size,
            "cv_zero_shot_top1": scores,
            "seconds": time.perf_counter() - started,
        },
    )


if __name__ == "__main__":
    main()
