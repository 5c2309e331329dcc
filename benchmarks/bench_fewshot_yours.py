"""Benchmark 5e on your own model and classes: a saved VSENet given k photos of each class, against the same four
references as 5e.

    python benchmarks/bench_fewshot_yours.py --model outputs/zs/model --data new_photos/
    python benchmarks/bench_fewshot_yours.py --model M --data new.parquet --seen-data train.parquet --output mine.json

``--data`` holds images of classes new to the model (a folder of class folders or a labelled file, as `visnet extend`
reads it). For each k of 1, 2, 4, 8 and 16 that leaves every class an image to score, k photos of each class are
drawn and the class's other images scored among all the classes, ``--draws`` times (5 by default, each from its own
seed). Every method reads the same features (the model's test-time views averaged) and the same class texts:

    visnet_hf                 the names and photos scored as `visnet extend` and `model.set_classes(names,
                              examples=...)` score them (the model's own zero_shot_config)
    nearest class mean        cosine to the mean of the k photos, features standardised
    linear probe              softmax regression on the k photos' standardised features
    zero-shot                 the same model, from the names alone
    Tip-Adapter over DeViSE   a DeViSE map's cosine logits to the names plus Tip-Adapter's cache of the k photos

``--example-weights 2 4 8`` scores the framework at these photo weights as well (``visnet extend --example-weight``),
paired against the model's own over the same draws at every k, and names the one that wins most among those that win
by two standard errors: photos unlike the model's training images may want less weight than the one its config was
given (studies/few_shot/OTHER_DOMAIN.md). That choice is made on these images, so its gain is optimistic; extend
with it, and confirm on images held out of ``--data``.

The references take the settings 5e chose on its Tiny-ImageNet folds (results/tinyimagenet_fewshot.json), as the
framework takes its defaults from there: neither is tuned on your classes, which are scored once. The DeViSE map is
fitted on images of the model's trained classes: those of the run that trained it (the data section of its
training_config.yaml) unless ``--seen-data`` names others, up to ``--seen-per-class`` images of each class. The goals
lines are issue #36's: at k <= 4 the framework against the best reference at 2k, above it the best reference at k
plus one point.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch
from _common import RESULTS, write_result
from bench_fewshot import (
    KS,
    Side,
    accuracy,
    devise_map,
    draw,
    framework_logits,
    reference_logits,
    summary,
)
from report import _few_shot_goals, pct

REFERENCE_SETTINGS = RESULTS / "tinyimagenet_fewshot.json"
REFERENCES = ("linear probe", "Tip-Adapter over DeViSE", "nearest class mean", "zero-shot")


def episode_logits(
    side, devise, vocabulary, support, support_labels, queries, settings, example_weights=()
) -> dict[str, torch.Tensor]:
    """Every method's logits for one draw: the framework at the model's own settings (and at each of
    ``example_weights``), the references at ``settings``."""
    return {
        "visnet_hf": framework_logits(side, vocabulary, support, support_labels, queries, {}),
        **{
            weighed(weight): framework_logits(side, vocabulary, support, support_labels, queries, {"example_weight": weight})
            for weight in example_weights
        },
        **reference_logits(side, devise, vocabulary, support, support_labels, queries, settings),
    }


def weighed(weight: float) -> str:
    """The framework's row at photo weight ``weight``."""
    return f"visnet_hf, example_weight {weight:g}"


def weight_choice(result: dict) -> str:
    """The photo weights given against the model's own, paired over the same draws at every k, and the one that gains
    most of those that beat it by two standard errors (what a setting must hold by to be worth changing), if any."""
    settings, top1 = result["framework_settings"], result["top1_by_draw"]
    own = (
        f"{settings['photo_weight']:g}"
        if settings["example_weight"] is not None
        else (f"{settings['names_weight']:g}, or what each draw's photos choose where that is more")
    )
    mine = [value for values in top1["visnet_hf"].values() for value in values]
    gains = {}
    for weight in result["example_weights"]:
        theirs = [value for values in top1[weighed(weight)].values() for value in values]
        gains[weight] = summary([a - b for a, b in zip(theirs, mine, strict=True)])
    said = "Photo weight against the model's own ({}), paired over {} draws: {}.".format(
        own, len(mine), ", ".join(f"{w:g}: {100 * g['mean']:+.1f} ± {100 * g['se']:.1f} points" for w, g in gains.items())
    )
    if len(mine) < 3:
        return f"{said} Too few draws to choose by (--draws): keep the model's own."
    winners = [weight for weight, gain in gains.items() if gain["mean"] > max(2 * gain["se"], 0.0)]
    if not winners:
        return f"{said} None beats the model's own by two standard errors: keep it."
    best = max(winners, key=lambda weight: gains[weight]["mean"])
    return (
        f"{said} {best:g} beats it by more than two standard errors here (the most of those that do); it was chosen on "
        f"these images, so that gain is optimistic: extend with `visnet extend --example-weight {best:g}` and confirm "
        "on images held out of --data."
    )


