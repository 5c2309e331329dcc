"""visnet_hf: image classifiers supervised by language as well as labels, on timm and Hugging Face.

Importing the package registers both model families with transformers' Auto classes (``visnet_hf.models``
does it), so ``AutoConfig``, ``AutoModel``, ``AutoModelForImageClassification`` and
``pipeline("image-classification", model=SAVED_DIR)`` load them; a VSENet also loads with
``AutoModelForZeroShotImageClassification`` and ``pipeline("zero-shot-image-classification")``.

The public names below are imported on first use. Within the ``visnet`` command the registration waits
for the commands that load a model (they import ``visnet_hf.models``), so that ``visnet --help`` answers
at once instead of after the seconds torch and transformers take to import.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

# Each public name and the module that defines it.
_PUBLIC = {
    "FRNConfig": ".models",
    "FRNForImageClassification": ".models",
    "FRNOutput": ".models",
    "VSENetConfig": ".models",
    "VSENetForImageClassification": ".models",
    "VSENetOutput": ".models",
    "VSENetTextConfig": ".models",
    "VSENetZeroShotConfig": ".models",
    "create_frn": ".models",
    "create_vsenet": ".models",
    "is_vsenet": ".models",
    "UnknownBackboneError": ".backbones",
    "create_backbone": ".backbones",
    "image_processor_from_data_config": ".image_processing",
    "create_model": ".registry",
    "list_models": ".registry",
    "register_preset": ".registry",
    "ClassTexts": ".text",
    "TextEncoder": ".text",
    "TextEncoderError": ".text",
    "embed_class_names": ".text",
    "Vocabulary": ".zero_shot",
    "build_vocabulary": ".zero_shot",
    "fit_offset": ".zero_shot",
}
_SUBMODULES = {"semantics", "backbones", "text", "zero_shot", "wordnet", "models", "data", "training", "hub", "evaluation"}

if TYPE_CHECKING:
    from . import semantics
    from .backbones import UnknownBackboneError, create_backbone
    from .image_processing import image_processor_from_data_config
    from .models import (
        FRNConfig,
        FRNForImageClassification,
        FRNOutput,
        VSENetConfig,
        VSENetForImageClassification,
        VSENetOutput,
        VSENetTextConfig,
        VSENetZeroShotConfig,
        create_frn,
        create_vsenet,
        is_vsenet,
    )
    from .registry import create_model, list_models, register_preset
    from .text import ClassTexts, TextEncoder, TextEncoderError, embed_class_names
    from .zero_shot import Vocabulary, build_vocabulary, fit_offset


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        if _PUBLIC[name] != ".models":
            importlib.import_module(".models", __name__)  # any model-facing name: the families are registered too
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'visnet_hf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC, *_SUBMODULES])


if Path(sys.argv[0] if sys.argv else "").name != "visnet":  # the visnet command registers where it loads a model
    importlib.import_module(".models", __name__)

__all__ = [
    "ClassTexts",
    "FRNConfig",
    "FRNForImageClassification",
    "FRNOutput",
    "TextEncoder",
    "TextEncoderError",
    "UnknownBackboneError",
    "VSENetConfig",
    "VSENetForImageClassification",
    "VSENetOutput",
    "VSENetTextConfig",
    "VSENetZeroShotConfig",
    "Vocabulary",
    "build_vocabulary",
    "create_backbone",
    "create_frn",
    "create_model",
    "create_vsenet",
    "embed_class_names",
    "fit_offset",
    "image_processor_from_data_config",
    "is_vsenet",
    "list_models",
    "register_preset",
    "semantics",
]
