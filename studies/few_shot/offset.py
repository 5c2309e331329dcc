"""Few-shot study: the offset on trained names beside new names given with photos, by number of photos.

A vocabulary that mixes trained names and new ones lowers the trained names' scores by an offset (calibrated
stacking). The zero-shot offset is fitted for new names scored by their texts alone; with photos, the new names'
scores change, and BENCHMARKS.md 5e's generalised figure uses an offset chosen for them on the fold episodes at
k = 4. Here, on the same fold episodes (bench_fewshot's fold models; each fold's development images of its trained
classes and 25 of its held-out classes with k photos each, the rest of their images as queries; 3 draws per fold
and k), the harmonic mean of seen and new top-1 at each offset of a grid, for every k: is one offset right for any
number of photos, and how far is the zero-shot offset from it? The config's two offsets are in the grid, and the one
for names with photos (``example_calibration``) is paired, episode by episode, against the zero-shot one it falls
back to when unset (``calibration``). Neither unseen_dev nor the seen test split is looked at.

    python studies/few_shot/offset.py --work-dir /tmp/fs    # reuses bench_fewshot's fold models there
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # the benchmark's setup (a script, not the library)

from _common import write_study  # noqa: E402
from bench_fewshot import (  # noqa: E402
    DEV_FRACTION,
    KS,
    fold_draws,
    fold_models,
    harmonic,
    mixed_vocabulary,
    shipped_photo_settings,
    study_command,
)

UNSET = "unset (the names' scores' own weight)"


def config_offsets(config) -> dict[str, float]:
    """The config's offsets: for names alone (``calibration``) and beside names with photos (``example_calibration``)."""
    settings = config.model.overrides["zero_shot_config"]
    return {name: float(settings[name]) for name in ("calibration", "example_calibration")}


def main() -> None:
    from visnet_hf.training.selection import fold_data

    started = time.perf_counter()
    work, config, seen, folds = study_command(__doc__.splitlines()[0])
    shipped = config_offsets(config)
    photo_settings = shipped_photo_settings(config)  # the config's, whatever the fold models saved
    offsets = tuple(sorted({*(float(o) for o in range(0, 82, 2)), *shipped.values()}))
    # by k (None: the names alone), one list of harmonic means per offset, over every episode
    found: dict[str, list[list[float]]] = {str(k): [[] for _ in offsets] for k in (None, *KS)}
    for fold, split in zip(fold_models(config, work, folds, seen), folds, strict=True):
        model, side = fold.model, fold.side
        data = fold_data(replace(config.data, dev_fraction=DEV_FRACTION), split, seed=config.seed)
        trained_names = list(model.config.trained_class_names)
        dev_x, dev_y = side.features(data.seen.eval, data.seen.eval_source)
        dev_y = torch.tensor([trained_names.index(data.seen.class_names[label]) for label in dev_y.tolist()])
        settings = model.config.zero_shot_config.without_offset().updated(**photo_settings)
        for draw in fold_draws(fold):
            mixed, examples = mixed_vocabulary(side, model, draw.vocabulary, draw.support, draw.support_labels)
            new_y = draw.query_labels + len(trained_names)
            with torch.no_grad():
                keys = [str(draw.k)] + (["None"] if draw.k == 1 else [])
                for key in keys:
                    scored = harmonic(
                        side, mixed, examples, settings, dev_x, dev_y, draw.queries, new_y, key != "None", offsets=offsets
                    )
                    for index, result in enumerate(scored):
                        found[key][index].append(result["harmonic_mean"])
        print(f"[fold {fold.index}] done ({time.perf_counter() - started:.0f}s)", flush=True)
    with_photos, alone = (offsets.index(shipped[name]) for name in ("example_calibration", "calibration"))
    paired = {k: [a - b for a, b in zip(per_offset[with_photos], per_offset[alone])] for k, per_offset in found.items()}
    paired["all"] = [d for k, differences in paired.items() if k != "None" for d in differences]
    result = {
        "offsets": list(offsets),
        "setting": photo_settings,
        "config_offsets": shipped,
        "example_calibration_gain": {
            k: {"mean": statistics.mean(d), "se": statistics.stdev(d) / len(d) ** 0.5, "episodes": len(d)}
            for k, d in paired.items()
        },
        "harmonic_by_k": {k: [statistics.mean(v) for v in per_offset] for k, per_offset in found.items()},
        "episodes_by_k": {k: len(per_offset[0]) for k, per_offset in found.items()},
        "seconds": time.perf_counter() - started,
    }
    write_study("tinyimagenet_fewshot_offset", result, HERE, "OFFSET.md", report)


def report(result: dict) -> str:
    offsets = result["offsets"]
    lines = [
        "# Few-shot study: the offset on trained names beside new names with photos",
        "",
        f"Command: `{result['command']}` ({result['seconds']:.0f} s, the fold models and their features already there).",
        "",
        "Harmonic mean of seen and new top-1 (%) on the fold episodes, by offset (columns) and photos per new name "
        "(rows; none: the names alone, zero-shot), with the shipped photo setting "
        + ", ".join(f"{k} {UNSET if v is None else v}" for k, v in result["setting"].items())
        + ". The best offset of each row in bold.",
        "",
        "| photos | episodes | " + " | ".join(f"{o:g}" for o in offsets) + " | best |",
        "|---|---|" + "---|" * (len(offsets) + 1),
    ]
    for k, values in result["harmonic_by_k"].items():
        best = max(range(len(offsets)), key=values.__getitem__)
        cells = [f"**{100 * v:.1f}**" if i == best else f"{100 * v:.1f}" for i, v in enumerate(values)]
        label = "none" if k == "None" else k
        lines.append(f"| {label} | {result['episodes_by_k'][k]} | " + " | ".join(cells) + f" | {offsets[best]:g} |")
    shipped, gains = result["config_offsets"], result["example_calibration_gain"]
    lines += [
        "",
        f"The config's offset beside names with photos (`example_calibration` {shipped['example_calibration']:g}) against "
        f"the zero-shot one it falls back to when unset (`calibration` {shipped['calibration']:g}), paired over the same "
        "episodes (harmonic mean, points, mean ± standard error):",
        "",
        "| photos | episodes | gain |",
        "|---|---|---|",
    ]
    for k, gain in gains.items():
        label = {"None": "none (no photos: the offset is not used)", "all": "all k with photos"}.get(k, k)
        lines.append(f"| {label} | {gain['episodes']} | {100 * gain['mean']:+.1f} ± {100 * gain['se']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
