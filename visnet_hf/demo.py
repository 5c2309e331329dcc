"""A two-minute tour: build both model families, train a few steps on real images, save, reload, predict."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from .registry import create_model
from .text.local_copies import DEFAULT_TEXT_ENCODER

CIFAR10 = Path("../shared/data/cifar10/train.parquet")


def _images(count: int):
    """Real CIFAR-10 images when ../shared/data is beside the checkout; a generated set otherwise."""
    if CIFAR10.exists():
        from datasets import Dataset

        dataset = Dataset.from_parquet(str(CIFAR10), split="train").shuffle(seed=0).select(range(count))
        return list(dataset["image"]), list(dataset["label"]), dataset.features["label"].names, str(CIFAR10)
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    names = ["red", "green", "blue"]
    labels = [int(i) for i in rng.integers(0, 3, count)]
    images = []
    for label in labels:
        array = rng.integers(0, 80, (32, 32, 3))
        array[..., label] += 150
        images.append(Image.fromarray(array.astype("uint8")))
    return images, labels, names, "a generated set of coloured images"


def run_demo(output_dir: str | None = None, steps: int = 10, text_encoder: str | None = None) -> dict:
    """Build, train ``steps`` steps, save, reload through the Auto classes, and run a pipeline."""
    from transformers import AutoModelForImageClassification, pipeline

    images, labels, names, source = _images(64)
    print(f"Images: {len(images)} from {source}; classes: {', '.join(names)}")
    output = Path(output_dir or tempfile.mkdtemp(prefix="visnet_demo_"))
    results = {}
    for preset, overrides in (
        ("vsenet_resnet18", {"class_names": names, "text_encoder": text_encoder or DEFAULT_TEXT_ENCODER}),
        ("frn_resnet18", {"num_labels": len(names), "id2label": dict(enumerate(names))}),
    ):
        torch.manual_seed(0)
        model = create_model(preset, image_size=32, **overrides)
        batch = model.image_processor()(images, return_tensors="pt")
        target = torch.tensor(labels)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        losses = []
        for _ in range(steps):
            loss = model(**batch, labels=target).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        directory = output / preset
        model.eval().save_pretrained(directory)
        reloaded = AutoModelForImageClassification.from_pretrained(directory)
        with torch.no_grad():
            same = torch.allclose(reloaded(**batch).logits, model(**batch).logits, atol=1e-6)
        prediction = pipeline("image-classification", model=str(directory))(images[0])[0]
        print(
            f"{preset}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps; saved to {directory}; "
            f"reloaded logits identical: {same}; first image: {prediction['label']} ({prediction['score']:.2f}), "
            f"true: {names[labels[0]]}"
        )
        results[preset] = {"first_loss": losses[0], "last_loss": losses[-1], "directory": str(directory), "same": same}
    return results
