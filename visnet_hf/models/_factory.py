"""The one place where a new model meets pretrained backbone weights.

``build_model`` splits a factory call's keywords into config fields and timm keywords, creates the
backbone once (pretrained if asked), records its feature width and data config in the model config,
builds the model from that config (which never downloads) and copies the backbone weights in.
After that the weights live in the model's own ``model.safetensors``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from .._validation import did_you_mean
from ..backbones import LOADING_ONLY_KWARGS, BackboneKeywordError, create_backbone
from ..errors import ConfigError

# Keywords a factory understands that are neither config fields nor timm keywords.
_CONFIG_PROPERTIES = frozenset({"num_labels"})


def config_fields(config_class: type) -> set[str]:
    return (
        {field.name for field in dataclasses.fields(config_class)}
        | _CONFIG_PROPERTIES
        | getattr(config_class, "legacy_fields", set())
    )


def build_model(
    model_class: type,
    *,
    pretrained: bool,
    image_size: int | None,
    overrides: dict[str, Any],
    initial_state: Callable[[Any, Any], dict[str, torch.Tensor]] | None = None,
):
    """Create a model of ``model_class`` from factory keywords (preset defaults already merged in).

    ``model_class.backbone_num_classes(config)`` says whether timm's classifier stays (``None``)
    or goes (0); ``model_class.record_backbone`` records what the config needs of the backbone. ``initial_state(config, backbone)`` computes tensors once at creation, such as VSENet's class
    embeddings (state-dict keys to values); they are loaded into the built model (and may update the
    config first, or take the pretrained classifier out of the backbone).
    """
    config_class = model_class.config_class
    fields = config_fields(config_class)
    if "num_classes" in overrides:
        raise ConfigError(_num_classes_message(config_class))
    config_kwargs = {k: v for k, v in overrides.items() if k in fields}
    timm_kwargs = {k: v for k, v in overrides.items() if k not in fields}
    architecture_kwargs = {k: v for k, v in timm_kwargs.items() if k not in LOADING_ONLY_KWARGS}
    config_kwargs["backbone_kwargs"] = {**(config_kwargs.get("backbone_kwargs") or {}), **architecture_kwargs}

    config = config_class(**config_kwargs)
    try:
        backbone = create_backbone(
            config.backbone,
            pretrained=pretrained,
            num_classes=model_class.backbone_num_classes(config),
            **{**config.backbone_kwargs, **timm_kwargs},
        )
    except BackboneKeywordError as error:
        raise ConfigError(_unknown_keywords_message(config_class, sorted(architecture_kwargs), error)) from error
    model_class.record_backbone(config, backbone, image_size)
    state = initial_state(config, backbone) if initial_state is not None else {}

    model = model_class(config)
    model.backbone.load_state_dict(backbone.state_dict())
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        raise RuntimeError(f"{model_class.__name__} has no {unexpected[:5]}: the initial state does not fit the model.")
    return model.eval()


def keyword_problems(model_class: type, overrides: dict[str, Any]) -> list[str]:
    """What ``create_model`` would refuse among factory keywords, found without building a model (a config checks
    its fields; timm's constructor checks the rest, on the meta device): a config's mistakes are reported before any
    data is read."""
    import timm

    config_class = model_class.config_class
    fields = config_fields(config_class)
    config_kwargs = {key: value for key, value in overrides.items() if key in fields}
    timm_kwargs = {key: value for key, value in overrides.items() if key not in fields and key not in LOADING_ONLY_KWARGS}
    problems = [f"model.overrides.{_num_classes_message(config_class)}"] if "num_classes" in overrides else []
    timm_kwargs.pop("num_classes", None)
    try:
        config = config_class(**config_kwargs)
    except ConfigError as error:
        return [f"model.overrides.{problem}" for problem in getattr(error, "problems", [str(error)])]
    if timm_kwargs:
        try:
            with torch.device("meta"):  # no memory, no weights: the keywords alone are checked
                timm.create_model(config.backbone, pretrained=False, num_classes=0, **timm_kwargs)
        except TypeError as error:
            problems += _unknown_keywords(config_class, config.backbone, sorted(timm_kwargs), error)
        except Exception:
            pass
    return problems


def _num_classes_message(config_class: type) -> str:
    """timm's ``num_classes`` names the backbone's classifier, which the model builds itself: say what sets the model's
    classes instead (and, for a model that keeps that classifier, its size)."""
    fields = config_fields(config_class)
    classes = "class_names=[...] (their number is the model's)" if "class_names" in fields else "num_labels=N"
    backbone = (
        ", and the backbone's own classifier's size with backbone_num_classes=N" if "backbone_num_classes" in fields else ""
    )
    return (
        f"num_classes: timm's keyword for the backbone's classifier, which {config_class.__name__} sets itself. "
        f"Give the model's classes with {classes}{backbone}."
    )


def _unknown_keywords(config_class: type, backbone: str, keywords: list[str], error: Exception) -> list[str]:
    """``model.overrides.KEY: ...`` for each keyword neither the config nor the timm model's constructor takes,
    with the closest names of both; the constructor's own error when it hides its keywords behind ``**kwargs``."""
    import inspect

    import timm

    with torch.device("meta"):
        timm_class = type(timm.create_model(backbone, pretrained=False, num_classes=0))
    parameters = inspect.signature(timm_class.__init__).parameters
    accepted = [name for name, p in parameters.items() if name != "self" and p.kind is not p.VAR_KEYWORD]
    fields = sorted(name for name in config_fields(config_class) if not name.startswith("_"))
    unknown = [keyword for keyword in keywords if keyword not in accepted]
    hides_keywords = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if not unknown or (hides_keywords and len(unknown) == len(keywords)):
        return ["model.overrides: " + _unknown_keywords_message(config_class, keywords, error)]
    return [
        f"model.overrides.{keyword}: not a field of {config_class.__name__} nor a keyword of timm's {timm_class.__name__}."
        f"{did_you_mean(keyword, dict.fromkeys([*fields, *accepted]))}"
        for keyword in unknown
    ]


def _unknown_keywords_message(config_class: type, keywords: list[str], error: Exception) -> str:
    fields = sorted(config_field for config_field in config_fields(config_class) if not config_field.startswith("_"))
    hints = [f"{keyword!r}:{did_you_mean(keyword, fields)}" for keyword in keywords if did_you_mean(keyword, fields)]
    hint = (" Possible typos: " + " ".join(hints)) if hints else ""
    return (
        f"Keywords {keywords} are neither {config_class.__name__} fields nor accepted by the timm backbone: "
        f"{error}.{hint} {config_class.__name__} fields: {', '.join(fields)}."
    )
