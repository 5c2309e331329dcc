"""Benchmark 5b: Tiny-ImageNet zero-shot with VSENet, every default chosen without looking at the reported classes.

The protocol (:mod:`visnet_hf.training.selection`): the 150 seen classes are split into 5 folds of 30; for each
fold a VSENet is trained on the other 120 and scored, by name alone, on the 30 it never saw
(pseudo-unseen). Settings are chosen one knob at a time (resolution, class texts, projection,
centring, objective), each by mean pseudo-unseen zero-shot top-1 over the folds, then the zero-shot
head; the generalised zero-shot offset is the median of the folds' fitted offsets. Only then is the
chosen VSENet trained on all 150 seen classes (90% of ``seen_train.parquet``; the other 10% is the
seen test set) and scored, once, on the 25 ``unseen_dev`` classes.

References, side by side, at the chosen resolution with the chosen class texts, on the same frozen
backbone features: a DeViSE-style linear projection to the text embeddings (cosine softmax,
temperature 0.1) and a softmax linear probe. The backbone (EfficientNet-Lite0) was pretrained on
ImageNet-1k, of which Tiny-ImageNet's classes, seen and unseen, are a subset: zero-shot here is
transfer through names, not to concepts the backbone never saw.

    python benchmarks/bench_zeroshot.py                # the whole protocol, about 30 minutes on 2 cores
    python benchmarks/bench_zeroshot.py --quick        # a smoke test of every part (2 folds, 1 resolution)
    python benchmarks/bench_zeroshot.py --rescore      # no search: the shipped config as it stands (after the
                                                       # ablation, bench_ablation.py), on the folds, unseen_dev
                                                       # and the matched references; the search's tables are kept
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from _common import RESULTS, ROOT, SHARED, write_result
from references import PROBE_GRID, ZERO_SHOT_GRIDS, devise_map, fit_probe, stratified_split, text_to_image_map

from visnet_hf.scores import top_k_accuracy

DATA = SHARED / "data" / "tiny-imagenet"
WEIGHTS = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
CONFIG = ROOT / "configs" / "vsenet_tinyimagenet_zeroshot.yaml"
ALIGN_JOINT = "stages=[{name: align, epochs: 1, objective: align}, {name: finetune, epochs: 2, objective: joint}]"
WISE_FT = "wise_ft={stage: align, alpha: 0.5}"
DEV_FRACTION = 0.1  # each fold chooses on a development split of its training part; the test part is never scored
NAMES = ["data.class_texts_column=null", "model.overrides.text_config.templates=photo"]
SYNONYMS = ["data.class_texts_column=synonyms", "model.overrides.text_config.templates=photo"]
# One knob at a time; the first candidate of each is where the search starts. A knob is chosen by its
# metric's mean over the folds: pseudo-unseen zero-shot top-1, or (for a knob that leaves the zero-shot
# side as it is) seen accuracy on the development split.
SEARCH = [
    ("resolution", {"64": ["model.image_size=64"], "128": ["model.image_size=128"]}),
    (
        "text encoder",
        {
            "all-MiniLM-L6-v2": ["model.text_encoder=sentence-transformers/all-MiniLM-L6-v2"],
            "all-mpnet-base-v2": ["model.text_encoder=sentence-transformers/all-mpnet-base-v2"],
        },
    ),
    (
        "class texts",
        {
            "names": [*NAMES, "model.overrides.text_config.describe=null"],
            "names + synonyms": [*SYNONYMS, "model.overrides.text_config.describe=null"],
            "names + synonyms, CLIP's 7 templates": [
                *SYNONYMS[:1],
                "model.overrides.text_config.templates=clip7",
                "model.overrides.text_config.describe=null",
            ],
            "names + WordNet descriptions": [*NAMES, "model.overrides.text_config.describe=wordnet"],
            "names + synonyms + WordNet descriptions": [*SYNONYMS, "model.overrides.text_config.describe=wordnet"],
        },
    ),
    ("test-time flip", {"off": ["model.overrides.test_time_flip=false"], "on": ["model.overrides.test_time_flip=true"]}),
    (
        "test-time zoom",
        {"off": ["model.overrides.test_time_zoom=null"], "0.875": ["model.overrides.test_time_zoom=0.875"]},
    ),
    ("projection", {"linear": ["model.overrides.projection=linear"], "mlp": ["model.overrides.projection=mlp"]}),
    (
        "class centring",
        {"off": ["model.overrides.text_config.centering=false"], "on": ["model.overrides.text_config.centering=true"]},
    ),
    ("temperature", {"0.07": ["model.overrides.temperature=0.07"], "0.03": ["model.overrides.temperature=0.03"]}),
    (
        "objective",
        {
            "align, then joint": [ALIGN_JOINT, "wise_ft=null"],
            "joint": ["stages=[{name: finetune, epochs: 3, objective: joint}]", "wise_ft=null"],
            "joint, 6 epochs": ["stages=[{name: finetune, epochs: 6, objective: joint}]", "wise_ft=null"],
            "align with semantic_structure (weight 0.5), then joint": [
                "stages=[{name: align, epochs: 1, objective: align, constraints: [{name: semantic_structure, weight: 0.5}]},"
                " {name: finetune, epochs: 2, objective: joint}]",
                "wise_ft=null",
            ],
            "align, then joint, WiSE-FT 0.5": [ALIGN_JOINT, WISE_FT],
        },
    ),
    (
        "WiSE-FT per use",
        {
            "one alpha": [],
            "trained vocabulary at alpha 1.0": ["wise_ft={stage: align, alpha: 0.5, seen_alpha: 1.0}"],
        },
    ),
    (
        "visual prototypes",
        {
            "off": ["model.overrides.zero_shot_config.prototype_weight=0.0"],
            "weight 1": ["model.overrides.zero_shot_config.prototype_weight=1.0"],
            "weight 2": ["model.overrides.zero_shot_config.prototype_weight=2.0"],
        },
    ),
    (
        "WordNet in the prototypes",
        {
            "off": ["model.overrides.zero_shot_config.prototype_hierarchy=0.0"],
            "2.5": ["model.overrides.zero_shot_config.prototype_hierarchy=2.5"],
            "5": ["model.overrides.zero_shot_config.prototype_hierarchy=5.0"],
        },
    ),
    (
        "WordNet glosses in the prototypes",
        {
            # Each sets the sharpness too, so that the search starts where it did before the shipped config had 2.5.
            "off": [
                "model.overrides.zero_shot_config.prototype_glosses=0.0",
                "model.overrides.zero_shot_config.prototype_sharpness=5.0",
            ],
            "5": [
                "model.overrides.zero_shot_config.prototype_glosses=5.0",
                "model.overrides.zero_shot_config.prototype_sharpness=5.0",
            ],
            "5, text sharpness 2.5": [
                "model.overrides.zero_shot_config.prototype_glosses=5.0",
                "model.overrides.zero_shot_config.prototype_sharpness=2.5",
            ],
        },
    ),
]
METRIC = {"WiSE-FT per use": "seen_accuracy"}


def ablated() -> list[str]:
    """The overrides that switch off the knobs the ablation (bench_ablation.py, on the folds) removed: those that did
    not hold by two standard errors of pseudo-unseen zero-shot top-1, alone and then removed together one at a
    time. They leave the shipped config, and --rescore scores it without them."""
    return json.loads((RESULTS / "tinyimagenet_ablation.json").read_text())["backward"]["overrides"]


HEADS = {"both": {"head": "both"}, "semantic": {"head": "semantic"}, "conse": {"head": "conse"}}
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
NOTES = [
    "The search space was revised once, after a first run of this protocol (which, like every run, scored "
    "unseen_dev once at its end): 96 px and CLIP's 80 templates were dropped to fit the 30-minute budget "
    "(neither had been chosen), and the temperature knob and the 6-epoch and WiSE-FT candidates were added.",
    "The first knob's 'train (s) per fold' includes computing the backbone features of the 15,000 images once.",
    "Revised again for issue #22 (2026-12-03), before this run: folds train without a development split (10% of "
    "their training part) and report seen accuracy on it; pseudo-unseen classes are scored on their training part "
    "only, so the seen test split is scored once, at the end. Knobs added: the text encoder (all-MiniLM-L6-v2 or "
    "all-mpnet-base-v2) and WiSE-FT per use (the trained vocabulary at alpha 1.0), the latter chosen by seen "
    "accuracy on the development split since it leaves the zero-shot side as it is, and run only when the chosen "
    "objective has WiSE-FT. The levers were explored on folds before this run; benchmarks/bench_levers.py "
    "re-measures them (tinyimagenet_levers.json, section 5c).",
    "Revised again for issue #22 (2026-12-03, later), before this run: the class-texts knob gained two candidates "
    "with WordNet descriptions (model.overrides.text_config.describe=wordnet, from the WordNet 3.0 extract shipped in "
    "the package), after closed-form maps on the folds (ridge regression into the text space) had shown such texts "
    "raising pseudo-unseen accuracy; the DeViSE reference and the linear probe read the same texts as the model.",
    "Revised again for issue #22 (2026-12-03, last): a test-time flip knob (the features of each image and its "
    "mirror averaged, as the model then scores and, with cached features, trains), after a linear probe on the "
    "folds' development splits had gained 0.7 points of seen accuracy from it; the references keep each image alone.",
    "Revised again for issue #22 (2026-12-03, fourth session): a visual-prototypes knob (model.overrides."
    "prototype_weight: each new name scored also by the image's cosine to the trained classes' feature centroids "
    "averaged by text similarity, sharpness 5), after fold models of the previous run's chosen config had gained "
    "1.4 points of pseudo-unseen top-1 from it; the sharpness (5 of 1, 2, 3, 5, 7, 10, 20) and the weights tried "
    "were picked on those folds.",
    "Revised again for issue #22 (2026-12-03, sixth session): a knob for WordNet in the prototypes (model.overrides."
    "prototype_hierarchy: the Wu-Palmer similarity of two classes' WordNet senses added, with this weight, to the "
    "sharpened text similarity by which a new name mixes the trained classes' centroids; each class's sense from "
    "the data's wnid column, data.class_synset_column), after the previous run's fold models had gained 1.6 "
    "points of pseudo-unseen top-1 from it (1.2 with senses guessed from names and synonyms, 0.8 from names alone); "
    "the candidate weights were picked on those folds. The DeViSE reference reads the texts, not the hierarchy.",
    "Revised again (same session), before this run: a tie now goes to the earlier candidate (the search's start, "
    "or the simpler setting). The first run with the WordNet knob broke an exact tie between weights 2.5 and 5 "
    "(36.2% on the folds, the same images right) by float rounding, chose 5 and scored 38.6% on unseen_dev. Its "
    "fold models, scored with the new names' senses guessed from their names instead of the data's wnids, gave "
    "35.4% at 2.5 and 34.9% at 5 (34.6% without WordNet); the tie rule itself picks by order alone. The final "
    "model is now also scored with unseen_dev's senses guessed from the names. A second run, whose tolerance (1e-9) "
    "was below the float32 rounding of the fold accuracies, chose 5 again: 38.6% on unseen_dev, 39.3% with the "
    "senses guessed; this run's tolerance is 1e-6.",
    "Revised again for issue #22 (2026-12-03, seventh session), before this run: where the data gives a class's "
    "WordNet id (data.class_synset_column), its WordNet description (describe_classes) is of that sense, as its "
    "place in the hierarchy already was, not of the sense guessed from its name (they differ for 24 of the 150 seen "
    "classes and 4 of unseen_dev's 25 in classes.tsv: 'organ' was described as the body part, 'slug' as the "
    "bullet). Fold models of the previous run's chosen config gained 1.3 points of pseudo-unseen top-1 from it "
    "(36.2% to 37.5%); the DeViSE reference, which reads the same descriptions, 0.9 (26.1% to 27.0%).",
    "Revised again for issue #22 (2026-12-03, eighth session), before this run: a knob for WordNet's glosses in "
    "the prototypes (model.overrides.prototype_glosses: the cosine similarity of two senses' definitions alone, "
    "embedded by the text encoder, added with this weight to the mixing of the trained classes' centroids), after "
    "the previous run's fold models had gained 0.8 points of pseudo-unseen top-1 from weight 5 and 1.1 from "
    "weight 5 with the text similarity's sharpness halved (benchmarks/bench_prototype_levers.py, 5f, where 26 "
    "other variants gained at most 0.3); the candidates were picked on those folds. The DeViSE reference reads "
    "the texts, not WordNet's glosses as a separate similarity.",
    "Revised again for issue #22 (2026-12-03, ninth session), before this run: a test-time zoom knob (model.overrides."
    "test_time_zoom: the backbone also sees the centre crop of 87.5% of each image's side, resized back, and, with "
    "the flip, its mirror; the pooled features of the four views are averaged, cached so and trained on so), after "
    "the previous run's fold models, scored on such features without retraining, had gained 0.6 points of "
    "pseudo-unseen top-1 (38.6% to 39.2%; every fold up, by 0.1 to 1.0). The fraction was picked on fold 0 "
    "(0.875: +0.8, 0.75: +0.0; shifted crops instead: +0.5). The references keep each image alone.",
    "The glosses knob's candidates set the text similarity's sharpness each (5 unless the candidate says "
    "2.5): the search then starts where the previous run did, not at the 2.5 the shipped config held after it "
    "(with which 'off' and '5' had both run at 2.5 in a first, stopped run of this revision).",
]
RESCORE_NOTE = (
    "Rescored without a search (--rescore, issue #35): the last search's choice with the knobs the ablation "
    "(bench_ablation.py, on the same folds) found not to hold by two standard errors switched off; its fold figures, "
    "offset, final model, unseen_dev scores and matched references are this run's, the knob tables above, the "
    "resolutions and the WiSE-FT curve are the search run's (with the knobs it had). The config's "
    "zero_shot_config.backbone_label_weight (2: ConSE over the backbone's own ImageNet-1k classifier, each name's own "
    "label left out), backbone_classifier_weight (3: each name's classifier borrowed from that classifier's rows by "
    "text similarity) and backbone_classifier_hierarchy (10: and by WordNet's) were chosen after the search, on "
    "bench_fewshot's fold episodes (studies/few_shot/IMAGENET_HEAD.md, LABEL_PROTOTYPES.md and WORDNET_LENDERS.md), "
    "which hold out the same folds' classes, so the CV column is not independent of them; the "
    "references map the backbone's features to the texts and do not read its classifier. Without any (the rescore "
    "of 2026-12-06) the model scored 43.7% on unseen_dev and 39.4% on the folds, GZSL H 39.7%; with the labels alone "
    "(2026-12-07), 47.8%, 44.6% and 41.3%; with the classifiers borrowed by text alone (the rescore before this one, "
    "2026-12-07), 46.8%, 47.7% and 38.1%."
)
# --quick: the first candidate of each knob, but both candidates of these (and the WiSE-FT objective, so that
# the per-use knob runs): every code path once.
QUICK = {
    "projection": None,
    "visual prototypes": None,
    "WordNet in the prototypes": None,
    "WordNet glosses in the prototypes": None,
    "text encoder": None,
    "WiSE-FT per use": None,
    "objective": ["align, then joint, WiSE-FT 0.5"],
}


def base_config(cache_dir: str | None, config: str | Path = CONFIG):
    """The shipped zero-shot config (or ``config``) with this benchmark's data, weights and quiet settings."""
    from visnet_hf.training import load_config

    overrides = [
        f"data.path={DATA / 'seen_train.parquet'}",
        f"model.pretrained_file={WEIGHTS}",
        "data.cache_features=true",
        "trackers=[]",
        "log_every_steps=100000",
        "checkpoints=false",
        "export=false",
    ]
    if cache_dir:
        overrides.append(f"data.feature_cache_dir={cache_dir}")
    return load_config(config, overrides)


