"""The two model families. Importing this package registers their presets."""

from .frn import FRNConfig, FRNForImageClassification, FRNOutput, create_frn
from .vsenet import VSENetConfig, VSENetForImageClassification, VSENetOutput, create_vsenet
