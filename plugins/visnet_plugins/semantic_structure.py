"""Semantic structure (VSENet): visual class centres keep the text side's similarity structure."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from visnet_hf import semantics
from visnet_hf.constraints import Constraint

from ._common import unwrap


class SemanticStructure(Constraint):
    """``mean_j KL(S_text[:, j] || S_visual[:, j])`` over the classes present in the batch.

    ``S`` is the seed's RBF-softmax similarity (bandwidth ``gamma``, default the model's); the
    visual side uses the mean image embedding of each class in the batch as its centre. Zero when
    the visual centres sit where the class embeddings are.
    """

    @dataclass(frozen=True)
    class Params:
        gamma: float | None = None

        def __post_init__(self):
            if self.gamma is not None and self.gamma <= 0:
                raise ValueError(f"gamma={self.gamma} must be positive")

    def setup(self, model) -> None:
        if not hasattr(unwrap(model), "class_embeddings"):
            raise ValueError("semantic_structure needs a VSENet (a model with class embeddings).")

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        inner = unwrap(model)
        labels = batch["labels"]
        present = labels.unique()
        embeds = outputs.image_embeds.float()
        if len(present) < 2:
            return embeds.sum() * 0.0  # nothing to compare; keeps the graph connected
        one_hot = (labels[:, None] == present[None, :]).float()
        visual_centres = F.normalize(one_hot.T @ embeds / one_hot.sum(0)[:, None], dim=-1)
        text_centres = inner.normalized_class_embeddings()[present].float()
        gamma = self.params.gamma or inner.config.gamma
        text = semantics.class_similarity(text_centres, gamma)
        visual = semantics.class_similarity(visual_centres, gamma)
        return (text * (text.clamp_min(1e-12).log() - visual.clamp_min(1e-12).log())).sum(0).mean()