def merged(choice: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in choice.items()]


def as_choice(overrides: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in overrides)


def search(config, folds, log) -> dict:
    """Coordinate search over SEARCH, each candidate trained on every fold; returns every stage's table and the choice."""
    from visnet_hf.training.selection import best_choice, cross_validate

    choice: dict[str, str] = {}
    for _, candidates in SEARCH:
        choice.update(as_choice(next(iter(candidates.values()))))
    seen: dict[tuple, object] = {}  # a setting already cross-validated is not trained again
    stages = []
    for knob, candidates in SEARCH:
        if knob == "WiSE-FT per use" and choice.get("wise_ft") in (None, "null"):
            continue  # no interpolation chosen: nothing to choose per use
        metric = METRIC.get(knob, "zero_shot_top1")
        rows = {}
        for name, overrides in candidates.items():
            trial = {**choice, **as_choice(overrides)}
            key = tuple(sorted(trial.items()))
            if key not in seen:
                seen[key] = cross_validate(
                    config, {name: merged(trial)}, folds, variants=HEADS, log=log, dev_fraction=DEV_FRACTION
                )
            table = seen[key]
            label = table.choices()[0][0]
            rows[name] = {head: _row(table, label, head) for head in HEADS}
        best = best_choice({name: max(row[head][metric] for head in HEADS) for name, row in rows.items()})
        choice.update(as_choice(candidates[best]))
        stages.append({"knob": knob, "metric": metric, "candidates": rows, "chosen": best})
        log(f"[protocol] {knob}: {best}")
    final_rows = stages[-1]["candidates"][stages[-1]["chosen"]]
    head = max(final_rows, key=lambda h: final_rows[h]["zero_shot_top1"])
    return {
        "stages": stages,
        "overrides": merged(choice),
        "zero_shot_head": head,
        "calibration": final_rows[head]["calibration"],
        "cv": final_rows[head],
    }


