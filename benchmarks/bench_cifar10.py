"""Benchmark 5a: CIFAR-10 accuracy for the same recipe and wall-clock, framework against a plain timm loop.

The held-out test split is a fixed, stratified 10% of ../shared/data/cifar10/train.parquet (seed 0),
the same `train_test_split` call in both. Both sides use the same augmentation (random crop with
padding 4, horizontal flip), optimizer, warm-up + cosine schedule, batch size and epochs; the
reported wall-clock is the training time of each.

    python benchmarks/bench_cifar10.py --recipe resnet18_scratch|efficientnet_lite0_finetune [--flags bf16+cl+compile]

``--flags`` runs both sides with the same speed settings: ``bf16`` autocast, ``cl`` channels-last,
``compile`` ``torch.compile`` (the framework through its config: ``ACCELERATE_MIXED_PRECISION``,
``model.channels_last``, ``model.compile``).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from _common import SHARED, write_result

CIFAR10 = SHARED / "data" / "cifar10" / "train.parquet"
WEIGHTS = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
RECIPES = {
    # name: (framework preset, timm name, image size, epochs, lr, backbone lr, pretrained)
    "resnet18_scratch": ("vsenet_resnet18", "resnet18", 32, 4, 0.002, None, False),
    "efficientnet_lite0_finetune": ("frn_tf_efficientnet_lite0", "tf_efficientnet_lite0", 64, 2, 0.002, 0.0005, True),
}
BATCH = 128
WARMUP = 100


def framework(recipe: str, flags: str = "fp32") -> dict:
    import os

    from accelerate.state import AcceleratorState

    from visnet_hf.training import main as train_main

    preset, _, size, epochs, lr, backbone_lr, pretrained = RECIPES[recipe]
    parts = set(flags.split("+"))
    os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16" if "bf16" in parts else "no"
    AcceleratorState._reset_state()
    with tempfile.TemporaryDirectory() as output:
        overrides = [
            f"model.name={preset}",
            f"model.image_size={size}",
            f"data.path={CIFAR10}",
            "data.val_fraction=0.1",
            "data.max_train_samples=null",
            f"optim.lr={lr}",
            f"optim.warmup_steps={WARMUP}",
            f"batch_size={BATCH}",
            f"stages.0.epochs={epochs}",
            f"output_dir={output}",
            "trackers=[]",
            "log_every_steps=1000",
        ]
        overrides += [
            f"model.channels_last={'true' if 'cl' in parts else 'false'}",
            f"model.compile={'true' if 'compile' in parts else 'false'}",
        ]
        if backbone_lr:
            overrides.append(f"optim.backbone_lr={backbone_lr}")
        if pretrained:
            overrides.append(f"model.pretrained_file={WEIGHTS}")
        results = train_main(["--config", str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"), *overrides])
    history = results["state"]["history"]
    return {
        "train_seconds": sum(r["train_seconds"] for r in history),
        "accuracy": results["final_eval"]["accuracy"],
        "top5_accuracy": results["final_eval"]["top5_accuracy"],
        "per_epoch_accuracy": [r["eval_accuracy"] for r in history],
        "per_epoch_train_seconds": [r["train_seconds"] for r in history],
    }


def plain(recipe: str, flags: str = "fp32") -> dict:
    """What a user writes without the framework: datasets + torchvision transforms + timm + a torch loop."""
    from contextlib import nullcontext

    import datasets
    import timm
    from torchvision import transforms as T

    _, name, size, epochs, lr, backbone_lr, pretrained = RECIPES[recipe]
    parts = set(flags.split("+"))
    torch.manual_seed(0)
    kwargs = dict(pretrained_cfg_overlay=dict(file=str(WEIGHTS))) if pretrained else {}
    model = timm.create_model(name, pretrained=pretrained, num_classes=10, **kwargs)
    memory_format = torch.channels_last if "cl" in parts else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in parts else nullcontext()
    config = timm.data.resolve_model_data_config(model)
    train_tf = T.Compose(
        [
            T.Resize((size, size)),
            T.RandomCrop(size, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(config["mean"], config["std"]),
        ]
    )
    eval_tf = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(config["mean"], config["std"])])
    parts = datasets.Dataset.from_parquet(str(CIFAR10)).train_test_split(test_size=0.1, seed=0, stratify_by_column="label")

    def loader(split, transform, shuffle):
        def apply(batch):
            return {"x": [transform(i.convert("RGB")) for i in batch["image"]], "y": batch["label"]}

        data = split.with_transform(apply)
        return torch.utils.data.DataLoader(
            data,
            batch_size=BATCH,
            shuffle=shuffle,
            drop_last=shuffle,
            collate_fn=lambda rows: (torch.stack([r["x"] for r in rows]), torch.tensor([r["y"] for r in rows])),
        )

    train_loader, test_loader = loader(parts["train"], train_tf, True), loader(parts["test"], eval_tf, False)
    head = {n for n, _ in model.get_classifier().named_parameters(prefix=model.default_cfg.get("classifier", "fc"))}
    groups = [  # the same recipe as the framework's: head and backbone rates, no decay on biases and norms
        {
            "params": [p for n, p in model.named_parameters() if (n in head) == is_head and (p.ndim <= 1) == no_decay],
            "lr": lr if is_head else (backbone_lr or lr),
            "weight_decay": 0.0 if no_decay else 0.05,
        }
        for is_head in (False, True)
        for no_decay in (False, True)
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)
    if "compile" in parts:
        model.compile()
    total = epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / WARMUP if s < WARMUP else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - WARMUP) / (total - WARMUP)))),
    )
    train_seconds = 0.0
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, y in train_loader:
            with autocast:
                loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=memory_format)).float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        train_seconds += time.perf_counter() - start
    model.eval()
    correct = top5 = count = 0
    with torch.no_grad():
        for x, y in test_loader:
            with autocast:
                scores = model(x.contiguous(memory_format=memory_format)).float()
            correct += (scores.argmax(1) == y).sum().item()
            top5 += (scores.topk(5).indices == y[:, None]).any(1).sum().item()
            count += len(y)
    return {"train_seconds": train_seconds, "accuracy": correct / count, "top5_accuracy": top5 / count}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    parser.add_argument(
        "--flags", default="fp32", help="speed settings for both sides: fp32, bf16, bf16+cl, bf16+cl+compile, ..."
    )
    args = parser.parse_args()
    baseline = plain(args.recipe, args.flags)
    print("plain", baseline)
    ours = framework(args.recipe, args.flags)
    print("framework", ours)
    preset, name, size, epochs, lr, backbone_lr, pretrained = RECIPES[args.recipe]
    write_result(
        f"cifar10_{args.recipe}" + ("" if args.flags == "fp32" else f"_{args.flags.replace('+', '_')}"),
        {
            "recipe": {
                "framework_model": preset,
                "plain_model": name,
                "image_size": size,
                "epochs": epochs,
                "batch": BATCH,
                "optimizer": "AdamW(weight_decay=0.05)",
                "lr": lr,
                "backbone_lr": backbone_lr,
                "warmup_steps": WARMUP,
                "schedule": "linear warm-up then cosine",
                "augmentation": "random crop (padding 4) + flip",
                "pretrained": str(WEIGHTS) if pretrained else None,
                "test_split": "stratified 10% of train.parquet, seed 0",
                "flags": args.flags,
            },
            "plain": baseline,
            "framework": ours,
            "time_ratio": ours["train_seconds"] / baseline["train_seconds"],
        },
    )


if __name__ == "__main__":
    main()
