from .configuration_vsenet import VSENetConfig, VSENetTextConfig, VSENetZeroShotConfig
from .modeling_vsenet import VSENetForImageClassification, VSENetOutput, VSENetPreTrainedModel, create_vsenet

__all__ = [
    "VSENetConfig",
    "VSENetForImageClassification",
    "VSENetOutput",
    "VSENetPreTrainedModel",
    "VSENetTextConfig",
    "VSENetZeroShotConfig",
    "create_vsenet",
]