def _row(table, candidate: str, head: str) -> dict:
    summary = next(r for r in table.summary() if r["candidate"] == candidate and r["variant"] == head)
    return {
        k: summary[k]
        for k in ("zero_shot_top1", "zero_shot_top5", "seen_accuracy", "gzsl_harmonic_mean", "calibration", "train_seconds")
    }


def current_spelling(override: str) -> str:
    """``model.overrides.<flat key>=v`` of a search run from before VSENetConfig was grouped, as it is spelled now
    (``model.overrides.text_config.centering=v``), so that a later override of the same field replaces it."""
    from visnet_hf.models.vsenet.configuration_vsenet import LEGACY_KEYS

    key, value = override.split("=", 1)
    prefix, name = "model.overrides.", key.removeprefix("model.overrides.")
    if key.startswith(prefix) and name in LEGACY_KEYS:
        group, field = LEGACY_KEYS[name]
        return f"{prefix}{group}.{field}={value}"
    return override


def rescore(config, folds, log, previous: dict) -> dict:
    """The shipped config scored on the folds without a search: the last search's choice (its tables kept from the
    results file, as ``searched``) with the knobs that did not hold in the ablation switched off (:func:`ablated`)."""
    from visnet_hf.training.selection import cross_validate

    searched = previous.get("searched", previous)  # a rescored file keeps the search it started from
    removed = ablated()
    heads = [o.split("=", 1)[1] for o in removed if o.startswith("model.overrides.zero_shot_config.head=")]
    head = heads[-1] if heads else searched["zero_shot_head"]  # the zero-shot head is scored as a variant
    overrides = [*map(current_spelling, searched["overrides"]), *removed]
    table = cross_validate(
        config, {"shipped": overrides}, folds, variants={head: HEADS[head]}, log=log, dev_fraction=DEV_FRACTION
    )
    cv = _row(table, "shipped", head)
    return {
        "stages": searched["stages"],
        "overrides": overrides,
        "zero_shot_head": head,
        "calibration": cv["calibration"],
        "cv": cv,
        "ablated": removed,
        "searched": {key: searched[key] for key in ("stages", "overrides", "zero_shot_head", "calibration", "cv")},
    }


