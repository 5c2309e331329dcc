"""Benchmarks 1, 2 and 4: training and inference images/s of visnet_hf models against plain timm, and peak RSS.

The baseline is what a user writes instead: ``timm.create_model("resnet18", num_classes=10)`` and a
plain torch step (and transformers' ``TimmWrapperForImageClassification`` for inference). Models run
alternately, round after round, in one process; the reported ratio is the median of per-round ratios.

    python benchmarks/bench_overhead.py [--size 224] [--batch 16] [--rounds 5] [--flags fp32 bf16 bf16+cl bf16+cl+compile]

A flag set applies to every model alike: ``bf16`` autocast, ``cl`` channels-last weights and
images, ``compile`` ``torch.compile`` (in place, as the framework's ``model.compile`` does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from contextlib import nullcontext

import torch
from _common import ROOT, alternate, peak_rss_mib, ratio, write_result

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# Models whose architecture differs from the baseline's, and the same architecture written by hand
# in plain torch: the ratio to it is the framework's own overhead, the ratio to timm adds the head's cost.
HAND_WRITTEN = {"frn_resnet18": "torch_frn_resnet18"}


class HandWrittenFRN(torch.nn.Module):
    """What a user writes instead of ``frn_resnet18``: timm resnet18 keeping its 1000-way classifier,
    the same head (input FC, dense middle, output FC, ReLUs), the backbone's softmax concatenated."""

    def __init__(self, num_labels: int = 10, hidden: int = 512, out: int = 256):
        import timm

        super().__init__()
        self.backbone = timm.create_model("resnet18", num_classes=1000)
        width = self.backbone.num_features
        self.input, self.dense = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, hidden)
        self.output = torch.nn.Linear(2 * hidden, out)
        self.classifier = torch.nn.Linear(out + 1000, num_labels)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        relu = torch.nn.functional.relu
        pooled = self.backbone.forward_head(self.backbone.forward_features(pixel_values), pre_logits=True)
        hidden = relu(self.input(pooled))
        features = relu(self.output(torch.cat([hidden, relu(self.dense(hidden))], dim=-1)))
        probabilities = self.backbone.get_classifier()(pooled).softmax(dim=-1).to(features.dtype)
        return self.classifier(torch.cat([features, probabilities], dim=-1))


def build(name: str, size: int):
    import timm

    import visnet_hf

    torch.manual_seed(0)
    if name == "timm_resnet18":
        return timm.create_model("resnet18", num_classes=10)
    if name == "timm_wrapper_resnet18":
        from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

        return TimmWrapperForImageClassification(TimmWrapperConfig(architecture="resnet18", num_labels=10))
    if name == "torch_frn_resnet18":
        return HandWrittenFRN()
    if name == "frn_resnet18":
        return visnet_hf.create_model("frn_resnet18", num_labels=10, image_size=size)
    if name == "vsenet_resnet18":
        return visnet_hf.create_model("vsenet_resnet18", class_names=NAMES, image_size=size)
    if name == "vsenet_resnet18_saved":
        from transformers import AutoModelForImageClassification

        directory = tempfile.mkdtemp()
        build("vsenet_resnet18", size).save_pretrained(directory)
        return AutoModelForImageClassification.from_pretrained(directory)
    raise ValueError(name)


def logits(model, pixel_values):
    output = model(pixel_values=pixel_values) if hasattr(model, "config") else model(pixel_values)
    return output.logits if hasattr(output, "logits") else output


def with_flags(model, pixel_values, flags: str):
    """The model and its input under a flag set (``fp32``, ``bf16``, ``cl``, ``compile``, joined by ``+``)."""
    parts = set(flags.split("+"))
    if "cl" in parts:
        model = model.to(memory_format=torch.channels_last)
        pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
    if "compile" in parts:
        model.compile()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in parts else nullcontext()
    return model, pixel_values, autocast


