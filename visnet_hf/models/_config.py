"""The configs' shared checking, and the fields every visnet_hf model has: the timm backbone and how
images are prepared and viewed for it.

Each field's annotation says what it accepts (``Literal`` for a choice); :meth:`CheckedConfig.__post_init__`
checks them with the project's one validation (:mod:`visnet_hf._validation`), then the values
(:meth:`CheckedConfig._check_values`), and reports every problem in one :class:`~visnet_hf.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import PreTrainedConfig

from .._validation import check_types, own_field_hints, raise_problems
from ..backbones import LOADING_ONLY_KWARGS
from ..errors import ConfigError


class FieldChecks:
    """Value checks for a config whose fields were type-checked first: a field already reported
    for its type is not checked again (a comparison on it would fail, and say less)."""

    def __init__(self, config: Any, problems: list[str], wrong: set[str]):
        self.config, self.problems, self.wrong = config, problems, wrong

    def ok(self, *names: str) -> bool:
        """Whether every field in ``names`` had the right type."""
        return not self.wrong.intersection(names)

    def require(self, name: str, condition: Callable[[Any], bool], message: str) -> None:
        value = getattr(self.config, name)
        if self.ok(name) and not condition(value):
            self.problems.append(f"{name}={value!r} {message}")


class CheckedConfig(PreTrainedConfig):
    """A ``PreTrainedConfig`` whose fields are checked against their annotations and values, every problem
    reported in one :class:`~visnet_hf.errors.ConfigError`."""

    def __post_init__(self, **kwargs: Any) -> None:
        problems: list[str] = []
        self._prepare(kwargs, problems)
        super().__post_init__(**kwargs)
        hints = own_field_hints(type(self), PreTrainedConfig)
        check_types({name: getattr(self, name) for name in hints}, hints, "", problems)
        checks = FieldChecks(self, problems, wrong={problem.split(":")[0] for problem in problems})
        self._check_values(checks, kwargs)
        raise_problems(problems, ConfigError, type(self).__name__)

    def _prepare(self, kwargs: dict[str, Any], problems: list[str]) -> None:
        """Before transformers' own initialisation: map older spellings, build sub-configs (subclasses)."""

    def _check_values(self, checks: FieldChecks, kwargs: dict[str, Any]) -> None:
        """Check (and derive) values; subclasses extend it. Fields of the wrong type are skipped."""


def sub_config(config_class: type[CheckedConfig], value: Any, key: str, problems: list[str]) -> CheckedConfig:
    """``value`` (a config, a dict or None) as a ``config_class``; its problems join ``problems`` under ``key``."""
    if isinstance(value, config_class):
        return value
    if value is not None and not isinstance(value, dict):
        problems.append(f"{key}: expected a mapping of {config_class.__name__} fields, got {value!r}")
        value = None
    try:
        return config_class(**(value or {}))
    except ConfigError as error:
        problems.extend(f"{key}.{problem}" for problem in getattr(error, "problems", [str(error)]))
        return config_class()


class VisnetConfig(CheckedConfig):
    """Fields common to every visnet_hf model: the timm backbone and how images are prepared for it.

    Args:
        backbone: a ``timm.create_model`` name.
        backbone_kwargs: architecture keywords for ``timm.create_model`` (``drop_rate``, ``in_chans``, ...).
            Loading-only keywords (``pretrained_cfg_overlay``...) are never stored here.
        num_features: the backbone's pooled feature width; recorded by the factory that creates the model.
        data_config: timm's eval data config (``input_size``, ``mean``, ``std``, ``interpolation``,
            ``crop_pct``); recorded from the backbone by the factory that creates the model.
        label_smoothing: smoothing of the targets of the classifiers' cross-entropy terms, as timm's
            ``--smoothing`` and ``torch.nn.functional.cross_entropy`` take it (0: none).
        test_time_flip: in eval mode, run the backbone on each image and its mirror image and average
            the two feature maps (the mirror's mirrored back) and pooled features: flip test-time
            augmentation, at twice the backbone's inference cost. Training from images and from
            precomputed ``image_features`` is unaffected; ``data.cache_features`` caches (and trains the
            heads on) the averaged features.
        test_time_zoom: in eval mode, also run the backbone on the centre crop of this fraction of each
            image's height and width, resized back to the input size (and on its mirror image, with
            ``test_time_flip``), and average its pooled features in. The feature map stays the image's
            own (with its mirror's), whose geometry the crop does not share. ``None``: off.
    """

    backbone: str = "resnet18"
    backbone_kwargs: dict[str, Any] | None = None
    num_features: int | None = None
    data_config: dict[str, Any] | None = None
    label_smoothing: float = 0.0
    test_time_flip: bool = False
    test_time_zoom: float | None = None

    def _check_values(self, checks: FieldChecks, kwargs: dict[str, Any]) -> None:
        checks.require("label_smoothing", lambda v: 0.0 <= v < 1.0, "must lie in [0, 1)")
        checks.require(
            "test_time_zoom",
            lambda v: v is None or 0.0 < v < 1.0,
            "must lie in (0, 1): the centre crop's fraction of the image, or null",
        )
        stored_loading_kwargs = sorted(LOADING_ONLY_KWARGS & set(self.backbone_kwargs or {}))
        if stored_loading_kwargs:
            checks.problems.append(
                f"backbone_kwargs may not hold loading-only keywords {stored_loading_kwargs}; pass them to "
                "visnet_hf.create_model(...) instead"
            )


__all__ = ["CheckedConfig", "FieldChecks", "VisnetConfig", "sub_config"]