def train_final(config, overrides: list[str], extra: list[str] = ()):
    from visnet_hf.training import make_accelerator, override, train

    final = override(config, [*overrides, *extra])
    started = time.perf_counter()
    results = train(final, make_accelerator(final))
    return final, results, time.perf_counter() - started


@torch.no_grad()
def score_final(model, config, calibration: float) -> dict:
    """Seen accuracy on the seen test split; zero-shot on unseen_dev; generalised zero-shot over all 175 names."""
    from dataclasses import replace

    from visnet_hf.data import load_splits
    from visnet_hf.training.selection import fold_logits
    from visnet_hf.zero_shot import gzsl_accuracy

    seen = load_splits(config.data, seed=config.seed)
    unseen = load_splits(replace(config.data, path=str(DATA / "unseen_dev.parquet"), val_fraction=0.5), seed=config.seed)
    model.eval()
    unseen_vocabulary = model.vocabulary_for(unseen.class_names, synonyms=unseen.synonyms, synsets=unseen.synsets)
    mixed = model.vocabulary_for(
        seen.class_names + unseen.class_names,
        synonyms=(seen.synonyms + unseen.synonyms) if seen.synonyms else None,
        synsets=(seen.synsets + unseen.synsets) if seen.synsets else None,
    )
    seen_logits = fold_logits(model, seen, "eval", config)
    zero_shot = fold_logits(model, unseen, "both", config, vocabulary=unseen_vocabulary)
    # As a user without WordNet ids for the new names gets it: their senses guessed from the names.
    by_name = model.vocabulary_for(unseen.class_names, synonyms=unseen.synonyms)
    zero_shot_by_name = fold_logits(model, unseen, "both", config, vocabulary=by_name)
    no_offset = model.config.zero_shot_config.without_offset()
    mixed_seen = fold_logits(model, seen, "eval", config, vocabulary=mixed, zero_shot_config=no_offset)
    mixed_unseen = fold_logits(model, unseen, "both", config, vocabulary=mixed, zero_shot_config=no_offset)
    scores = torch.cat([mixed_seen.scores, mixed_unseen.scores])
    labels = torch.cat([mixed_seen.labels, mixed_unseen.labels + len(seen.class_names)])
    return {
        "seen_accuracy": top_k_accuracy(seen_logits.scores, seen_logits.labels, 1),
        "seen_images": len(seen_logits),
        "zero_shot_top1": top_k_accuracy(zero_shot.scores, zero_shot.labels, 1),
        "zero_shot_top5": top_k_accuracy(zero_shot.scores, zero_shot.labels, 5),
        "zero_shot_correct_per_class": correct_per_class(zero_shot.scores, zero_shot.labels, len(unseen.class_names)),
        "zero_shot_top1_senses_guessed": top_k_accuracy(zero_shot_by_name.scores, zero_shot_by_name.labels, 1),
        "unseen_images": len(zero_shot),
        "gzsl_uncalibrated": gzsl_accuracy(scores, labels, mixed.trained, 0.0),
        "gzsl_calibrated": {"offset": calibration, **gzsl_accuracy(scores, labels, mixed.trained, calibration)},
    }


