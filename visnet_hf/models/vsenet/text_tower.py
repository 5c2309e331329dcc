"""A VSENet's text tower inside the model, for LiT-style training of its last layers, and the adapter that
lets the vocabulary builder embed texts with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..._torch import eval_mode
from ...text.encoder import class_matrix, pool, tokenize
from ...text.prompts import ClassTexts

MAX_TOKENS = 64


class TextTower(nn.Module):
    """The text encoder inside the model: all but its last ``trainable_layers`` layers (and what follows
    them: final norm, pooler, projection) stay locked, as open_clip's ``--lock-text-unlocked-layers`` does.
    Built from ``text_config.tower_config``, so a saved model rebuilds it offline; its weights travel in
    ``model.safetensors``."""

    def __init__(self, tower_config: dict[str, Any] | None, pooling: str, trainable_layers: int) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, CLIPTextModelWithProjection

        if tower_config is None:
            raise ValueError(
                "text_config.trainable_layers needs text_config.tower_config; create the model with visnet_hf.create_model."
            )
        text_config = AutoConfig.for_model(**tower_config)
        projection = pooling == "projection"
        self.encoder = CLIPTextModelWithProjection(text_config) if projection else AutoModel.from_config(text_config)
        self.pooling = pooling
        lock_text_layers(self.encoder, trainable_layers)
        pooler = getattr(self.encoder, "pooler", None)
        if self.pooling != "pooler" and pooler is not None:
            pooler.requires_grad_(False)  # unused by this pooling: trainable, it would get no gradient (DDP fails on that)
        self._inputs: dict[ClassTexts, dict[str, torch.Tensor]] = {}  # each vocabulary's prompts, tokenized once

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One (unnormalised) vector per text."""
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return pool(outputs, attention_mask, self.pooling).float()

    def embed_classes(self, texts: ClassTexts, tokenizer: Any) -> torch.Tensor:
        """The class-embedding matrix of ``texts`` through the tower (with gradients in training)."""
        if texts not in self._inputs:
            flat, weights, owner = texts.flatten()
            tokens = tokenize(tokenizer, flat, MAX_TOKENS)
            self._inputs[texts] = {**tokens, "weights": weights, "owner": owner}
        device = next(self.parameters()).device
        inputs = {key: value.to(device) for key, value in self._inputs[texts].items()}
        pooled = self(inputs["input_ids"], inputs["attention_mask"])
        return class_matrix(pooled, inputs["weights"], inputs["owner"], len(texts.names))


class TowerEncoder:
    """A model's own text tower as the text encoder the vocabulary builder takes (eval mode, no gradients)."""

    def __init__(self, tower: TextTower, tokenizer: Any) -> None:
        self.tower, self.tokenizer = tower, tokenizer

    @torch.no_grad()
    def embed_classes(self, texts: ClassTexts) -> torch.Tensor:
        with eval_mode(self.tower):
            return self.tower.embed_classes(texts, self.tokenizer).cpu()

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = tokenize(self.tokenizer, texts, MAX_TOKENS)
        device = next(self.tower.parameters()).device
        with eval_mode(self.tower):
            pooled = self.tower(tokens["input_ids"].to(device), tokens["attention_mask"].to(device))
        return F.normalize(pooled, dim=-1).cpu()


def lock_text_layers(encoder: nn.Module, trainable_layers: int) -> list[str]:
    """Freeze a text tower but for its last ``trainable_layers`` transformer layers and every parameter
    registered after them; returns the names of the parameters left trainable.

    The layer stack is the tower's longest ``nn.ModuleList`` (``encoder.layer`` in BERT, ``encoder.layers``
    in CLIP), so this works for any ``transformers`` text model.
    """
    stacks = [m for m in encoder.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not stacks:
        raise ValueError(f"{type(encoder).__name__} has no stack of layers to unlock.")
    layers = max(stacks, key=len)
    if not 0 < trainable_layers <= len(layers):
        raise ValueError(f"text_trainable_layers={trainable_layers}, but the text tower has {len(layers)} layers.")
    trainable_ids = {id(p) for layer in list(layers)[-trainable_layers:] for p in layer.parameters()}
    in_stack = {id(q) for q in layers.parameters()}
    last_in_stack = max(i for i, p in enumerate(encoder.parameters()) if id(p) in in_stack)
    names = []
    for index, (name, param) in enumerate(encoder.named_parameters()):
        param.requires_grad_(id(param) in trainable_ids or index > last_in_stack)
        if param.requires_grad:
            names.append(name)
    return names


__all__ = ["TextTower", "TowerEncoder", "lock_text_layers"]
