"""WiSE-FT (Wortsman et al. 2022): interpolate the weights of two checkpoints of one model.

Fine-tuning a model that transfers well (a VSENet aligned to the text space) to its training classes
tends to cost it what made it transfer. Averaging the weights of the two, ``(1 - alpha) * zero_shot +
alpha * fine_tuned``, often keeps most of both: ``alpha = 0`` is the first model, ``1`` the second.
Both must be the same architecture, trained on the same classes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from .models.vsenet import VSENetForImageClassification


def interpolate_state(
    zero_shot: dict[str, torch.Tensor], fine_tuned: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * zero_shot + alpha * fine_tuned`` for every floating tensor; others (counters) from ``fine_tuned``.

    Raises:
        ConfigError: ``alpha`` outside [0, 1], or state dicts of different models.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"WiSE-FT alpha={alpha} must lie in [0, 1] (0: the zero-shot model, 1: the fine-tuned one).")
    if set(zero_shot) != set(fine_tuned):
        different = sorted(set(zero_shot) ^ set(fine_tuned))[:5]
        raise ConfigError(f"The two checkpoints hold different weights ({different}...): they are not one model.")
    mixed = {}
    for name, tuned in fine_tuned.items():
        start = zero_shot[name]
        if start.shape != tuned.shape:
            raise ConfigError(f"{name} has shape {tuple(start.shape)} in one checkpoint and {tuple(tuned.shape)} in the other.")
        mixed[name] = torch.lerp(start.to(tuned), tuned, alpha) if tuned.is_floating_point() else tuned.clone()
    return mixed


def interpolate(
    zero_shot: VSENetForImageClassification, fine_tuned: VSENetForImageClassification, alpha: float
) -> VSENetForImageClassification:
    """A new model with the interpolated weights of two models of one architecture and vocabulary."""
    first, second = zero_shot.config, fine_tuned.config
    for field in ("model_type", "backbone", "trained_class_names", "id2label"):
        if getattr(first, field, None) != getattr(second, field, None):
            raise ConfigError(
                f"WiSE-FT needs two checkpoints of one model: their {field} differ "
                f"({getattr(first, field, None)!r} and {getattr(second, field, None)!r})."
            )
    model = copy.deepcopy(fine_tuned)
    model.load_state_dict(interpolate_state(zero_shot.state_dict(), fine_tuned.state_dict(), alpha))
    return model


def wise_ft_folders(zero_shot_dir: str | Path, fine_tuned_dir: str | Path, alpha: float, output_dir: str | Path) -> Path:
    """``visnet wise-ft``: interpolate two saved models and save the result (with its card) to ``output_dir``."""
    import shutil

    from . import hub

    zero_shot, fine_tuned = hub.load_model(zero_shot_dir), hub.load_model(fine_tuned_dir)
    output = Path(output_dir)
    interpolate(zero_shot, fine_tuned, alpha).save_pretrained(output)
    source = Path(fine_tuned_dir)
    if (source / hub.TRAINING_CONFIG).exists():
        shutil.copy(source / hub.TRAINING_CONFIG, output / hub.TRAINING_CONFIG)
    described = {"zero_shot": str(zero_shot_dir), "fine_tuned": str(fine_tuned_dir), "alpha": alpha}
    (output / "wise_ft.json").write_text(json.dumps(described, indent=2) + "\n")
    hub.write_card(output)
    return output