def feature_access(config, model):
    """The frozen backbone's cached features of a split's part, as the model reads them (its test-time views
    averaged: the references read exactly what the model reads), and the model's embedding of class names."""
    from visnet_hf.data import build_transforms
    from visnet_hf.data.features import FeatureCache, FeatureDataset, OneProcess

    _, transform = build_transforms(model.config.data_config, config.data.augment)
    cache = FeatureCache(config.data.feature_cache_dir)

    def features(splits, part):
        dataset, source = (splits.train, splits.train_source) if part == "train" else (splits.eval, splits.eval_source)
        cached = FeatureDataset(dataset, cache.features(model, source, transform, OneProcess(torch.device("cpu"))))
        return cached.features, cached.labels

    def embed(splits):  # the texts the model reads for a split's classes (templates, synonyms, WordNet descriptions)
        return model.vocabulary_for(splits.class_names, synonyms=splits.synonyms, synsets=splits.synsets).embeddings.cpu()

    return features, embed


def both_parts(features, splits) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's training and evaluation parts' features and labels, read once each and joined."""
    (train_x, train_y), (eval_x, eval_y) = features(splits, "train"), features(splits, "eval")
    return torch.cat([train_x, eval_x]), torch.cat([train_y, eval_y])


def references(config, model, folds) -> dict:
    """The zero-shot references (:data:`references.ZERO_SHOT_GRIDS`), each family's setting chosen on the folds, then
    fitted on all seen classes and scored on unseen_dev; and a linear probe for seen accuracy, its weight decay and
    epochs chosen on a development split of the seen training part. All on the model's own features and texts."""
    from dataclasses import replace

    from visnet_hf.data import load_splits
    from visnet_hf.training.selection import best_choice

    features, embed = feature_access(config, model)
    seen = load_splits(config.data, seed=config.seed)
    unseen = load_splits(replace(config.data, path=str(DATA / "unseen_dev.parquet"), val_fraction=0.5), seed=config.seed)
    train_x, train_y = features(seen, "train")
    test_x, test_y = features(seen, "eval")
    unseen_x, unseen_y = both_parts(features, unseen)
    seen_c, unseen_c = embed(seen), embed(unseen)

    settings = {f"{family} / {name}": fit for family, grid in ZERO_SHOT_GRIDS.items() for name, fit in grid.items()}
    on_folds = fold_references(config, model, folds, settings)
    zero_shot = {}
    for family, grid in ZERO_SHOT_GRIDS.items():
        best = best_choice({name: on_folds[f"{family} / {name}"] for name in grid})
        score = grid[best](train_x, train_y, seen_c)
        with torch.no_grad():
            new, old = score(unseen_x, unseen_c), score(test_x, seen_c)
        zero_shot[family] = {
            "setting": best,
            "cv_by_setting": {name: on_folds[f"{family} / {name}"] for name in grid},
            "cv_zero_shot_top1": on_folds[f"{family} / {best}"],
            "zero_shot_top1": top_k_accuracy(new, unseen_y, 1),
            "zero_shot_top5": top_k_accuracy(new, unseen_y, 5),
            "seen_accuracy": top_k_accuracy(old, test_y, 1),
            "zero_shot_correct_per_class": correct_per_class(new, unseen_y, len(unseen.class_names)),
        }
    keep, dev = stratified_split(train_y, DEV_FRACTION)
    classes = len(seen.class_names)
    dev_accuracy = {}
    for index, setting in enumerate(PROBE_GRID):
        probe = fit_probe(train_x[keep], train_y[keep], classes, **setting)
        with torch.no_grad():
            dev_accuracy[index] = top_k_accuracy(probe(train_x[dev]), train_y[dev], 1)
    chosen = PROBE_GRID[int(best_choice({str(i): a for i, a in dev_accuracy.items()}))]
    probe = fit_probe(train_x, train_y, classes, **chosen)
    with torch.no_grad():
        probe_accuracy = top_k_accuracy(probe(test_x), test_y, 1)
    strongest = max(zero_shot, key=lambda family: zero_shot[family]["zero_shot_top1"])
    return {
        "zero_shot": zero_shot,
        "strongest_zero_shot": strongest,
        "linear_probe": {
            "setting": chosen,
            "dev_accuracy_by_setting": {str(PROBE_GRID[i]): a for i, a in dev_accuracy.items()},
            "seen_accuracy": probe_accuracy,
        },
        "reads": "the model's cached features (its test-time views averaged) and its class texts",
    }


