"""Configuration of FRN, the fine-tuned residual network (the seed's section 4.2)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from .._base import VisnetConfig

HEAD_TYPES = ("mlp", "conv")
MIDDLES = ("dense", "pool")


@strict
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

    head_type: str = "mlp"
    middle: str = "dense"
    hidden_dim: int = 512
    head_out_dim: int = 256
    dropout: float = 0.0
    concat_backbone_probs: bool = True
    backbone_num_classes: int | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        problems: list[str] = []
        self._choice(problems, "head_type", HEAD_TYPES)
        self._choice(problems, "middle", MIDDLES)
        for name in ("hidden_dim", "head_out_dim"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout={self.dropout} must lie in [0, 1)")
        if self.backbone_num_classes is not None and self.backbone_num_classes < 1:
            problems.append(f"backbone_num_classes={self.backbone_num_classes} must be >= 1 (or None)")
        self._check(problems)


__all__ = ["FRNConfig"]
