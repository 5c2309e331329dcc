"""FRN: a pretrained timm backbone, an extra head, and the backbone's own softmax fused before the classifier.

Read top to bottom: output → pretrained base → heads → model → factory → presets.

The seed's section 4.2: an input FC layer on the backbone's output, a middle layer (dense
connection or global pooling), an output layer whose features are concatenated with the backbone's
own (pretrained) softmax output, then the final softmax classifier. The seed's 1x1-conv +
BatchNorm + ReLU head is the second variant, with its shape bugs fixed (it is pooled and flattened
before the classifier instead of being fed a feature map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.utils import ModelOutput

from ...registry import register_family, register_preset
from .._base import VisnetPreTrainedModel
from .._config import VisnetConfig
from .._factory import build_model
from .configuration_frn import FRNConfig


@dataclass
class FRNOutput(ModelOutput):
    """What FRN returns.

    Args:
        loss: cross-entropy (when ``labels`` are given).
        logits: the final classifier's scores over ``config.id2label``.
        backbone_logits: the backbone's own classifier scores (``None`` without ``concat_backbone_probs``).
        head_features: the extra head's output features, before fusion.
        pooler_output: the backbone's pooled features.
        last_hidden_state: the backbone's final feature map (for spatial Soft Tuning constraints).
        loss_terms: each term of ``loss`` on its own, for logging.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    backbone_logits: torch.Tensor | None = None
    head_features: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    loss_terms: dict[str, torch.Tensor] | None = None


class FRNPreTrainedModel(VisnetPreTrainedModel):
    config_class = FRNConfig
    config: FRNConfig


def _positions(feature_map: torch.Tensor, output_fmt: str) -> torch.Tensor:
    """A backbone's feature map as ``(B, positions, channels)``, whatever its layout (CNN, NHWC, tokens)."""
    if feature_map.ndim == 4:
        return feature_map.flatten(1, 2) if output_fmt == "NHWC" else feature_map.flatten(2).transpose(1, 2)
    if feature_map.ndim == 3:
        return feature_map
    return feature_map.unsqueeze(1)