def correct_per_class(scores: torch.Tensor, labels: torch.Tensor, classes: int) -> list[int]:
    """How many images of each class are scored top-1 (for the report's interval over resampled classes)."""
    hits = scores.argmax(1) == labels
    return torch.bincount(labels[hits], minlength=classes).tolist()


REFERENCE_MAPS = {"devise": devise_map(), "text_to_image": text_to_image_map()}


def fold_references(config, model, folds, maps=None) -> dict[str, float]:
    """Mean pseudo-unseen zero-shot top-1 over the folds of maps fitted on the cached features of each fold's
    trained classes and their class embeddings: ``maps`` (name -> ``fit(features, labels, class_embeddings)``,
    which returns ``score(features, class_embeddings)``), by default :data:`REFERENCE_MAPS`."""
    from dataclasses import replace

    from visnet_hf.data import load_splits

    maps = REFERENCE_MAPS if maps is None else maps
    features, embed = feature_access(config, model)
    scores: dict[str, list[float]] = {name: [] for name in maps}
    for fold in folds:
        data = replace(config.data, dev_fraction=DEV_FRACTION)  # as the folds of the search: the test part unseen
        trained = load_splits(replace(data, include_classes=list(fold.trained)), seed=config.seed)
        held = load_splits(replace(data, include_classes=list(fold.held_out), max_train_samples=None), seed=config.seed)
        x, y = features(trained, "train")
        held_x, held_y = both_parts(features, held)
        trained_c, held_c = embed(trained), embed(held)
        for name, fit in maps.items():
            score = fit(x, y, trained_c)
            with torch.no_grad():
                scores[name].append(top_k_accuracy(score(held_x, held_c), held_y, 1))
    return {name: sum(values) / len(values) for name, values in scores.items()}


