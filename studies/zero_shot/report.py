"""Render ``studies/zero_shot/REPORT.md`` from the studies' results (``results/*.json``).

python studies/zero_shot/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))

from report import heading, pct  # noqa: E402  (the benchmark report's table helpers)

OUTPUT = HERE / "REPORT.md"


def load(name: str) -> dict | None:
    path = HERE / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def levers_section(result: dict) -> list[str]:
    """Every lever tried on the folds, kept or not, per way of training the fold models (text encoder, label smoothing)."""
    lines = [
        *heading("## 5c. Levers for seen accuracy and zero-shot, measured on the folds", result),
        f"Each of {result['folds']} folds trains the zero-shot config's VSENet of the run's date (class texts: names only; WordNet"
        " descriptions came later, 5b), as align-then-joint stages, on 120 classes (WiSE-FT's far end, so both ends are at",
        f"hand) without a development split ({pct(result['dev_fraction'])} of the training part); each lever is scored on that fold",
        "model: seen accuracy on the development split, zero-shot top-1 on the 30 held-out classes, GZSL H with the fold's",
        "offset. Means over the folds; the seen test split and `unseen_dev` take no part.",
        "",
    ]
    for encoder, rows in result["levers"].items():
        lines += [
            f"Fold models trained with `{encoder}`:",
            "",
            "| lever | zero-shot top-1 | seen acc. (dev) | GZSL H |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {pct(row['zero_shot_top1'])} | {pct(row['seen_accuracy'])} | {pct(row['gzsl_harmonic_mean'])} |"
            for name, row in rows.items()
            if name != "per_fold"
        ]
        lines.append("")
    lines += [*[f"Note: {note}" for note in result.get("notes", [])], ""]
    return lines


MAP_NAMES = {
    "devise": "images into the text space (DeViSE; VSENet's projection)",
    "text_to_image": "class texts into the image feature space (DEM)",
    "ridge": "closed form: ridge regression of images onto their class's embedding, strength {}",
    "eszsl": "closed form: ESZSL, gamma {}, lambda {}",
    "sae": "closed form: SAE's image-to-text encoder, lambda {}",
}


def _map_name(key: str) -> str:
    if key in MAP_NAMES:
        return MAP_NAMES[key]
    kind, *values = key.split("_")
    return MAP_NAMES[kind].format(*values)


def direction_section(result: dict) -> list[str]:
    """5d: images into the text space (DeViSE, VSENet's way), class texts into the image space (DEM), and
    closed-form linear maps, all on the folds."""
    scores = result["cv_zero_shot_top1"]
    better = "text_to_image" if scores["text_to_image"] > scores["devise"] else "devise"
    texts = "names and WordNet descriptions" if result.get("describe_classes") else "names only"
    best = max(scores, key=scores.get)
    return [
        *heading("## 5d. Which way the semantic map points, measured on the folds", result),
        f"Linear maps on the shipped zero-shot config's cached features ({result['image_size']} px) and "
        f"`{result['text_encoder']}` class texts ({texts}, as the config had them on the run's date); the first two trained"
        " with a cosine softmax at temperature 0.1, the closed forms fitted on standardised features and centred class"
        f" embeddings. Mean pseudo-unseen zero-shot top-1 over {result['folds']} folds (30 held-out classes each, scored by"
        " their class texts; the seen test split and `unseen_dev` take no part). Every strength tried is listed.",
        "",
        "| map | zero-shot top-1 (folds) |",
        "|---|---|",
        *[f"| {_map_name(key)} | {pct(value)} |" for key, value in scores.items()],
        "",
        f"Of the two trained maps, better on the folds: {'the reverse map (DEM)' if better == 'text_to_image' else 'the image-to-text map VSENet already uses'}"
        f" ({100 * abs(scores['text_to_image'] - scores['devise']):.1f} points apart); best of all: {_map_name(best)}"
        f" ({pct(scores[best])}).",
        "",
    ]


def unfreeze_section(result: dict) -> list[str]:
    """5e: the backbone's last block trained too, against the frozen backbone, on the folds."""
    lines = [
        *heading("## 5e. Image-side partial unfreezing, measured on the folds", result),
        "The shipped zero-shot config without visual prototypes (they need a frozen backbone), against the same config whose",
        "backbone's last block and head convolution train too, at a tenth of the heads' learning rate. Means over folds "
        f"{', '.join(str(i) for i in result['folds'])} of the zero-shot benchmark's 5 (each trains on 120 classes without a development split of",
        "10% of its training part); the seen test split and `unseen_dev` take no part.",
        "",
        "| candidate | zero-shot head | zero-shot top-1 | per fold | seen acc. (dev) | GZSL H | train (s) per fold |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        per_fold = ", ".join(pct(v) for v in row["per_fold"])
        lines.append(
            f"| {row['candidate']} | {row['head']} | {pct(row['zero_shot_top1'])} | {per_fold} | {pct(row['seen_accuracy'])} | "
            f"{pct(row['gzsl_harmonic_mean'])} | {row['train_seconds']:.0f} |"
        )
    return [*lines, "", *[f"Note: {note}" for note in result.get("notes", [])], ""]


def prototype_levers_section(result: dict) -> list[str]:
    """5f: ways to score new names with the visual prototypes, each rescoring the baseline config's fold models."""
    scores, per_fold = result["zero_shot_top1"], result["zero_shot_top1_per_fold"]
    baseline = next(iter(scores))
    lines = [
        *heading("## 5f. Ways to score new names with the visual prototypes, measured on the folds", result),
        "The shipped zero-shot config as it was before `prototype_glosses` (glosses 0, text sharpness 5), trained on each of"
        f" {result['folds']} folds of the zero-shot benchmark (120 classes, less a"
        " development split of 10% of their training part); every row rescores the same fold models' held-out images"
        f" ({result['held_out_images_per_fold']} per fold, 30 classes) over the held-out names, none retrains and none was"
        " chosen: every variant tried is listed. The seen test split and `unseen_dev` take no part.",
        "",
        "| variant | zero-shot top-1 (folds) | against the baseline | per fold |",
        "|---|---|---|---|",
    ]
    for name, value in scores.items():
        difference = "" if name == baseline else f"{100 * (value - scores[baseline]):+.1f}"
        lines.append(f"| {name} | {pct(value)} | {difference} | {', '.join(pct(v) for v in per_fold[name])} |")
    return [*lines, "", *[f"Note: {note}" for note in result.get("notes", [])], ""]


def render() -> str:
    """REPORT.md as the studies' stored results make it."""
    lines = [
        "# Zero-shot studies: a lab notebook",
        "",
        "Experiments run while the Tiny-ImageNet zero-shot config was developed (BENCHMARKS.md, section 5b). They are",
        "kept because they say what was tried and what it gave, not as figures to rely on: every one of them was run on",
        "pseudo-unseen folds of the seen classes, and what it found fed choices that were later scored on `unseen_dev`,",
        "which is therefore a development set. Each section names its script and the date it ran; rerun one with",
        "`python studies/zero_shot/<script>.py`, then `python studies/zero_shot/report.py`.",
        "",
    ]
    for name, section in (
        ("tinyimagenet_levers", levers_section),
        ("tinyimagenet_projection_direction", direction_section),
        ("tinyimagenet_unfreeze", unfreeze_section),
        ("tinyimagenet_prototype_levers", prototype_levers_section),
    ):
        result = load(name)
        if result:
            lines += section(result)
    return "\n".join(lines)


def main() -> None:
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
