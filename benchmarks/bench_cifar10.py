"""Benchmark 5a: CIFAR-10, the framework's recipe against a plain timm loop at equal wall time, over seeds.

The test part is a fixed, stratified 10% of ../shared/data/cifar10/train.parquet (seed 0), written once
to a file beside the training part, so that every seed of both sides trains on the same 45,000 images
and is scored on the same 5,000. Both sides run the recipe's optimizer, warm-up + cosine schedule,
batch size, epochs and augmentation (random crop with padding 4, horizontal flip), all read from the
framework's shipped config; the reported wall-clock is each side's training time.

The framework's side is the shipped config as a user runs it, with whatever it adds by default
(semantic supervision, label smoothing, EMA, flip test-time augmentation: whatever the config holds). The plain
loop is given the generic ones too (label smoothing, flip test-time augmentation, EMA, as the config holds them),
and a third arm runs the framework without its semantic head: the difference between the framework's two arms,
seed by seed, is what the language side adds.
Those additions are chosen by ``--select`` on a development split of the training part (seed 0),
never on the test part:

    python benchmarks/bench_cifar10.py --recipe resnet18_scratch --flags bf16+cl --select        # choose: ~20 min
    python benchmarks/bench_cifar10.py --recipe resnet18_scratch --flags bf16+cl --seeds 0 1 2   # compare: ~60 min

(minutes on 2 AVX512 cores with native bf16; on a CPU without it, fp32+cl is the fastest setting.)

``--flags`` runs both sides with the same speed settings: ``bf16`` autocast, ``cl`` channels-last,
``compile`` ``torch.compile`` (the framework through its config: ``ACCELERATE_MIXED_PRECISION``,
``model.channels_last``, ``model.compile``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import ROOT, SHARED, write_result

CIFAR10 = SHARED / "data" / "cifar10" / "train.parquet"
WEIGHTS = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
RECIPES = {  # name: (the framework's config, the plain loop's timm model)
    "resnet18_scratch": (ROOT / "configs" / "vsenet_cifar10_4epochs.yaml", "resnet18"),
    "efficientnet_lite0_finetune": (ROOT / "configs" / "frn_efficientnet_lite0_cifar10.yaml", "tf_efficientnet_lite0"),
}
# What --select compares on the development split: additions to the config's recipe, each alone.
# Flip test-time augmentation is scored on every candidate's model, with and without.
WITHOUT_ADDITIONS = ["model.overrides={}", "optim.ema_decay=null"]  # the config's recipe, before --select's choice
CANDIDATES = {
    "as configured, without additions": [],
    "label smoothing 0.1": ["model.overrides.label_smoothing=0.1"],
    "EMA of the weights, decay 0.998": ["optim.ema_decay=0.998"],
}


def recipe_config(recipe: str, overrides: list[str] | None = None):
    from visnet_hf.training.config import load_config

    return load_config(RECIPES[recipe][0], overrides)


def split_files(directory: Path) -> tuple[Path, Path]:
    """The training part and the fixed test part of CIFAR-10, as two parquet files."""
    import datasets

    parts = datasets.Dataset.from_parquet(str(CIFAR10)).train_test_split(test_size=0.1, seed=0, stratify_by_column="label")
    train, test = directory / "train_part.parquet", directory / "test_part.parquet"
    parts["train"].to_parquet(str(train))
    parts["test"].to_parquet(str(test))
    return train, test


def framework(recipe: str, train: Path, test: Path, seed: int, flags: str, extra: list[str] | None = None) -> dict:
    """One run of the shipped config, as ``train.py --config`` runs it, on the given files."""
    import os

    from accelerate.state import AcceleratorState

    from visnet_hf.training import main as train_main

    parts = set(flags.split("+"))
    os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16" if "bf16" in parts else "no"
    AcceleratorState._reset_state()
    config = recipe_config(recipe)
    with tempfile.TemporaryDirectory() as output:
        overrides = [
            f"data.path={train}",
            f"data.eval_path={test}",
            f"seed={seed}",
            f"output_dir={output}",
            "trackers=[]",
            "checkpoints=false",
            "log_every_steps=1000",
            f"model.channels_last={'true' if 'cl' in parts else 'false'}",
            f"model.compile={'true' if 'compile' in parts else 'false'}",
            *(extra or []),
        ]
        if config.model.pretrained_file:
            overrides.append(f"model.pretrained_file={WEIGHTS}")
        results = train_main(["--config", str(RECIPES[recipe][0]), *overrides])
    history = results["state"]["history"]
    return {
        "seed": seed,
        "train_seconds": sum(r["train_seconds"] for r in history),
        "accuracy": results["final_eval"]["accuracy"],
        "top5_accuracy": results["final_eval"]["top5_accuracy"],
        "num_examples": results["final_eval"]["num_examples"],
        "per_epoch_accuracy": [r["eval_accuracy"] for r in history],
        "per_epoch_train_seconds": [r["train_seconds"] for r in history],
        "model": results["model"],
    }


def plain(recipe: str, train: Path, test: Path, seed: int, flags: str, matched: bool = True) -> dict:
    """What a user writes without the framework: datasets + torchvision transforms + timm + a torch loop.

    ``matched``: the loop also gets the generic additions the framework's config uses (label smoothing, flip
    test-time augmentation of the pooled features, an EMA of the weights: whichever the config holds), so that
    the comparison measures what the framework adds beyond them."""
    from contextlib import nullcontext

    import datasets
    import timm
    import timm.utils
    from torchvision import transforms as T

    config = recipe_config(recipe)
    name, size, optim, epochs, batch = (
        RECIPES[recipe][1],
        config.model.image_size,
        config.optim,
        config.stages[0].epochs,
        config.batch_size,
    )
    parts = set(flags.split("+"))
    torch.manual_seed(seed)
    pretrained = config.model.pretrained_file is not None
    kwargs = dict(pretrained_cfg_overlay=dict(file=str(WEIGHTS))) if pretrained else {}
    model = timm.create_model(name, pretrained=pretrained, num_classes=10, **kwargs)
    memory_format = torch.channels_last if "cl" in parts else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in parts else nullcontext()
    data_config = timm.data.resolve_model_data_config(model)
    normalize = T.Normalize(data_config["mean"], data_config["std"])
    train_tf = T.Compose(
        [T.Resize((size, size)), T.RandomCrop(size, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize]
    )
    eval_tf = T.Compose([T.Resize((size, size)), T.ToTensor(), normalize])

    def loader(path, transform, shuffle):
        def apply(rows):
            return {"x": [transform(i.convert("RGB")) for i in rows["image"]], "y": rows["label"]}

        data = datasets.Dataset.from_parquet(str(path)).with_transform(apply)
        return torch.utils.data.DataLoader(
            data,
            batch_size=batch,
            shuffle=shuffle,
            drop_last=shuffle,
            collate_fn=lambda rows: (torch.stack([r["x"] for r in rows]), torch.tensor([r["y"] for r in rows])),
        )

    train_loader, test_loader = loader(train, train_tf, True), loader(test, eval_tf, False)
    head = {n for n, _ in model.get_classifier().named_parameters(prefix=model.default_cfg.get("classifier", "fc"))}
    groups = [  # the same recipe as the framework's: head and backbone rates, no decay on biases and norms
        {
            "params": [p for n, p in model.named_parameters() if (n in head) == is_head and (p.ndim <= 1) == no_decay],
            "lr": optim.lr if is_head else (optim.backbone_lr or optim.lr),
            "weight_decay": 0.0 if no_decay else optim.weight_decay,
        }
        for is_head in (False, True)
        for no_decay in (False, True)
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=optim.lr)
    overrides = config.model.overrides if matched else {}
    smoothing, flip = float(overrides.get("label_smoothing", 0.0)), bool(overrides.get("test_time_flip", False))
    ema = timm.utils.ModelEmaV3(model, decay=optim.ema_decay) if matched and optim.ema_decay else None
    if "compile" in parts:
        model.compile()
    total, warmup = epochs * len(train_loader), optim.warmup_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / (total - warmup)))),
    )
    train_seconds = 0.0
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, y in train_loader:
            with autocast:
                logits = model(x.contiguous(memory_format=memory_format)).float()
                loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update(model)
        train_seconds += time.perf_counter() - start
    scored = (ema.module if ema is not None else model).eval()

    def predict(x):  # with flip: the pooled features of the image and its mirror averaged, as the framework does
        x = x.contiguous(memory_format=memory_format)
        if not flip:
            return scored(x)
        pooled = [scored.forward_head(scored.forward_features(view), pre_logits=True) for view in (x, x.flip(-1))]
        return scored.get_classifier()((pooled[0] + pooled[1]) / 2)

    correct = top5 = count = 0
    with torch.no_grad():
        for x, y in test_loader:
            with autocast:
                scores = predict(x).float()
            correct += (scores.argmax(1) == y).sum().item()
            top5 += (scores.topk(5).indices == y[:, None]).any(1).sum().item()
            count += len(y)
    return {
        "seed": seed,
        "train_seconds": train_seconds,
        "accuracy": correct / count,
        "top5_accuracy": top5 / count,
        "num_examples": count,
    }


def select(recipe: str, train: Path, test: Path, flags: str) -> dict:
    """Each candidate addition trained once (seed 0) on the training part less a 10% development split,
    scored on that split with and without flip test-time augmentation; the test part is not read."""
    from visnet_hf.data import load_eval_data
    from visnet_hf.evaluation import evaluate_on

    config = recipe_config(recipe, [f"data.path={train}", f"data.eval_path={test}", "data.dev_fraction=0.1"])
    dev = load_eval_data(config.data, seed=0, held_out=True)  # the split each candidate's run scored itself on
    rows = []
    for name, extra in CANDIDATES.items():
        started = time.perf_counter()
        run = framework(recipe, train, test, 0, flags, [*WITHOUT_ADDITIONS, "data.dev_fraction=0.1", *extra])
        model = run["model"].eval()
        model.config.test_time_flip = True
        flipped = evaluate_on(model, dev, config.data, batch_size=config.batch_size)
        rows.append(
            {
                "candidate": name,
                "overrides": extra,
                "dev_accuracy": run["accuracy"],
                "dev_accuracy_flip": flipped["accuracy"],
                "dev_images": flipped["num_examples"],
                "train_seconds": run["train_seconds"],
                "seconds": time.perf_counter() - started,
            }
        )
        print(rows[-1])
    scores = [
        (row["dev_accuracy_flip" if flip else "dev_accuracy"], row["candidate"], flip) for row in rows for flip in (False, True)
    ]
    best, candidate, flip = max(scores)
    chosen = [*CANDIDATES[candidate], *(["model.overrides.test_time_flip=true"] if flip else [])]
    return {"rows": rows, "chosen": {"candidate": candidate, "test_time_flip": flip, "dev_accuracy": best, "overrides": chosen}}


def additions(recipe: str) -> dict:
    """What the shipped config adds to the plain recipe (the fields --select chooses)."""
    config = recipe_config(recipe)
    return {"model.overrides": dict(config.model.overrides), "optim.ema_decay": config.optim.ema_decay}


def summary(runs: list[dict]) -> dict:
    accuracies = [run["accuracy"] for run in runs]
    return {
        "mean": statistics.mean(accuracies),
        "standard_error": statistics.stdev(accuracies) / len(accuracies) ** 0.5 if len(accuracies) > 1 else None,
        "train_seconds": statistics.mean(run["train_seconds"] for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    parser.add_argument(
        "--flags", default="fp32", help="speed settings for both sides: fp32, bf16, bf16+cl, bf16+cl+compile, ..."
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed on each side")
    parser.add_argument("--select", action="store_true", help="choose the framework's additions on a development split")
    args = parser.parse_args()
    suffix = "" if args.flags == "fp32" else f"_{args.flags.replace('+', '_')}"
    config = recipe_config(args.recipe)
    recipe_fields = {
        "framework_config": str(RECIPES[args.recipe][0].relative_to(ROOT)),
        "framework_model": config.model.name,
        "plain_model": RECIPES[args.recipe][1],
        "image_size": config.model.image_size,
        "epochs": config.stages[0].epochs,
        "batch": config.batch_size,
        "optimizer": f"AdamW(weight_decay={config.optim.weight_decay})",
        "lr": config.optim.lr,
        "backbone_lr": config.optim.backbone_lr,
        "warmup_steps": config.optim.warmup_steps,
        "schedule": "linear warm-up then cosine",
        "augmentation": "random crop (padding 4) + flip",
        "pretrained": str(WEIGHTS) if config.model.pretrained_file else None,
        "test_split": "stratified 10% of train.parquet, seed 0",
        "flags": args.flags,
    }
    with tempfile.TemporaryDirectory() as directory:
        train, test = split_files(Path(directory))
        if args.select:
            chosen = select(args.recipe, train, test, args.flags)
            write_result(f"cifar10_{args.recipe}_selection{suffix}", {"recipe": recipe_fields, **chosen})
            return
        baseline, ours, no_semantic = [], [], []
        for seed in args.seeds:  # alternate the arms, so a slower or faster spell of the machine hits each
            baseline.append(plain(args.recipe, train, test, seed, args.flags))
            print("plain", baseline[-1])
            run = framework(args.recipe, train, test, seed, args.flags)
            ours.append({k: v for k, v in run.items() if k != "model"})
            print("framework", ours[-1])
            if config.model.name.startswith("vsenet"):  # the language side's share: the same run without the semantic head
                run = framework(args.recipe, train, test, seed, args.flags, ["model.overrides.head=softmax"])
                no_semantic.append({k: v for k, v in run.items() if k != "model"})
                print("framework without the semantic head", no_semantic[-1])
    plain_summary, ours_summary = summary(baseline), summary(ours)
    differences = [o["accuracy"] - b["accuracy"] for o, b in zip(ours, baseline)]
    language = [o["accuracy"] - n["accuracy"] for o, n in zip(ours, no_semantic)]
    write_result(
        f"cifar10_{args.recipe}{suffix}",
        {
            "recipe": {**recipe_fields, "framework_additions": additions(args.recipe)},
            "plain_runs": baseline,
            "framework_runs": ours,
            "plain": plain_summary,
            "framework": ours_summary,
            "difference": {
                "mean": statistics.mean(differences),
                # the two sides' means are independent: the difference's standard error combines both
                "standard_error": (plain_summary["standard_error"] ** 2 + ours_summary["standard_error"] ** 2) ** 0.5
                if len(differences) > 1
                else None,
            },
            "time_ratio": ours_summary["train_seconds"] / plain_summary["train_seconds"],
            "plain_matched": "label smoothing, flip test-time augmentation and EMA as the framework's config has them",
            "framework_without_semantic_runs": no_semantic,
            "framework_without_semantic": summary(no_semantic) if no_semantic else None,
            "language": {  # paired by seed: the same data order, the semantic head the only difference
                "mean": statistics.mean(language),
                "standard_error": statistics.stdev(language) / len(language) ** 0.5 if len(language) > 1 else None,
            }
            if language
            else None,
        },
    )


if __name__ == "__main__":
    main()