@torch.no_grad()
def images_per_second(model, size: int, batch: int = 64, repeat: int = 2) -> float:
    model.eval()
    images = torch.randn(batch, 3, size, size)
    model(pixel_values=images)
    started = time.perf_counter()
    for _ in range(repeat):
        model(pixel_values=images)
    return batch * repeat / (time.perf_counter() - started)


def wise_ft_curve(config, overrides, calibration) -> list[dict]:
    """Seen and zero-shot accuracy along the line from the aligned stage-1 weights to the fine-tuned ones."""
    from visnet_hf.training import override
    from visnet_hf.wise_ft import interpolate_state

    stages = override(config, overrides).stages
    curve_overrides = overrides if len(stages) > 1 else [*overrides, ALIGN_JOINT]
    first = override(config, curve_overrides).stages[0].name
    final, results, _ = train_final(config, curve_overrides, [f"wise_ft={{stage: {first}, alpha: 1.0}}"])
    model, ends = results["model"], results["wise_ft_endpoints"]
    curve = []
    for alpha in ALPHAS:
        model.load_state_dict(interpolate_state(ends["start"], ends["final"], alpha))
        scored = score_final(model, final, calibration)
        curve.append({"alpha": alpha, "seen_accuracy": scored["seen_accuracy"], "zero_shot_top1": scored["zero_shot_top1"]})
    return curve


