"""What VSENet and FRN share: the backbone part of their configs and the pretrained-model base.

Both families are ``transformers`` models over a timm backbone. The pieces here keep that contract
in one place: configs that record the backbone and its data config, a model base class whose
``from_pretrained`` refuses other model families and pickles, and whose ``save_pretrained`` writes
the image processor next to the weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedConfig, PreTrainedModel

from .._validation import check_types, own_field_hints, raise_problems
from ..backbones import LOADING_ONLY_KWARGS
from ..errors import ConfigError
from ..image_processing import image_processor_from_data_config


class VisnetConfig(PreTrainedConfig):
    """Fields common to every visnet_hf model: the timm backbone and how images are prepared for it.

    Each field's annotation says what it accepts (``Literal`` for a choice); :meth:`__post_init__`
    checks them with the project's one validation (:mod:`visnet_hf._validation`), then the values
    (:meth:`_check_values`), and reports every problem in one :class:`~visnet_hf.errors.ConfigError`.

    Args:
        backbone: a ``timm.create_model`` name.
        backbone_kwargs: architecture keywords for ``timm.create_model`` (``drop_rate``, ``in_chans``, ...).
            Loading-only keywords (``pretrained_cfg_overlay``...) are never stored here.
        num_features: the backbone's pooled feature width; filled in when the model is first built.
        data_config: timm's eval data config (``input_size``, ``mean``, ``std``, ``interpolation``,
            ``crop_pct``); filled in from the backbone when the model is first built.
        label_smoothing: smoothing of the targets of the classifiers' cross-entropy terms, as timm's
            ``--smoothing`` and ``torch.nn.functional.cross_entropy`` take it (0: none).
        test_time_flip: in eval mode, run the backbone on each image and its mirror image and average
            the two feature maps (the mirror's mirrored back) and pooled features, so every head scores
            the average: flip test-time augmentation, at twice the backbone's inference cost. Training
            from images and precomputed ``image_features`` are unaffected; ``data.cache_features``
            caches (and trains the heads on) the averaged features.
        test_time_zoom: in eval mode, also run the backbone on the centre crop of this fraction of each
            image's height and width, resized back to the input size (and on its mirror image, with
            ``test_time_flip``), and average its pooled features in: zoom test-time augmentation, at
            twice the backbone's inference cost again. The feature map stays the image's own (with its
            mirror's), whose geometry the crop does not share. ``None``: off. Cached features, as for
            ``test_time_flip``, are the averaged ones.
    """

    backbone: str = "resnet18"
    backbone_kwargs: dict[str, Any] | None = None
    num_features: int | None = None
    data_config: dict[str, Any] | None = None
    label_smoothing: float = 0.0
    test_time_flip: bool = False
    test_time_zoom: float | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        problems: list[str] = []
        hints = own_field_hints(type(self), PreTrainedConfig)
        check_types({name: getattr(self, name) for name in hints}, hints, "", problems)
        checks = FieldChecks(self, problems, wrong={problem.split(":")[0] for problem in problems})
        self._check_values(checks, kwargs)
        raise_problems(problems, ConfigError, type(self).__name__)

    def _check_values(self, checks: FieldChecks, kwargs: dict[str, Any]) -> None:
        """Check (and derive) values; subclasses extend it. Fields of the wrong type are skipped."""
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


def test_time_views(config: VisnetConfig) -> int:
    """How many views of each image the backbone scores in eval mode: the image, its zoomed centre crop
    (``test_time_zoom``) and, with ``test_time_flip``, the mirror image of each."""
    return (2 if config.test_time_zoom is not None else 1) * (2 if config.test_time_flip else 1)


def centre_zoom(pixel_values: torch.Tensor, fraction: float) -> torch.Tensor:
    """The centre crop of ``fraction`` of each image's height and width, resized back (bilinear) to its size."""
    height, width = pixel_values.shape[-2:]
    crop_height, crop_width = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    crop = pixel_values[..., top : top + crop_height, left : left + crop_width]
    return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


class VisnetPreTrainedModel(PreTrainedModel):
    """Base class of both model families.

    ``from_pretrained`` loads safetensors only and checks the checkpoint's ``model_type`` before
    touching weights; ``save_pretrained`` also writes ``preprocessor_config.json``.
    """

    main_input_name = "pixel_values"
    input_modalities = "image"
    base_model_prefix = "visnet"
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False
    _no_split_modules = []  # noqa: RUF012 (transformers declares it per instance)

    def _mark_backbone(self, backbone: nn.Module) -> None:
        # timm initialises its own modules (e.g. ResNet's zero-init of the last BN in each block);
        # transformers' generic init must not overwrite that when a model is built from a config.
        for module in backbone.modules():
            module._visnet_backbone = True  # type: ignore[assignment]

    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "_visnet_backbone", False):
            if hasattr(module, "init_non_persistent_buffers"):
                module.init_non_persistent_buffers()
            return
        super()._init_weights(module)

    def backbone_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's feature map and pooled features of a batch of images (``pre_logits``); in eval
        mode with test-time augmentation (``config.test_time_flip``, ``config.test_time_zoom``), the
        pooled features are the average over the image's views, and the map the image's own averaged
        with its mirror's (mirrored back)."""
        views = test_time_views(self.config)
        if self.training or views == 1:
            feature_map = self.backbone.forward_features(pixel_values)
            return feature_map, self.backbone.forward_head(feature_map, pre_logits=True)
        images = [pixel_values]
        if self.config.test_time_zoom is not None:
            images.append(centre_zoom(pixel_values, self.config.test_time_zoom))
        if self.config.test_time_flip:
            images += [image.flip(-1) for image in images]
        maps = self.backbone.forward_features(torch.cat(images))
        pooled = self.backbone.forward_head(maps, pre_logits=True).unflatten(0, (views, len(pixel_values))).mean(0)
        view_maps = maps.chunk(views)  # in the order of `images`: the mirrored half second
        original = view_maps[0]
        if not self.config.test_time_flip or original.ndim != 4:  # tokens have no width axis to mirror back: the image's own map
            return original, pooled
        mirrored = view_maps[views // 2]
        width = 2 if getattr(self.backbone, "output_fmt", "NCHW") == "NHWC" else 3  # the last axis of NCHW, the third of NHWC
        return (original + mirrored.flip(width)) / 2, pooled

    def image_processor(self):
        """The eval-time image processor for this model's backbone (a ``BitImageProcessor``)."""
        return image_processor_from_data_config(self.config.data_config)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """``PreTrainedModel.save_pretrained`` plus the image processor, so pipelines work from the folder."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            self.image_processor().save_pretrained(save_directory)

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any
    ):
        """Load a saved model (a local folder or a Hub id: the same code path), safetensors only.

        Pickle weights (``pytorch_model.bin``) are refused unless the caller opts in with
        ``use_safetensors=False``; transformers then reads them with ``torch.load(weights_only=True)``.

        Raises:
            ValueError: the folder holds another model family; the message names the right class.
        """
        if kwargs.get("trust_remote_code"):
            raise ValueError(
                "visnet_hf models never run code from a model folder; drop trust_remote_code=True "
                "(the model classes come from the installed visnet_hf package)."
            )
        if kwargs.get("weights_only") is False:
            raise ValueError(
                "weights_only=False would let a pickle file run arbitrary code; visnet_hf loads safetensors, "
                "or pickle files only with use_safetensors=False and torch.load(weights_only=True)."
            )
        if not isinstance(kwargs.get("config"), PreTrainedConfig):
            _check_model_type(cls, pretrained_model_name_or_path, kwargs)
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block, then back in the mode it was in (even after an error)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def _check_model_type(cls: type[PreTrainedModel], path: str | os.PathLike, kwargs: dict[str, Any]) -> None:
    hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
    config_dict, _ = PreTrainedConfig.get_config_dict(path, **hub_kwargs)
    expected = getattr(cls.config_class, "model_type", None)
    found = config_dict.get("model_type")
    if found != expected:
        raise ValueError(
            f"{str(path)!r} holds a model of type {found!r}, not {expected!r}, so {cls.__name__} cannot load it. "
            "Load it with transformers.AutoModelForImageClassification.from_pretrained (after `import visnet_hf`), "
            "which picks the right class, or with that family's own class."
        )
