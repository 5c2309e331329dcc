"""Loading a saved model and its files: a local folder or a Hub id, through one code path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._paths import missing_folder
from ..errors import ModelLoadError

TRAINING_CONFIG = "training_config.yaml"
EVAL_RESULTS = "eval_results.json"
TEXT_ENCODER_DIR = "text_encoder"
MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "README.md")


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.exists():
        raise ModelLoadError(f"{model_dir} has no config.json; point at a folder written by save_pretrained.")
    return json.loads(path.read_text())


def load_model(name_or_path: str | Path):
    """A saved model (local folder or Hub id, one code path) through ``AutoModelForImageClassification``, in eval mode.

    Raises:
        ModelLoadError: neither a model folder nor a Hub id that can be reached, naming what to give instead.
    """
    from transformers import AutoModelForImageClassification

    from ..models import is_vsenet  # noqa: F401  (importing the models registers both families with the Auto classes)

    try:
        return AutoModelForImageClassification.from_pretrained(str(name_or_path)).eval()
    except (OSError, ValueError) as error:
        if isinstance(error, ModelLoadError):
            raise
        where = str(name_or_path)
        cause = "there is no such folder." if missing_folder(where) else str(error)
        raise ModelLoadError(
            f"Cannot load a model from {where!r}: {cause} Give a folder written by save_pretrained "
            "(a training run's output_dir/model) or a Hub id you can reach (offline: one in the local cache)."
        ) from error


def model_file(name_or_path: str | Path, filename: str) -> Path | None:
    """``filename`` of a model folder, or of a Hub repo (downloaded, or from the cache); ``None`` if it has none."""
    local = Path(name_or_path)
    if local.is_dir():
        return local / filename if (local / filename).exists() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(str(name_or_path), filename))
    except (EntryNotFoundError, LocalEntryNotFoundError, OSError, ValueError):
        return None


def is_repo_id(name: str) -> bool:
    """``user/name`` on the Hub, as opposed to a local folder."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(name).exists() or "/" not in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True
