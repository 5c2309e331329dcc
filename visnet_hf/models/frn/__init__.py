from .configuration_frn import FRNConfig
from .modeling_frn import FRNForImageClassification, FRNOutput, FRNPreTrainedModel, create_frn

__all__ = ["FRNConfig", "FRNForImageClassification", "FRNOutput", "FRNPreTrainedModel", "create_frn"]
