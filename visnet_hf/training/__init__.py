"""Training: the run's config, its one step counter, the loop's parts, checkpoints.

The layers point one way: ``training`` composes the models, the data and the evaluation; none of
them imports anything from here.
"""

from __future__ import annotations

import argparse
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


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Train a visnet_hf model (use with accelerate launch).")
    parser.add_argument("--config", required=True, help="YAML experiment config, e.g. configs/quickstart.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a configuration or data error")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=0.01 stages.0.epochs=2")
    return parser


def main(argv: list[str] | None = None, prog: str = "train.py") -> dict[str, Any]:
    """``train.py`` / ``visnet train``: ``--config X.yaml [--resume] [key=value ...]``.

    The entry point owns the ``Accelerator`` and passes it down. A mistake in the config or the data
    ends the command with ``train.py: error: <what to fix>`` and exit status 2.
    """
    args = build_parser(prog).parse_args(argv)
    with reported_as_cli_errors(prog, debug=args.debug):
        config = load_config(args.config, args.overrides)
        return train(config, make_accelerator(config), resume=args.resume)
