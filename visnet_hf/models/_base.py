"""What VSENet and FRN share: the pretrained-model base over a timm backbone, and its test-time views.

Both families are ``transformers`` models over a timm backbone. The base class keeps that contract
in one place: ``from_pretrained`` refuses other model families and pickles, ``save_pretrained``
writes the image processor next to the weights, and ``backbone_features`` is where the test-time
views (flip, zoom) saved with the model are taken and averaged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedConfig, PreTrainedModel

from .._batches import inputs_and_labels
from ..backbones import create_backbone, resolve_data_config
from ..image_processing import image_processor_from_data_config
from ._config import VisnetConfig


def centre_zoom(pixel_values: torch.Tensor, fraction: float) -> torch.Tensor:
    """The centre crop of ``fraction`` of each image's height and width, resized back (bilinear) to its size."""
    height, width = (int(side) for side in pixel_values.shape[-2:])  # the input size: fixed for a model (and an export)
    crop_height, crop_width = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    crop = pixel_values[..., top : top + crop_height, left : left + crop_width]
    # Resized up, as a crop is smaller than its image: antialiasing would change nothing (it widens the filter only
    # when shrinking), and without it every exporter knows the operator.
    return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)


class VisnetPreTrainedModel(PreTrainedModel):
    """Base class of both model families.

    ``from_pretrained`` loads safetensors only and checks the checkpoint's ``model_type`` before
    touching weights; ``save_pretrained`` also writes ``preprocessor_config.json``.
    """

    main_input_name = "pixel_values"
    input_modalities = "image"
    base_model_prefix = "visnet"
    supports_gradient_checkpointing = True
    accepts_loss_kwargs = False
    _no_split_modules = []  # noqa: RUF012 (transformers declares it per instance)

    @classmethod
    def record_backbone(cls, config: VisnetConfig, backbone: nn.Module, image_size: int | None = None) -> None:
        """What the config keeps of a new model's backbone: its pooled width and its data config (at ``image_size``)."""
        config.num_features = int(backbone.num_features)
        config.data_config = resolve_data_config(backbone, image_size)

    def _create_backbone(self, num_classes: int | None) -> nn.Module:
        """The config's timm backbone, never pretrained (the weights come from the model's own file).

        The factory records the backbone's feature width and data config in the config; a config built by
        hand gets them here, once, at construction.
        """
        config = self.config
        backbone = create_backbone(config.backbone, num_classes=num_classes, **(config.backbone_kwargs or {}))
        # timm initialises its own modules (e.g. ResNet's zero-init of the last BN in each block);
        # transformers' generic init must not overwrite that when a model is built from a config.
        for module in backbone.modules():
            module._visnet_backbone = True  # type: ignore[assignment]
        if config.num_features is None:
            config.num_features = int(backbone.num_features)
        if config.data_config is None:
            config.data_config = resolve_data_config(backbone)
        return backbone

    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "_visnet_backbone", False):
            if hasattr(module, "init_non_persistent_buffers"):
                module.init_non_persistent_buffers()
            return
        super()._init_weights(module)

    # -- what timm's optimizer factory and training recipes read ---------------------------------

    def group_matcher(self, coarse: bool = False) -> Any:
        """The backbone's layer groups (timm's ``group_matcher``) under ``backbone.``. Every other parameter
        (the heads) matches no group, which timm ranks after the backbone's last: the order layer-wise
        learning-rate decay reads (``optim.layer_decay``, ``timm.optim.create_optimizer_v2(model, layer_decay=...)``)."""
        if not hasattr(self.backbone, "group_matcher"):
            raise NotImplementedError(f"timm's {self.config.backbone!r} has no group_matcher(): its layers have no groups.")
        return prefixed_matcher(self.backbone.group_matcher(coarse=coarse), "backbone.")

    def no_weight_decay(self) -> set[str]:
        """Parameters that take no weight decay whatever their shape: what the backbone names (a ViT's
        ``pos_embed`` and ``cls_token``), under ``backbone.``."""
        names = self.backbone.no_weight_decay() if hasattr(self.backbone, "no_weight_decay") else ()
        return {f"backbone.{name}" for name in names}

    def _set_gradient_checkpointing(
        self, enable: bool = True, gradient_checkpointing_func: Callable[..., Any] = checkpoint, every_n_layers: int = 1
    ) -> None:
        """What ``gradient_checkpointing_enable()`` / ``activation_checkpointing_enable()`` call: timm's
        ``set_grad_checkpointing`` on the backbone (its blocks recompute their activations in the backward
        pass), and the same for a transformers text tower inside the model."""
        if not hasattr(self.backbone, "set_grad_checkpointing"):
            raise ValueError(
                f"timm's {self.config.backbone!r} has no set_grad_checkpointing(): it cannot recompute its activations."
            )
        self.backbone.set_grad_checkpointing(enable)
        self.gradient_checkpointing = enable  # what transformers' is_gradient_checkpointing reads
        for module in self.modules():
            if module is not self and isinstance(module, PreTrainedModel) and module.supports_gradient_checkpointing:
                module._set_gradient_checkpointing(enable, gradient_checkpointing_func, every_n_layers)

    @property
    def test_time_views(self) -> int:
        """How many views of each image the backbone scores in eval mode: the image, its zoomed centre crop
        (``test_time_zoom``) and, with ``test_time_flip``, the mirror image of each."""
        return (2 if self.config.test_time_zoom is not None else 1) * (2 if self.config.test_time_flip else 1)

    def backbone_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's feature map and pooled features of a batch of images (``pre_logits``); in eval
        mode with test-time augmentation (``config.test_time_flip``, ``config.test_time_zoom``), the
        pooled features are the average over the image's views, and the map the image's own averaged
        with its mirror's (mirrored back)."""
        pixel_values = pixel_values.to(self.dtype)  # float32 pixels for a model loaded in half precision, as CLIP does
        views = self.test_time_views
        if self.training or views == 1:
            feature_map = self.backbone.forward_features(pixel_values)
            return feature_map, self.backbone.forward_head(feature_map, pre_logits=True)
        images = [pixel_values]
        if self.config.test_time_zoom is not None:
            images.append(centre_zoom(pixel_values, self.config.test_time_zoom))
        if self.config.test_time_flip:
            images += [image.flip(-1) for image in images]
        maps = self.backbone.forward_features(torch.cat(images))
        pooled = self.backbone.forward_head(maps, pre_logits=True).unflatten(0, (views, -1)).mean(0)  # any batch size
        view_maps = maps.unflatten(0, (views, -1))  # in the order of `images`: the mirrored half second
        original = view_maps[0]
        if not self.config.test_time_flip or original.ndim != 4:  # tokens have no width axis to mirror back: the image's own map
            return original, pooled
        mirrored = view_maps[views // 2]
        width = 2 if getattr(self.backbone, "output_fmt", "NCHW") == "NHWC" else 3  # the last axis of NCHW, the third of NHWC
        return (original + mirrored.flip(width)) / 2, pooled

    def pooled_features(self, batches: Iterable[Any]) -> Iterator[tuple[torch.Tensor, Any]]:
        """``(pooled features, labels)`` of each batch, as the model scores them (call it in eval mode: the test-time
        views averaged). Batches are ``(pixel_values, labels)`` pairs or dicts with ``pixel_values`` (or already
        computed ``image_features``) and ``labels``."""
        for batch in batches:
            inputs, labels = inputs_and_labels(batch)
            pooled = inputs.get("image_features")
            yield (self.backbone_features(inputs["pixel_values"].to(self.device))[1] if pooled is None else pooled), labels

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


def prefixed_matcher(matcher: Any, prefix: str) -> Any:
    """A timm ``group_matcher`` (a dict of regexes, or of ``(regex, suffix)`` lists; or a function of the name)
    for the same module mounted under ``prefix``. Regexes are matched from the start of the name, as timm does."""
    if callable(matcher):
        return lambda name: matcher(name.removeprefix(prefix)) if name.startswith(prefix) else (float("inf"),)

    def under(regex: str) -> str:
        return f"^{re.escape(prefix)}(?:{regex.removeprefix('^')})"

    return {
        group: None
        if spec is None
        else under(spec)
        if isinstance(spec, str)
        else [(under(regex), suffix) for regex, suffix in spec]
        for group, spec in matcher.items()
    }


_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


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
