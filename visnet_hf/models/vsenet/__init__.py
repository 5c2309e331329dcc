from .configuration_vsenet import VSENetConfig
from .modeling_vsenet import VSENetForImageClassification, VSENetOutput, VSENetPreTrainedModel, create_vsenet

__all__ = ["VSENetConfig", "VSENetForImageClassification", "VSENetOutput", "VSENetPreTrainedModel", "create_vsenet"]
