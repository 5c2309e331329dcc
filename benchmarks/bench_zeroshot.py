"""Benchmark 5b: Tiny-ImageNet zero-shot and generalised zero-shot with VSENet.

VSENet (EfficientNet-Lite0 pretrained on ImageNet-1k, 64x64, ``configs/vsenet_tinyimagenet_zeroshot.yaml``:
frozen backbone) trains on the 150 seen classes (``seen_train.parquet``; a stratified 10% is held out
as the seen test set), then switches to the 25 ``unseen_dev`` class names it never trained on and is
scored by each zero-shot head (semantic, ConSE, both). Variants add Soft Tuning constraints or
fine-tune the backbone. References, on the same frozen pretrained backbone features: a DeViSE-style
linear projection to the MiniLM class embeddings (cosine softmax, temperature 0.1), and a softmax
linear probe for the seen accuracy.

The pretrained backbone saw ImageNet-1k, of which Tiny-ImageNet (seen and unseen classes alike)
is a subset: the zero-shot figures are transfer through names, not to concepts the backbone never saw.

    python benchmarks/bench_zeroshot.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from _common import SHARED, write_result

DATA = SHARED / "data" / "tiny-imagenet"
WEIGHTS = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
# name: (Soft Tuning constraints, further config overrides)
VARIANTS = {
    "vsenet": ([], []),
    "vsenet+semantic_structure": (["{name: semantic_structure, weight: 0.5}"], []),
    "vsenet+label_deviation": (["{name: label_deviation, weight: 0.5}"], []),
    "vsenet_finetuned_backbone": ([], ["optim.freeze=none"]),
}


def splits():
    """Seen train and test parts (the training loop's own stratified 10%, seed 0), unseen images, and the names."""
    import datasets

    seen = datasets.Dataset.from_parquet(str(DATA / "seen_train.parquet")).select_columns(["image", "label"])
    parts = seen.train_test_split(test_size=0.1, seed=0, stratify_by_column="label")
    unseen = datasets.Dataset.from_parquet(str(DATA / "unseen_dev.parquet")).select_columns(["image", "label"])
    return parts["train"], parts["test"], unseen, seen.features["label"].names, unseen.features["label"].names


def loader(dataset, transform, batch=128):
    from visnet_hf.data import TransformedDataset, collate

    return torch.utils.data.DataLoader(TransformedDataset(dataset, transform, split="eval"), batch_size=batch, collate_fn=collate)


@torch.no_grad()
def logits_and_labels(model, data):
    """The model's own logits over its current vocabulary, and the labels."""
    model.eval()
    logits, labels = [], []
    for batch in data:
        logits.append(model(pixel_values=batch["pixel_values"]).logits.float())
        labels.append(batch["labels"])
    return torch.cat(logits), torch.cat(labels)


def topk(scores, labels, k):
    return (scores.topk(min(k, scores.shape[1])).indices == labels[:, None]).any(1).float().mean().item()


def harmonic(a, b):
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def gzsl(scores_seen, labels_seen, scores_unseen, labels_unseen, num_seen, offset=0.0):
    """Accuracy over all 175 names, for seen-class and unseen-class images; offset lowers seen names."""
    shift = torch.zeros(scores_seen.shape[1])
    shift[:num_seen] = offset
    seen_acc = ((scores_seen - shift).argmax(1) == labels_seen).float().mean().item()
    unseen_acc = ((scores_unseen - shift).argmax(1) == labels_unseen + num_seen).float().mean().item()
    return {"seen": seen_acc, "unseen": unseen_acc, "harmonic_mean": harmonic(seen_acc, unseen_acc)}


def calibrated(scores_seen, labels_seen, scores_unseen, labels_unseen, num_seen):
    """Fit the offset on the first half of each set (VSENet.fit_calibration's rule), report on the second half."""
    half_s, half_u = len(labels_seen) // 2, len(labels_unseen) // 2
    candidates = torch.cat([torch.zeros(1), torch.linspace(0, float(scores_seen.max() - scores_seen.min()), 400)])
    best = max(
        candidates.tolist(),
        key=lambda o: gzsl(scores_seen[:half_s], labels_seen[:half_s], scores_unseen[:half_u], labels_unseen[:half_u], num_seen, o)["harmonic_mean"],
    )
    return {
        "offset": best,
        "uncalibrated": gzsl(scores_seen[half_s:], labels_seen[half_s:], scores_unseen[half_u:], labels_unseen[half_u:], num_seen),
        "calibrated": gzsl(scores_seen[half_s:], labels_seen[half_s:], scores_unseen[half_u:], labels_unseen[half_u:], num_seen, best),
    }


def train_vsenet(constraints: list[str], extra_overrides: list[str], epochs: int) -> tuple:
    from accelerate.state import AcceleratorState

    from visnet_hf.training import main as train_main

    AcceleratorState._reset_state()
    output = tempfile.mkdtemp()
    overrides = [
        f"data.path={DATA / 'seen_train.parquet'}", f"model.pretrained_file={WEIGHTS}", f"output_dir={output}",
        "trackers=[]", "log_every_steps=1000", "data.val_fraction=0.1",
        f"stages=[{{name: align, epochs: 1, objective: align, constraints: [{', '.join(constraints)}]}},"
        f" {{name: finetune, epochs: {epochs - 1}, objective: joint, constraints: [{', '.join(constraints)}]}}]",
        *extra_overrides,
    ]
    config = Path(__file__).resolve().parents[1] / "configs" / "vsenet_tinyimagenet_zeroshot.yaml"
    results = train_main(["--config", str(config), *overrides])
    return results["model"], sum(r["train_seconds"] for r in results["state"]["history"])


def evaluate_vsenet(model, seen_test, unseen, seen_names, unseen_names) -> dict:
    """Seen accuracy in the trained vocabulary; then, for each zero-shot head, zero-shot over the
    unseen names and generalised zero-shot over all names, scored by the model's own logits."""
    from visnet_hf.data import build_transforms
    from visnet_hf.models.vsenet.configuration_vsenet import ZERO_SHOT_HEADS
    from visnet_hf.data import AugmentConfig

    _, transform = build_transforms(model.config.data_config, AugmentConfig())
    seen_data, unseen_data = loader(seen_test, transform), loader(unseen, transform)
    seen_logits, seen_labels = logits_and_labels(model, seen_data)
    results = {"seen_accuracy": topk(seen_logits, seen_labels, 1), "default_zero_shot_head": model.config.zero_shot_head}
    heads = {head: {} for head in ZERO_SHOT_HEADS}
    model.set_classes(unseen_names)  # each vocabulary is embedded once; the heads only rescore it
    for head, scores in heads.items():
        model.config.zero_shot_head = head
        zero_shot, unseen_labels = logits_and_labels(model, unseen_data)
        scores.update(zero_shot_top1=topk(zero_shot, unseen_labels, 1), zero_shot_top5=topk(zero_shot, unseen_labels, 5))
    model.set_classes(seen_names + unseen_names)
    model.config.calibration = 0.0
    for head, scores in heads.items():
        model.config.zero_shot_head = head
        everything_seen, _ = logits_and_labels(model, seen_data)
        everything_unseen, _ = logits_and_labels(model, unseen_data)
        scores["generalised"] = calibrated(everything_seen, seen_labels, everything_unseen, unseen_labels, len(seen_names))
    model.set_classes(seen_names)
    model.config.zero_shot_head = results["default_zero_shot_head"]
    return {**results, **heads[results["default_zero_shot_head"]], "zero_shot_heads": heads}


def frozen_features(seen_train, seen_test, unseen):
    import timm

    backbone = timm.create_model("tf_efficientnet_lite0", pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(WEIGHTS))).eval()
    config = {**timm.data.resolve_model_data_config(backbone), "input_size": (3, 64, 64), "crop_pct": 1.0}
    transform = timm.data.create_transform(**config)

    @torch.no_grad()
    def features(dataset):
        rows, labels = [], []
        for batch in loader(dataset, transform, batch=256):
            rows.append(backbone(batch["pixel_values"]))
            labels.append(batch["labels"])
        return torch.cat(rows), torch.cat(labels)

    return features(seen_train), features(seen_test), features(unseen)