def train_step_fn(name: str, model, pixel_values, labels, precision: str):
    model, pixel_values, autocast = with_flags(model, pixel_values, precision)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step():
        with autocast:
            if name.startswith(("timm", "torch")):
                loss = torch.nn.functional.cross_entropy(logits(model, pixel_values).float(), labels)
            else:
                loss = model(pixel_values=pixel_values, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def infer_fn(model, pixel_values, precision: str):
    model, pixel_values, autocast = with_flags(model, pixel_values, precision)
    model.eval()

    @torch.no_grad()
    def step():
        with autocast:
            logits(model, pixel_values)

    return step


def memory(name: str, mode: str, precision: str, size: int, batch: int) -> float:
    """Peak RSS (MiB) while a fresh process that built ``name`` runs three steps.

    The kernel's high-water mark is reset after the imports and the model build (``clear_refs``),
    so the figure is the model's working set, not the import-time peak every process shares.
    """
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import torch, bench_overhead as b;"
        f"m = b.build({name!r}, {size}); x = torch.randn({batch}, 3, {size}, {size}); y = torch.randint(0, 10, ({batch},));"
        f"f = b.train_step_fn({name!r}, m, x, y, {precision!r}) if {mode!r} == 'train' else b.infer_fn(m, x, {precision!r});"
        "open('/proc/self/clear_refs', 'w').write('5');"
        "[f() for _ in range(3)];"
        "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def rows(names: list[str], steps: dict, mode: str, precision: str, args: argparse.Namespace, rounds: int, repeat: int) -> dict:
    """Run ``steps`` alternately; per model: images/s, time ratios to timm (and to its hand-written twin), peak RSS."""
    times = alternate(steps, rounds, repeat)
    table = {}
    for name in names:
        table[name] = {
            "images_per_s": args.batch * repeat / min(times[name]),
            "ratio_to_timm": ratio(times, name, "timm_resnet18"),
            "best_time_ratio_to_timm": min(times[name]) / min(times["timm_resnet18"]),
        }
        if not args.no_memory:
            table[name]["peak_rss_mib"] = memory(name, mode, precision, args.size, args.batch)
        if name in HAND_WRITTEN:
            table[name]["ratio_to_hand_written"] = ratio(times, name, HAND_WRITTEN[name])
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--inference-rounds", type=int, default=15, help="inference steps are short: more rounds")
    parser.add_argument("--flags", nargs="+", default=["fp32", "bf16"], help="flag sets, e.g. fp32 bf16 bf16+cl bf16+cl+compile")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses (one per model and flag set)")
    parser.add_argument("--tag", default="", help="suffix of the result file (overhead_SIZE_TAG.json)")
    args = parser.parse_args()
    torch.manual_seed(0)
    pixel_values = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 10, (args.batch,))
    results: dict = {
        "size": args.size,
        "batch": args.batch,
        "rounds": args.rounds,
        "inference_rounds": args.inference_rounds,
        "repeat": args.repeat,
        "train": {},
        "inference": {},
    }

    for precision in args.flags:
        names = ["timm_resnet18", "torch_frn_resnet18", "frn_resnet18", "vsenet_resnet18"]
        steps = {n: train_step_fn(n, build(n, args.size), pixel_values, labels, precision) for n in names}
        results["train"][precision] = rows(names, steps, "train", precision, args, args.rounds, args.repeat)
        print(precision, "train", json.dumps(results["train"][precision], indent=1), flush=True)
        if args.skip_inference:
            continue

        names = [
            "timm_resnet18",
            "timm_wrapper_resnet18",
            "torch_frn_resnet18",
            "frn_resnet18",
            "vsenet_resnet18",
            "vsenet_resnet18_saved",
        ]
        steps = {n: infer_fn(build(n, args.size), pixel_values, precision) for n in names}
        results["inference"][precision] = rows(names, steps, "inference", precision, args, args.inference_rounds, args.repeat * 2)
        print(precision, "inference", json.dumps(results["inference"][precision], indent=1))
    if args.skip_inference:  # a training-only run over flag sets
        write_result(f"overhead_{args.size}_{args.tag or 'flags'}", results)
        return

    # VSENet inference as the vocabulary grows: the extra cost should be the final matrix products alone,
    # the cosines of each image's vector (and, with a ConSE zero-shot head, its ConSE vector) to every name.
    model = build("vsenet_resnet18", args.size).eval()
    vectors_per_image = 1 if model.config.zero_shot_head == "semantic" else 2
    results["vocabulary_zero_shot_head"] = model.config.zero_shot_head
    embeds = torch.nn.functional.normalize(torch.randn(args.batch * vectors_per_image, model.config.embedding_dim), dim=-1)
    vocabulary = {}
    for size in (10, 100, 1000):
        model.set_classes([f"class {i}" for i in range(size)], class_embeddings=torch.randn(size, model.config.embedding_dim))
        classes = model.normalized_class_embeddings()
        steps = {"model": infer_fn(model, pixel_values, "fp32"), "matmul": lambda c=classes: embeds @ c.T}
        times = alternate(steps, args.inference_rounds, args.repeat * 2)
        vocabulary[size] = {
            "seconds_per_batch": min(times["model"]) / (args.repeat * 2),
            "matmul_seconds": min(times["matmul"]) / (args.repeat * 2),
        }
    base = vocabulary[10]["seconds_per_batch"]
    for row in vocabulary.values():
        row["extra_over_10_classes"] = row["seconds_per_batch"] - base
    results["vocabulary"] = vocabulary
    results["peak_rss_mib_this_process"] = peak_rss_mib()
    write_result(f"overhead_{args.size}" + (f"_{args.tag}" if args.tag else ""), results)


if __name__ == "__main__":
    main()