def every_image(side, source, labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The features of every readable image of ``source``, labelled ``labels`` (one per row)."""
    import datasets

    return side.features(datasets.Dataset.from_dict({"source_index": list(range(len(labels))), "label": labels}), source)


def seen_features(side, data, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``per_class`` training images of each of the model's trained classes in ``data`` (the first ones), as
    features, labelled in the order the model's heads follow.

    Raises:
        SystemExit: ``data`` is not there, or holds none of the model's trained classes.
    """
    from visnet_hf.data import load_splits
    from visnet_hf.errors import DataError

    try:
        seen = load_splits(data)
    except DataError as error:  # the training run's data, named as that run was given it, is not here
        sys.exit(f"bench_fewshot_yours: error: {str(error).rstrip('.')}; give the images the model trained on with --seen-data.")
    trained = list(side.model.config.trained_class_names)
    order = {index: trained.index(name) for index, name in enumerate(seen.class_names) if name in trained}
    if not order:
        sys.exit(
            f"bench_fewshot_yours: error: {data.path} holds none of the model's trained classes ({', '.join(trained[:5])}, "
            "...): give the images it trained on with --seen-data."
        )
    taken: dict[int, int] = {}
    rows, labels = [], []
    for source_row, label in zip(seen.train["source_index"], seen.train["label"], strict=True):
        if label in order and taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            rows.append(source_row)
            labels.append(order[label])
    return every_image(side, seen.train_source.select(rows), labels)  # these images only, not the whole source


def new_classes(side, path: str):
    """Every image of ``path`` (the train split of a source with several) as features, their labels, and the model's
    vocabulary of their class names (with their synonyms and WordNet ids where the data gives them)."""
    from visnet_hf.data import DataConfig, load_eval_data

    data = load_eval_data(DataConfig(path=path), split="train")
    x, y = every_image(side, data.dataset, list(data.dataset["label"]))
    return x, y, side.model.vocabulary_for(data.class_names, synonyms=data.synonyms, synsets=data.synsets)


def compare(side, devise, x, y, vocabulary, settings, ks, draws: int, example_weights=()) -> dict:
    """``{method: {k: summary of top-1 over the draws}}``, and the number of images scored per draw at each k."""
    results: dict[str, dict[str, list[float]]] = {
        method: {} for method in ("visnet_hf", *map(weighed, example_weights), *REFERENCES)
    }
    scored = {}
    for k, number in itertools.product(ks, range(draws)):
        generator = torch.Generator().manual_seed(7000 + 10 * k + number)  # bench_fewshot's unseen_dev draws
        support, support_labels, queries, query_labels = draw(x, y, list(range(len(vocabulary))), k, generator)
        logits = episode_logits(side, devise, vocabulary, support, support_labels, queries, settings, example_weights)
        for method, values in logits.items():
            results[method].setdefault(str(k), []).append(accuracy(values, query_labels))
        scored[str(k)] = len(query_labels)
    return {
        "scores": {method: {k: summary(values) for k, values in by_k.items()} for method, by_k in results.items()},
        "top1_by_draw": results,
        "images_scored_per_draw": scored,
    }


def table(result: dict) -> str:
    ks = list(result["images_scored_per_draw"])
    scores = result["scores"]
    lines = [
        f"{result['classes']} classes of {result['data']}, {result['draws']} draws per k; top-1 on the images not drawn "
        f"({', '.join(f'{n} at k = {k}' for k, n in result['images_scored_per_draw'].items())}), mean ± standard error "
        "over the draws.",
        "",
        "| method | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for method, by_k in scores.items():
        lines.append(f"| {method} | " + " | ".join(f"{pct(by_k[k]['mean'])} ± {pct(by_k[k]['se'])}" for k in ks) + " |")
    lines += ["", f"Goals (issue #36): {_few_shot_goals(scores, ks)}"]
    if result["example_weights"]:
        lines.append(weight_choice(result))
    if result["left_out_ks"]:
        lines.append(f"Left out: k = {', '.join(map(str, result['left_out_ks']))} (a class has no image left to score).")
    return "\n".join(lines)


def run_data(model: str):
    """The data section of the run that trained ``model`` (its training_config.yaml)."""
    from visnet_hf.errors import ModelLoadError
    from visnet_hf.evaluation import run_data_config

    try:
        return run_data_config(model)[0]
    except ModelLoadError:
        sys.exit(
            f"bench_fewshot_yours: error: {model} does not say what it trained on (no training_config.yaml): give images "
            "of its trained classes with --seen-data (for the DeViSE map of Tip-Adapter's reference)."
        )


def main() -> None:
    from visnet_hf.data import DataConfig
    from visnet_hf.hub import load_model
    from visnet_hf.training import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved VSENet (a folder or a Hub id)")
    parser.add_argument("--data", required=True, help="images of the new classes: a folder of class folders or a labelled file")
    parser.add_argument("--seen-data", default=None, help="images of the model's trained classes (default: its training run's)")
    parser.add_argument("--seen-per-class", type=int, default=100, help="images per trained class the DeViSE map is fitted on")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: visnet_hf's)")
    parser.add_argument("--output", default=None, help="also write the result to this .json file")
    parser.add_argument(
        "--example-weights",
        type=float,
        nargs="+",
        default=[],
        metavar="W",
        help="also score the framework at these photo weights (visnet extend --example-weight), paired against the "
        "model's own, and name the one that wins most by two standard errors or more",
    )
    args = parser.parse_args()
    if not all(weight >= 0 for weight in args.example_weights):
        parser.error(f"--example-weights must be >= 0 (0: the names alone); got {args.example_weights}.")

    model = load_model(args.model)
    if not hasattr(model, "set_classes"):
        sys.exit(f"bench_fewshot_yours: error: {args.model} holds a {type(model).__name__}; benchmark 5e needs a VSENet.")
    config = load_config(
        None, [f"data.path={args.data}"] + ([f"data.feature_cache_dir={args.cache_dir}"] if args.cache_dir else [])
    )
    side = Side(model, config)
    seen_data = DataConfig(path=args.seen_data) if args.seen_data else run_data(args.model)
    devise = devise_map(*seen_features(side, seen_data, args.seen_per_class), side, model)
    x, y, vocabulary = new_classes(side, args.data)
    fewest = int(torch.bincount(y, minlength=len(vocabulary)).min())
    ks = [k for k in KS if k < fewest]
    if not ks:
        sys.exit(
            f"bench_fewshot_yours: error: a class of {args.data} has {fewest} image(s); each needs 2 or more (a photo and one to score)."
        )
    chosen = json.loads(REFERENCE_SETTINGS.read_text())["chosen"]
    result = {
        "model": args.model,
        "data": args.data,
        "classes": len(vocabulary),
        "draws": args.draws,
        "fewest_images_per_class": fewest,
        "left_out_ks": [k for k in KS if k >= fewest],
        "reference_settings": {method: chosen[method]["setting"] for method in REFERENCES},
        "framework_settings": {
            **model.config.zero_shot_config.to_dict(),
            "photo_weight": model.config.zero_shot_config.photo_weight(),
            "names_weight": model.config.zero_shot_config.names_weight(),
        },
        "example_weights": args.example_weights,
        **compare(
            side, devise, x, y, vocabulary, {m: chosen[m]["setting"] for m in REFERENCES}, ks, args.draws, args.example_weights
        ),
    }
    print(table(result))
    if args.output:
        output = Path(args.output)
        write_result(output.stem, result, results=output.parent)


if __name__ == "__main__":
    from visnet_hf.errors import notes_as_cli_lines, reported_as_cli_errors

    with reported_as_cli_errors("bench_fewshot_yours"), notes_as_cli_lines("bench_fewshot_yours"):
        main()
