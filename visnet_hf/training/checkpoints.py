"""Checkpoints with ``accelerator.save_state``, written atomically; resume picks the newest complete one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import VisnetError

STATE_FILE = "trainer_state.json"


class CheckpointError(VisnetError, OSError):
    """A checkpoint could not be written; the previous ones are untouched."""


def checkpoint_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def save_checkpoint(accelerator, output_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Save to ``step_N.tmp``, write the trainer state (``state``, plain JSON) last, then rename to ``step_N``.

    A kill at any moment leaves either the previous checkpoints or a ``.tmp`` folder that resume
    ignores; never a corrupt "latest".
    """
    root = checkpoint_dir(output_dir)
    final = root / f"step_{step:08d}"
    temporary = root / f"step_{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(temporary))
        if accelerator.is_main_process:
            (temporary / STATE_FILE).write_text(json.dumps(state))
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        previous = latest_checkpoint(output_dir)
        kept = f"the previous checkpoint {previous} is intact" if previous else "there is no earlier checkpoint"
        raise CheckpointError(
            f"Saving the checkpoint of step {step} to {temporary} failed ({error}); {kept}. "
            "Free disk space (or set keep_checkpoints lower), then run again with --resume."
        ) from error
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        temporary.rename(final)
        for old in complete_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def complete_checkpoints(output_dir: Path) -> list[Path]:
    root = checkpoint_dir(output_dir)
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp") and (p / STATE_FILE).exists())


def latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = complete_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def read_state(checkpoint: Path) -> dict[str, Any]:
    """The trainer state a checkpoint holds."""
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())
