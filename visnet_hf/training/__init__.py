"""Training: config schema and loading, the loop, checkpoints and reports."""

from .config import ConfigError, TrainConfig, load_config

__all__ = ["ConfigError", "TrainConfig", "load_config", "main", "train"]


def train(config: TrainConfig, resume: bool = False):
    from .loop import train as _train

    return _train(config, resume=resume)


def main(argv: list[str] | None = None) -> dict:
    """``train.py`` / ``visnet train``: ``--config X.yaml [--resume] [key=value ...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="train.py", description="Train a visnet_hf model (use with accelerate launch).")
    parser.add_argument("--config", required=True, help="YAML experiment config, e.g. configs/quickstart.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=0.01 stages.0.epochs=2")
    args = parser.parse_args(argv)
    return train(load_config(args.config, args.overrides), resume=args.resume)