def fit_linear(features, labels, out_dim, logits_fn, epochs=30):
    torch.manual_seed(0)
    layer = torch.nn.Linear(features.shape[1], out_dim)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for index in torch.randperm(len(features)).split(256):
            loss = F.cross_entropy(logits_fn(layer(features[index])), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return layer


def main() -> None:
    from visnet_hf import TextEncoder, ClassTexts
    from visnet_hf.text_encoders import default_text_encoder

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    seen_train, seen_test, unseen, seen_names, unseen_names = splits()
    results: dict = {"chance_zero_shot_top1": 1 / len(unseen_names), "epochs": args.epochs, "variants": {}}

    # References on frozen pretrained features.
    (train_x, train_y), (seen_x, seen_y), (unseen_x, unseen_y) = frozen_features(seen_train, seen_test, unseen)
    encoder = TextEncoder(default_text_encoder())
    seen_c = encoder.embed_classes(ClassTexts.build(seen_names))
    unseen_c = encoder.embed_classes(ClassTexts.build(unseen_names))
    probe = fit_linear(train_x, train_y, len(seen_names), lambda z: z)
    devise = fit_linear(train_x, train_y, seen_c.shape[1], lambda z: F.normalize(z, dim=-1) @ seen_c.T / 0.1)
    with torch.no_grad():
        projected_unseen = F.normalize(devise(unseen_x), dim=-1)
        projected_seen = F.normalize(devise(seen_x), dim=-1)
        everything = torch.cat([seen_c, unseen_c])
        results["linear_probe_seen_accuracy"] = topk(probe(seen_x), seen_y, 1)
        results["devise"] = {
            "seen_accuracy": topk(projected_seen @ seen_c.T, seen_y, 1),
            "zero_shot_top1": topk(projected_unseen @ unseen_c.T, unseen_y, 1),
            "zero_shot_top5": topk(projected_unseen @ unseen_c.T, unseen_y, 5),
            "generalised": calibrated(projected_seen @ everything.T / 0.1, seen_y, projected_unseen @ everything.T / 0.1, unseen_y, len(seen_names)),
        }
    print("references", results["linear_probe_seen_accuracy"], results["devise"])

    for name in args.variants:
        model, seconds = train_vsenet(*VARIANTS[name], args.epochs)
        results["variants"][name] = {"train_seconds": seconds, **evaluate_vsenet(model, seen_test, unseen, seen_names, unseen_names)}
        print(name, results["variants"][name])
    write_result("tinyimagenet_zeroshot", results)


if __name__ == "__main__":
    main()
