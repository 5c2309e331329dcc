"""The two model families. Importing this package registers their presets."""

from .frn import FRNConfig, FRNForImageClassification, FRNOutput, create_frn
from .vsenet import (
    VSENetConfig,
    VSENetForImageClassification,
    VSENetOutput,
    VSENetTextConfig,
    VSENetZeroShotConfig,
    create_vsenet,
)


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