def main() -> None:
    from visnet_hf.data import load_splits
    from visnet_hf.training.selection import pseudo_unseen_folds

    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--per-fold", type=int, default=30)
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: visnet_hf's)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 folds, the first candidate of each knob")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="no search: the shipped config (the last search's choice, less what the ablation removed)",
    )
    args = parser.parse_args()
    previous = json.loads((RESULTS / "tinyimagenet_zeroshot.json").read_text()) if args.rescore else None
    started = time.perf_counter()
    if args.quick:
        for index, (knob, candidates) in enumerate(SEARCH):
            keep = QUICK.get(knob, [next(iter(candidates))]) or list(candidates)
            SEARCH[index] = (knob, {name: candidates[name] for name in keep})
        args.folds = 2
    config = base_config(args.cache_dir)
    folds = pseudo_unseen_folds(load_splits(config.data).class_names, args.folds, args.per_fold, seed=0)
    log = lambda line: print(line, flush=True)  # noqa: E731

    chosen = rescore(config, folds, log, previous["protocol"]) if previous else search(config, folds, log)
    log(
        f"[protocol] chosen: {chosen['overrides']}, zero-shot head {chosen['zero_shot_head']}, offset {chosen['calibration']:.3f}"
    )
    overrides = [
        *chosen["overrides"],
        *[f"model.overrides.zero_shot_config.{k}={v}" for k, v in HEADS[chosen["zero_shot_head"]].items()],
    ]
    final, results, seconds = train_final(config, overrides)
    model = results["model"]
    scored = score_final(model, final, chosen["calibration"])
    log(f"[unseen_dev, once] {scored}")
    reference = references(final, model, folds)
    log(f"[references] {reference}")

    resolutions = previous["resolutions"] if previous else []  # --rescore keeps the search run's tables
    for name, resolution_overrides in SEARCH[0][1].items() if not previous else ():
        size_overrides = [*overrides, *resolution_overrides]
        size_config, size_results, size_seconds = train_final(config, size_overrides)
        size_model = size_results["model"]
        resolutions.append(
            {
                "resolution": int(name),
                "cv": chosen["stages"][0]["candidates"][name][chosen["zero_shot_head"]],
                "dev": score_final(size_model, size_config, chosen["calibration"]),
                "images_per_s": images_per_second(copy.deepcopy(size_model), int(name)),
                "train_seconds": size_seconds,
            }
        )
    curve = previous["wise_ft"] if previous else wise_ft_curve(config, overrides, chosen["calibration"])
    write_result(
        "tinyimagenet_zeroshot",
        {
            "folds": args.folds,
            "dev_fraction": DEV_FRACTION,
            "per_fold": args.per_fold,
            "quick": args.quick,
            "rescored": args.rescore,
            "chance_zero_shot_top1": 1 / 25,
            "protocol": chosen,
            "final": {"train_seconds": seconds, **scored},
            "references": reference,
            "resolutions": resolutions,
            "wise_ft": curve,
            "seconds": time.perf_counter() - started,
            "notes": [*NOTES, RESCORE_NOTE] if args.rescore else NOTES,
        },
    )


if __name__ == "__main__":
    main()
