"""The timm adapter: timm *is* the backbone registry; this module only adds clear errors.

A backbone is created in two situations that must not be confused:

* by a factory (``visnet_hf.create_model``), once, possibly with pretrained weights from the Hub or
  a local file (``pretrained_cfg_overlay=dict(file=...)``);
* by a model's ``__init__(config)``, always with ``pretrained=False``: the weights then come from
  the model's own ``model.safetensors``, so loading a saved model never touches the network.
"""

from __future__ import annotations

from typing import Any

import timm
import torch.nn as nn

from ._validation import did_you_mean
from .errors import ConfigError, VisnetError

# timm keywords that only say where pretrained weights come from. They are used once, by the
# factory, and never stored in a model config (a path on one machine means nothing on another).
LOADING_ONLY_KWARGS = frozenset({"pretrained_cfg_overlay", "pretrained_cfg", "checkpoint_path", "cache_dir"})

# The parts of timm's data config that define how an image must be prepared for the backbone.
DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


class UnknownBackboneError(VisnetError, ValueError):
    """Raised for a backbone name that timm does not know."""


class BackboneKeywordError(ConfigError, TypeError):
    """timm's model constructor rejected a keyword."""


class PretrainedWeightsError(VisnetError, OSError):
    """The backbone's pretrained weights could not be loaded (offline, a wrong file)."""


def check_backbone_name(name: str) -> None:
    """Fail early, with close matches, for a name timm cannot build.

    Raises:
        UnknownBackboneError: if ``name`` is not a timm architecture (a ``.tag`` suffix is allowed).
    """
    architecture = name.split(".", 1)[0]
    if timm.is_model(architecture):
        return
    hint = did_you_mean(architecture, timm.list_models(), n=5)
    pattern = architecture[:4] + "*"
    raise UnknownBackboneError(
        f"Unknown backbone {name!r}.{hint} See timm.list_models({pattern!r}) for the names timm can build."
    )


def create_backbone(
    name: str,
    *,
    pretrained: bool = False,
    num_classes: int | None = 0,
    **timm_kwargs: Any,
) -> nn.Module:
    """Create a timm model, by default without its classifier (``num_classes=0``).

    Args:
        name: any ``timm.create_model`` name, optionally with a pretrained tag (``resnet18.a1_in1k``).
        pretrained: load pretrained weights (Hub, or a local file through ``pretrained_cfg_overlay``).
        num_classes: ``0`` removes the classifier; ``None`` keeps timm's default classifier.
        **timm_kwargs: passed to ``timm.create_model`` unchanged (``drop_rate``, ``pretrained_cfg_overlay``, ...).
    """
    check_backbone_name(name)
    if num_classes is not None:
        timm_kwargs["num_classes"] = num_classes
    try:
        return timm.create_model(name, pretrained=pretrained, **timm_kwargs)
    except TypeError as error:
        raise BackboneKeywordError(
            f"timm could not build backbone {name!r} with keywords {sorted(timm_kwargs)}: {error}. "
            "Check the keyword names against the timm model's constructor."
        ) from error
    except (OSError, RuntimeError) as error:
        if not pretrained:
            raise
        raise PretrainedWeightsError(
            f"Could not load pretrained weights for backbone {name!r}: {error}. Offline, point timm at a "
            "local file: pretrained_cfg_overlay=dict(file='path/to/weights.safetensors'), "
            "or use pretrained=False."
        ) from error


def resolve_data_config(backbone: nn.Module, image_size: int | None = None) -> dict[str, Any]:
    """The backbone's eval-time data config (input size, mean, std, interpolation, crop).

    ``image_size`` overrides the input size, e.g. 32 for CIFAR at native resolution; the crop then
    covers the whole image, as an image that small is not centre-cropped.
    """
    config = timm.data.resolve_model_data_config(backbone)
    data_config = {key: config[key] for key in DATA_CONFIG_KEYS if key in config}
    data_config["input_size"] = list(data_config["input_size"])
    data_config["mean"] = [float(v) for v in data_config["mean"]]
    data_config["std"] = [float(v) for v in data_config["std"]]
    if image_size is not None:
        data_config["input_size"] = [data_config["input_size"][0], image_size, image_size]
        data_config["crop_pct"] = 1.0
    return data_config
