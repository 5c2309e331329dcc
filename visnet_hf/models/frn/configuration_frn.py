"""Configuration of FRN, the fine-tuned residual network (the seed's section 4.2)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from .._config import FieldChecks, VisnetConfig

HeadType = Literal["mlp", "conv"]
Middle = Literal["dense", "pool"]
HEAD_TYPES = get_args(HeadType)
MIDDLES = get_args(Middle)


class FRNConfig(VisnetConfig):
    """A timm backbone that keeps its own classifier, plus an extra head before the final classifier.

    Args:
        head_type: ``"mlp"`` (input FC → middle → output FC) or ``"conv"`` (the seed's
            1x1 conv + BatchNorm + ReLU on the feature map, globally pooled).
        middle: for ``"mlp"``: ``"dense"`` (the input FC acts on the pooled vector, then a densely
            connected layer whose output is concatenated with its input) or ``"pool"`` (the input FC
            acts on every position of the feature map, then global average pooling).
        hidden_dim: width of the input layer (and of the conv head).
        head_out_dim: width of the output layer.
        dropout: dropout before the final classifier.
        concat_backbone_probs: concatenate the backbone's own softmax output (over its pretrained
            classes) to the head's features, as the seed describes.
        backbone_num_classes: size of the backbone's own classifier; ``None`` means timm's default
            for the architecture (1000 for ImageNet models). Recorded when the model is built.
    """

    model_type = "frn"

    head_type: HeadType = "mlp"
    middle: Middle = "dense"
    hidden_dim: int = 512
    head_out_dim: int = 256
    dropout: float = 0.0
    concat_backbone_probs: bool = True
    backbone_num_classes: int | None = None

    def _check_values(self, checks: FieldChecks, kwargs: dict[str, Any]) -> None:
        super()._check_values(checks, kwargs)
        for name in ("hidden_dim", "head_out_dim"):
            checks.require(name, lambda v: v >= 1, "must be >= 1")
        checks.require("dropout", lambda v: 0.0 <= v < 1.0, "must lie in [0, 1)")
        checks.require("backbone_num_classes", lambda v: v is None or v >= 1, "must be >= 1 (or None)")


__all__ = ["FRNConfig"]
