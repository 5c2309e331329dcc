"""Named presets and ``create_model``: the timm-style way to get a new visnet_hf model.

Each model file registers its presets at import (a preset is a factory plus config defaults) and its family's
prefix: ``vsenet_<any timm model>`` and ``frn_<any timm model>`` are models too, the family's factory on that
backbone (``create_model("frn_convnext_tiny")`` is ``create_model("frn_resnet18", backbone="convnext_tiny")``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._validation import did_you_mean
from .errors import ConfigError

if TYPE_CHECKING:
    from .models._base import VisnetPreTrainedModel


@dataclass(frozen=True)
class Preset:
    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def family(self) -> str | None:
        """The model family the factory builds (``"vsenet"``, ``"frn"``), as the factory declares it."""
        return getattr(self.factory, "family", None)


_PRESETS: dict[str, Preset] = {}
_FAMILIES: dict[str, Callable[..., Any]] = {}  # name prefix -> the family's factory


def register_preset(name: str, factory: Callable[..., Any], description: str = "", **defaults: Any) -> None:
    """Register ``name`` so that ``create_model(name)`` calls ``factory(**defaults, **overrides)``."""
    if name in _PRESETS:
        raise ValueError(f"A preset named {name!r} is already registered.")
    _PRESETS[name] = Preset(name, factory, dict(defaults), description)


def register_family(prefix: str, factory: Callable[..., Any]) -> None:
    """Make ``<prefix><any timm model name>`` a model: ``factory`` on that backbone."""
    _FAMILIES[prefix] = factory


def family_prefixes() -> list[str]:
    return sorted(_FAMILIES)


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered presets that match a shell-style ``pattern`` (like ``timm.list_models``)."""
    return sorted(name for name in _PRESETS if fnmatch.fnmatch(name, pattern))


def get_preset(name: str) -> Preset:
    """The registered preset ``name``, or a family's factory on a timm backbone (``frn_convnext_tiny``).

    Raises:
        ConfigError: neither, with close matches among the presets and, after a family's prefix, timm's models.
    """
    if name in _PRESETS:
        return _PRESETS[name]
    prefix = next((prefix for prefix in _FAMILIES if name.startswith(prefix) and len(name) > len(prefix)), None)
    hint = did_you_mean(name, _PRESETS, cutoff=0.5)
    if prefix is not None:
        import timm

        backbone = name[len(prefix) :]
        if timm.is_model(backbone.split(".", 1)[0]):
            factory = _FAMILIES[prefix]
            return Preset(name, factory, {"backbone": backbone}, f"{prefix.rstrip('_').upper()} on timm {backbone}")
        hint += f" timm has no model {backbone!r}.{did_you_mean(backbone, timm.list_models(), n=3)}"
    families = " or ".join(f"{prefix}<any timm model>" for prefix in family_prefixes())
    raise ConfigError(
        f"Unknown model {name!r}.{hint} A model is a registered preset ({', '.join(list_models())}; visnet models) or "
        f"{families} (e.g. {family_prefixes()[0] if _FAMILIES else 'vsenet_'}convnext_tiny; timm.list_models() names them)."
    )


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> VisnetPreTrainedModel:
    """Create a new model from a registered preset.

    Args:
        name: a preset from ``list_models()``, e.g. ``"vsenet_resnet18"`` or ``"frn_resnet18"``.
        pretrained: load the backbone's pretrained weights (from the Hub, or from a local file given
            as ``pretrained_cfg_overlay=dict(file=...)``). Done once, here; the weights then live in
            the model's own ``model.safetensors``.
        **overrides: config fields (``class_names``, ``num_labels``, ``id2label``, ``text_encoder``,
            ...), ``image_size``, and any other keyword, which goes to ``timm.create_model``.
    """
    preset = get_preset(name)
    return preset.factory(pretrained=pretrained, **{**preset.defaults, **overrides})
