"""Few-shot study: the borrowed classifiers on unseen_dev, class by class, where the development set and the folds disagreed.

``zero_shot_config.backbone_classifier_weight`` (each name's classifier borrowed from the backbone's ImageNet-1k
classifier, weight 3, chosen on the fold episodes: LABEL_PROTOTYPES.md), mixed by the text alone, raised zero-shot
top-1 on BENCHMARKS.md 5b's folds by 3.1 ± 0.9 points and lowered it on unseen_dev, a development set of 25 classes,
by 1.0; with the WordNet hierarchy in the mix (``backbone_classifier_hierarchy``, WORDNET_LENDERS.md) it raises both.
This study asks whether unseen_dev can tell the two apart: bench_fewshot's final model (the shipped config, trained on the 150 seen
classes) scores every unseen_dev image from the 25 names alone, with the borrowed classifiers and without them (the
weight set to 0, nothing else changed), and pairs the two by class. Beside each class: the ImageNet labels its
classifier borrows most from (the softmax over the labels of the sharpness x the text cosine plus the hierarchy x
the Wu-Palmer similarity of the senses, its own label left out), which is where a class is lost or won. Nothing is chosen here.

    python studies/few_shot/borrowed_by_class.py --work-dir /tmp/fs   # seconds on 2 cores with bench_fewshot's final model and features there
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

from _common import machine_text, write_study  # noqa: E402
from bench_fewshot import DATA, Side, study_command, train_or_load, zero_shot_logits  # noqa: E402

LENDERS = 3  # the labels listed beside each class


@torch.no_grad()
def lenders(model, vocabulary) -> list[list[tuple[str, float]]]:
    """For each name, the labels its borrowed classifier mixes most, with their shares."""
    from timm.data import ImageNetInfo

    labels = model.zero_shot.backbone_labels
    own = labels.own_labels(vocabulary.names, vocabulary.synsets)
    hierarchy = model.config.zero_shot_config.backbone_classifier_hierarchy
    shares = labels.lenders(model.scored_embeddings(vocabulary.embeddings), own, vocabulary.synsets, hierarchy).topk(LENDERS)
    names = ImageNetInfo("imagenet-1k").label_descriptions()
    return [
        [(names[i].split(",")[0], round(v, 3)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]
        for values, indices in zip(shares.values, shares.indices, strict=True)
    ]


def main() -> None:
    from visnet_hf.data import load_splits
    from visnet_hf.training import override

    started = time.perf_counter()
    work, config, _, _ = study_command(__doc__.splitlines()[0])
    unseen = load_splits(replace(config.data, path=str(DATA / "unseen_dev.parquet"), val_fraction=0.5), seed=config.seed)
    model, _ = train_or_load(override(config, [f"output_dir={work / 'final_run'}"]), work, "final")
    side = Side(model, config)
    parts = [side.features(unseen.train, unseen.train_source), side.features(unseen.eval, unseen.eval_source)]
    features, labels = torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
    vocabulary = model.vocabulary_for(unseen.class_names, synonyms=unseen.synonyms, synsets=unseen.synsets)
    predicted = {
        "with": zero_shot_logits(side, vocabulary, features).argmax(-1),
        "without": zero_shot_logits(side, vocabulary, features, borrowed_classifiers=False).argmax(-1),
    }
    classes = []
    for index, (name, lent) in enumerate(zip(unseen.class_names, lenders(model, vocabulary), strict=True)):
        mine = labels == index
        right = {key: int((values[mine] == index).sum()) for key, values in predicted.items()}
        classes.append({"class": name, "images": int(mine.sum()), **right, "lenders": lent})
    differences = [(row["with"] - row["without"]) / row["images"] for row in classes]
    result = {
        "images": len(labels),
        "top1": {key: float((values == labels).float().mean()) for key, values in predicted.items()},
        "paired_by_class": {
            "gain": statistics.mean(differences),
            "se": statistics.stdev(differences) / len(differences) ** 0.5,
        },
        "classes": classes,
        "seconds": time.perf_counter() - started,
    }
    write_study("tinyimagenet_fewshot_borrowed_by_class", result, HERE, "BORROWED_BY_CLASS.md", report)


def report(result: dict) -> str:
    paired, top1 = result["paired_by_class"], result["top1"]
    lines = [
        "# Few-shot study: the borrowed classifiers on unseen_dev, class by class",
        "",
        f"Command: `{result['command']}` ({result['seconds']:.0f} s). Machine: {machine_text(result['machine'])}.",
        "",
        "bench_fewshot's final model (the shipped config, trained on the 150 seen classes) on unseen_dev (a development",
        f"set), from the 25 names alone, on {result['images']} images: zero-shot top-1 {100 * top1['with']:.1f}% with the",
        f"borrowed classifiers, {100 * top1['without']:.1f}% without; paired by class, "
        f"{100 * paired['gain']:+.1f} ± {100 * paired['se']:.1f} points (mean ± standard error over the "
        f"{len(result['classes'])} classes). Nothing is chosen here.",
        "",
        "| class | images right with | without | difference | borrows most from |",
        "|---|---|---|---|---|",
    ]
    for row in sorted(result["classes"], key=lambda row: row["with"] - row["without"]):
        lent = ", ".join(f"{name} ({100 * share:.0f}%)" for name, share in row["lenders"])
        lines.append(
            f"| {row['class']} | {row['with']} of {row['images']} | {row['without']} | {row['with'] - row['without']:+d} | {lent} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
