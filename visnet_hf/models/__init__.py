"""The two model families. Importing this package registers their presets, and registers both families with
transformers' Auto classes (``AutoConfig``, ``AutoModel``, ``AutoModelForImageClassification``; a VSENet with
``AutoModelForZeroShotImageClassification`` too)."""

from .frn import FRNConfig, FRNForImageClassification, FRNOutput, create_frn
from .vsenet import (
    VSENetConfig,
    VSENetForImageClassification,
    VSENetOutput,
    VSENetTextConfig,
    VSENetZeroShotConfig,
    create_vsenet,
)


def _register_with_the_auto_classes() -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, AutoModelForZeroShotImageClassification

    for config, model in ((VSENetConfig, VSENetForImageClassification), (FRNConfig, FRNForImageClassification)):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModel.register(config, model, exist_ok=True)
        AutoModelForImageClassification.register(config, model, exist_ok=True)
    AutoModelForZeroShotImageClassification.register(VSENetConfig, VSENetForImageClassification, exist_ok=True)


_register_with_the_auto_classes()


def is_vsenet(model: object) -> bool:
    """Whether ``model`` is a VSENet (unwrapped: not a DDP or compiled wrapper), which can switch class names."""
    return isinstance(model, VSENetForImageClassification)


__all__ = [
    "FRNConfig",
    "FRNForImageClassification",
    "FRNOutput",
    "VSENetConfig",
    "VSENetForImageClassification",
    "VSENetOutput",
    "VSENetTextConfig",
    "VSENetZeroShotConfig",
    "create_frn",
    "create_vsenet",
    "is_vsenet",
]
