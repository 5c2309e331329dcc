"""Benchmark 5c: what zero-shot scoring costs on top of the backbone, and where the time goes.

The shipped zero-shot config's model (``configs/vsenet_tinyimagenet_zeroshot.yaml``: EfficientNet-Lite0 at
128 px, its test-time views, ConSE, visual prototypes with WordNet glosses) scores
batches of images among 25 new names, against its bare timm backbone reading the same views of each
image (the views built beforehand, outside the timed call). Both run alternately, round after round,
in one process; the ratio is the median of the per-round ratios. The parts are timed alone too: making the views (the zoomed crop resized back, the mirrors), the backbone on them, and everything after
the pooled features (projection, cosine head, ConSE, prototypes, offset).

Weights are random (the speed does not depend on them); the class names are embedded once, by the model's
text encoder, before any timing.

    python benchmarks/bench_scoring.py [--batch 64] [--rounds 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _common import ROOT, alternate, write_result

NEW_NAMES = [
    "goldfish", "salamander", "bullfrog", "tailed frog", "alligator", "boa constrictor", "trilobite", "scorpion",
    "black widow", "tarantula", "centipede", "goose", "koala", "jellyfish", "brain coral", "snail", "slug",
    "sea slug", "American lobster", "spiny lobster", "black stork", "king penguin", "albatross", "dugong", "Chihuahua",
]  # fmt: skip
TRAINED = [f"class {index}" for index in range(150)]


def build(text_encoder: str | None):
    """The shipped config's model, on random weights, with fitted prototypes and its new vocabulary."""
    import visnet_hf
    from visnet_hf.training import load_config

    shipped = load_config(ROOT / "configs" / "vsenet_tinyimagenet_zeroshot.yaml").model
    overrides = shipped.overrides
    torch.manual_seed(0)
    kwargs = {"text_encoder": text_encoder or shipped.text_encoder}
    model = visnet_hf.create_model("vsenet_tf_efficientnet_lite0", class_names=TRAINED, image_size=128, **overrides, **kwargs)
    model.eval()
    features = torch.rand(600, model.config.num_features)
    model.fit_prototypes([{"image_features": features, "labels": torch.arange(600) % len(TRAINED)}])
    return model, model.vocabulary_for(NEW_NAMES)


@torch.no_grad()
def main() -> None:
    from visnet_hf.models._base import centre_zoom

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--text-encoder", default=None, help="default: the shipped config's")
    args = parser.parse_args()
    model, vocabulary = build(args.text_encoder)
    backbone = model.backbone
    images = torch.randn(args.batch, 3, 128, 128)
    zoom, flip = model.config.test_time_zoom, model.config.test_time_flip

    def make_views() -> torch.Tensor:  # as the model makes them: the image, its zoomed crop, their mirrors
        views = [images, *([centre_zoom(images, zoom)] if zoom is not None else [])]
        return torch.cat([*views, *(view.flip(-1) for view in views if flip)])

    views = make_views()
    pooled = model.backbone_features(images)[1]

    def bare_backbone() -> torch.Tensor:  # what a timm user runs on the same views
        return backbone.forward_head(backbone.forward_features(views), pre_logits=True)

    def vsenet() -> torch.Tensor:
        return model(pixel_values=images, vocabulary=vocabulary).logits

    def after_features() -> torch.Tensor:
        return model(image_features=pooled, vocabulary=vocabulary).logits

    times = alternate(
        {"vsenet": vsenet, "bare_backbone": bare_backbone, "views": make_views, "after_features": after_features},
        args.rounds,
        args.repeat,
    )
    per_round = [a / b for a, b in zip(times["vsenet"], times["bare_backbone"])]
    per_batch = {name: statistics.median(values) / args.repeat for name, values in times.items()}
    result = {
        "batch": args.batch,
        "rounds": args.rounds,
        "repeat": args.repeat,
        "image_size": 128,
        "views": model.test_time_views,
        "classes": len(vocabulary),
        "trained_classes": len(TRAINED),
        "text_encoder": model.config.text_config.encoder,
        "ratio": statistics.median(per_round),
        "ratio_per_round": per_round,
        "seconds_per_batch": per_batch,
        "images_per_second": args.batch / per_batch["vsenet"],
    }
    print(result)
    write_result("scoring", result)


if __name__ == "__main__":
    main()