class MLPHead(nn.Module):
    """Input FC → middle (``dense`` or ``pool``) → output FC, each followed by ReLU."""

    def __init__(self, config: FRNConfig, num_features: int) -> None:
        super().__init__()
        self.middle = config.middle
        self.input = nn.Linear(num_features, config.hidden_dim)
        if self.middle == "dense":
            self.dense = nn.Linear(config.hidden_dim, config.hidden_dim)
            middle_dim = 2 * config.hidden_dim
        else:
            middle_dim = config.hidden_dim
        self.output = nn.Linear(middle_dim, config.head_out_dim)
        self.out_dim = config.head_out_dim

    def forward(self, positions: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        if self.middle == "dense":
            hidden = F.relu(self.input(pooled))
            hidden = torch.cat([hidden, F.relu(self.dense(hidden))], dim=-1)
        else:
            hidden = F.relu(self.input(positions)).mean(dim=1)
        return F.relu(self.output(hidden))


class ConvHead(nn.Module):
    """The seed's head: 1x1 convolution + BatchNorm + ReLU at every position, then global average pooling."""

    def __init__(self, config: FRNConfig, num_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(num_features, config.hidden_dim, kernel_size=1)
        self.norm = nn.BatchNorm1d(config.hidden_dim)
        self.out_dim = config.hidden_dim

    def forward(self, positions: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.norm(self.conv(positions.transpose(1, 2))))
        return hidden.mean(dim=-1)


class FRNForImageClassification(FRNPreTrainedModel):
    """FRN for image classification.

    Example:
        >>> import visnet_hf
        >>> model = visnet_hf.create_model("frn_resnet18", num_labels=10)
        >>> model(pixel_values).logits.shape
        torch.Size([B, 10])
    """

    def __init__(self, config: FRNConfig) -> None:
        super().__init__(config)
        self.backbone = self._create_backbone(self.backbone_num_classes(config))
        self._output_fmt = getattr(self.backbone, "output_fmt", "NCHW")

        self.head = (
            MLPHead(config, int(self.backbone.num_features))
            if config.head_type == "mlp"
            else ConvHead(config, int(self.backbone.num_features))
        )
        fused_dim = self.head.out_dim + (int(self.backbone.num_classes) if config.concat_backbone_probs else 0)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(fused_dim, config.num_labels)
        self.post_init()

    @classmethod
    def backbone_num_classes(cls, config: FRNConfig) -> int | None:
        """Keep timm's classifier (its softmax output is fused) unless the config drops the fusion."""
        return config.backbone_num_classes if config.concat_backbone_probs else 0

    @classmethod
    def record_backbone(cls, config: VisnetConfig, backbone: nn.Module, image_size: int | None = None) -> None:
        """Also the size of the backbone's own classifier, whose softmax output is fused."""
        super().record_backbone(config, backbone, image_size)
        if config.concat_backbone_probs:
            config.backbone_num_classes = int(backbone.num_classes)

    @property
    def accepts_image_features(self) -> bool:
        """Whether the head works from pooled features alone (the dense MLP head), so that a frozen
        backbone's features can be computed once (``data.cache_features``)."""
        return self.config.head_type == "mlp" and self.config.middle == "dense"

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> FRNOutput | tuple:
        """Scores over ``config.id2label``; ``image_features`` (the backbone's pooled features) may
        replace ``pixel_values`` for a head that reads only them (see :attr:`accepts_image_features`).
        ``labels``: class indices, or soft targets (a row of class probabilities per image, as Mixup and
        CutMix give); the output then has the cross-entropy loss."""
        if image_features is None:
            feature_map, pooled = self.backbone_features(pixel_values)
            positions = _positions(feature_map, self._output_fmt)
        elif self.accepts_image_features:
            feature_map, pooled, positions = None, image_features.to(self.dtype), None
        else:
            raise ValueError("This FRN head reads the backbone's feature map; give pixel_values, not image_features.")
        head_features = self.head(positions, pooled)

        backbone_logits = None
        fused = head_features
        if self.config.concat_backbone_probs:
            backbone_logits = self.backbone.get_classifier()(pooled)
            fused = torch.cat([head_features, backbone_logits.softmax(dim=-1).to(head_features.dtype)], dim=-1)
        logits = self.classifier(self.dropout(fused))

        loss, loss_terms = None, None
        if labels is not None:
            loss_terms = {"ce": F.cross_entropy(logits.float(), labels, label_smoothing=self.config.label_smoothing)}
            loss = loss_terms["ce"]

        output = FRNOutput(
            loss=loss,
            logits=logits,
            backbone_logits=backbone_logits,
            head_features=head_features,
            pooler_output=pooled,
            last_hidden_state=feature_map,
            loss_terms=loss_terms,
        )
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


# -- factory and presets ----------------------------------------------------------------------


def create_frn(pretrained: bool = False, image_size: int | None = None, **kwargs: Any) -> FRNForImageClassification:
    """Create a new FRN; the backbone (with its own classifier) is pretrained if asked.

    Args:
        pretrained: load the backbone's pretrained weights, classifier included.
        image_size: train/eval resolution (e.g. 32 for CIFAR at native size); default: the backbone's.
        **kwargs: ``FRNConfig`` fields (``num_labels``, ``id2label``, ``head_type``...) and timm keywords.
    """
    return build_model(FRNForImageClassification, pretrained=pretrained, image_size=image_size, overrides=kwargs)


create_frn.family = "frn"
create_frn.model_class = FRNForImageClassification
register_family("frn_", create_frn)
register_preset("frn_resnet18", create_frn, "FRN on timm resnet18, MLP head with dense middle", backbone="resnet18")
register_preset(
    "frn_resnet18_pool", create_frn, "FRN on timm resnet18, MLP head with pooling middle", backbone="resnet18", middle="pool"
)
register_preset(
    "frn_resnet18_conv",
    create_frn,
    "FRN on timm resnet18, the seed's 1x1 conv + BN + ReLU head",
    backbone="resnet18",
    head_type="conv",
)
register_preset("frn_tf_efficientnet_lite0", create_frn, "FRN on timm tf_efficientnet_lite0", backbone="tf_efficientnet_lite0")

__all__ = ["FRNForImageClassification", "FRNOutput", "FRNPreTrainedModel", "create_frn"]
