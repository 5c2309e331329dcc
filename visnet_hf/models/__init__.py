"""The two model families. Importing this package registers their presets."""

from .frn import FRNConfig, FRNForImageClassification, FRNOutput, create_frn
from .vsenet import VSENetConfig, VSENetForImageClassification, VSENetOutput, create_vsenet

__all__ = [
    "FRNConfig",
    "FRNForImageClassification",
    "FRNOutput",
    "VSENetConfig",
    "VSENetForImageClassification",
    "VSENetOutput",
    "create_frn",
    "create_vsenet",
]
