"""The ``visnet`` command."""

from __future__ import annotations

import argparse
import sys


def _models(args: argparse.Namespace) -> int:
    from .registry import get_preset, list_models

    for name in list_models(args.pattern):
        print(f"{name:32s} {get_preset(name).description}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    results = run_demo(args.output_dir, steps=args.steps, text_encoder=args.text_encoder)
    return 0 if all(r["same"] and r["last_loss"] < r["first_loss"] for r in results.values()) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visnet", description="Image classifiers supervised by language and labels.")
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list the registered model presets")
    models.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'vsenet*'")
    models.set_defaults(run=_models)

    demo = commands.add_parser("demo", help="build, train a few steps, save, reload and predict with both models")
    demo.add_argument("--output-dir", default=None, help="where the models are saved (default: a temporary folder)")
    demo.add_argument("--steps", type=int, default=10)
    demo.add_argument("--text-encoder", default=None, help="Hub id or local path (default: MiniLM from PyPI)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
