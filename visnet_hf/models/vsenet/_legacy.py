"""Reading a VSENet saved by visnet_hf 0.2 (before the config was grouped and scoring got its own parts).

Such a folder holds every config field at the top level (mapped by the config itself:
:data:`~visnet_hf.models.vsenet.configuration_vsenet.LEGACY_KEYS`), the visual prototypes' buffers at the
top of its weights (renamed here on load) and no WordNet gloss embeddings (the model embedded them at
every zero-shot call; they are embedded once here, with the model's text encoder). Saved again, it is
written in today's layout.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import PreTrainedConfig

from ...zero_shot.vocabulary import gloss_matrix
from .configuration_vsenet import LEGACY_KEYS

# Weights of 0.2 -> today's names (patterns as transformers' ``key_mapping`` takes them).
STATE_KEYS = {
    "^feature_mean$": "zero_shot.prototypes.feature_mean",
    "^feature_std$": "zero_shot.prototypes.feature_std",
    "^visual_prototypes$": "zero_shot.prototypes.centroids",
    "^prototype_counts$": "zero_shot.prototypes.counts",
}
_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


def is_legacy(path: str | os.PathLike, kwargs: dict[str, Any]) -> bool:
    """Whether the saved config at ``path`` has the 0.2 layout (top-level fields, no sub-configs)."""
    config_dict, _ = PreTrainedConfig.get_config_dict(path, **{key: kwargs[key] for key in _HUB_KWARGS if key in kwargs})
    return "zero_shot_config" not in config_dict and any(key in config_dict for key in LEGACY_KEYS)


@torch.no_grad()
def upgrade(model: Any) -> None:
    """After loading 0.2 weights: embed the WordNet glosses the model now keeps, and save in today's layout."""
    model._weight_conversions = []  # transformers would otherwise write the 0.2 names back on save_pretrained
    if not hasattr(model, "class_glosses"):
        return
    encoder, width = model.text_encoder(), model.config.embedding_dim
    model.class_glosses.copy_(gloss_matrix(encoder, model.vocabulary.synsets, width))
    model.trained_class_glosses.copy_(gloss_matrix(encoder, model.trained_vocabulary.synsets, width))
