"""visnet_hf: image classifiers supervised by language as well as labels, on timm and Hugging Face.

Importing the package registers both model families with transformers' Auto classes, so
``AutoConfig``, ``AutoModel``, ``AutoModelForImageClassification`` and
``pipeline("image-classification", model=SAVED_DIR)`` load them; a VSENet also loads with
``AutoModelForZeroShotImageClassification`` and ``pipeline("zero-shot-image-classification")``.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, AutoModelForZeroShotImageClassification

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

__version__ = "0.2.0"

for _config, _model in ((VSENetConfig, VSENetForImageClassification), (FRNConfig, FRNForImageClassification)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForImageClassification.register(_config, _model, exist_ok=True)
AutoModelForZeroShotImageClassification.register(VSENetConfig, VSENetForImageClassification, exist_ok=True)

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
