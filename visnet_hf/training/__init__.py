"""Training: the run's config, its one step counter, the loop's parts, checkpoints.

The layers point one way: ``training`` composes the models, the data and the evaluation; none of
them imports anything from here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError, reported_as_cli_errors
from .config import TrainConfig, config_from_dict, load_config, override
from .loop import make_accelerator, train
from .monitoring import NonFiniteLossError
from .steps import RunPlan, StepCounter

__all__ = [
    "ConfigError",
    "NonFiniteLossError",
    "RunPlan",
    "StepCounter",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "main",
    "make_accelerator",
    "override",
    "train",
]


# The flags a run needs without a YAML file, as timm's train.py and transformers' run_image_classification.py take
# them, and the config entry each one sets (a --config file's values are overridden by the flags given).
FLAGS = {
    "data": (
        "data.path",
        "a folder of images (one folder per class), a folder save_to_disk wrote, a .parquet file, a .csv or .jsonl file of "
        "image paths and labels, .tar shards or a Hub dataset id",
    ),
    "model": ("model.name", "a preset (visnet models) or vsenet_<any timm model> / frn_<any timm model>"),
    "epochs": ("stages", "epochs to train (one stage)"),
    "output_dir": ("output_dir", "where the model, metrics, plots and checkpoints go"),
    "image_size": ("model.image_size", "train and evaluate at this resolution (default: the backbone's)"),
    "batch_size": ("batch_size", "images per step"),
    "lr": ("optim.lr", "the learning rate"),
    "pretrained": ("model.pretrained", "load the backbone's pretrained weights (from the Hub)"),
    "pretrained_file": ("model.pretrained_file", "... or from a local file"),
    "text_encoder": ("model.text_encoder", "VSENet: the text encoder's Hub id or path"),
}
TYPES = {"epochs": int, "image_size": int, "batch_size": int, "lr": float}


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train a visnet_hf model (run it with accelerate launch for several processes or GPUs). Give a YAML "
        "config, or the data and the model as flags (everything else then takes its default), or both: flags and "
        "key=value overrides win over the file.",
        epilog="Example: visnet train --data my_photos --model vsenet_resnet18 --epochs 5 --output-dir outputs/my_photos",
    )
    parser.add_argument("--config", default=None, help="YAML experiment config, e.g. configs/quickstart.yaml")
    for name, (_, text) in FLAGS.items():
        flag = "--" + name.replace("_", "-")
        if name == "pretrained":
            parser.add_argument(flag, action="store_true", default=None, help=text)
        else:
            parser.add_argument(flag, type=TYPES.get(name, str), default=None, help=text)
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CHECKPOINT",
        help="continue from the newest complete checkpoint of the run, or from the checkpoint folder given",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of a configuration or data error")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=0.01 stages.0.epochs=2")
    return parser


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The flags given, as ``key=value`` overrides (applied before the ones written out)."""
    import json

    overrides = []
    for name, (key, _) in FLAGS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if name == "epochs":
            overrides.append(f"stages=[{{name: train, epochs: {value}}}]")
        elif name == "data":  # what the path is decides the source, whatever a config file said
            overrides += [f"data.path={json.dumps(value)}", "data.source=auto", "data.fallback=null"]
        else:
            overrides.append(
                f"{key}={json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else value}"
            )
    return overrides


def main(argv: list[str] | None = None, prog: str = "train.py") -> dict[str, Any]:
    """``train.py`` / ``visnet train``: ``[--config X.yaml] [--data D --model NAME --epochs N ...] [--resume [CHECKPOINT]]
    [key=value ...]``.

    The entry point owns the ``Accelerator`` and passes it down. A mistake in the config or the data ends the
    command with ``train.py: error: <what to fix>`` and exit status 2, before any data is read.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if isinstance(args.resume, str) and "=" in args.resume and not Path(args.resume).exists():
        args.overrides.insert(0, args.resume)  # `--resume key=value`: the bare flag, then an override
        args.resume = True
    if args.config is None and args.data is None:
        parser.error("give the data (--data DIR_OR_FILE_OR_HUB_ID, and --model NAME), or a config (--config X.yaml)")
    with reported_as_cli_errors(prog.split()[0], debug=args.debug):  # `visnet: error:` as every command says it
        config = load_config(args.config, [*flag_overrides(args), *args.overrides])
        return train(config, make_accelerator(config), resume=args.resume or False)
