"""The optimizer section of a training config (:class:`OptimConfig`), and what it builds: optimizers (any of
timm's), learning-rate schedules (ours or transformers'), freezing."""

from __future__ import annotations

import bisect
import fnmatch
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from .._validation import did_you_mean
from ..errors import ConfigError


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and schedule. ``backbone_lr`` gives the backbone its own learning rate, ``text_lr``
    a VSENet's trainable text layers (``model.overrides.text_config.trainable_layers``);
    ``freeze``: ``none`` (full fine-tune), ``backbone`` (linear probe of the heads) or ``partial``
    (only parameters under ``trainable_prefixes`` train). ``implementation`` picks torch's optimizer
    kernels: ``fused`` (one kernel for all parameters), ``foreach`` (a few), ``for`` (a loop), or
    ``auto``: fused on CUDA, torch's default elsewhere.

    ``optimizer`` is any name of ``timm.optim.list_optimizers()`` (``sgd`` with Nesterov momentum,
    ``adamw``, ``lamb``, ``lion``, ``lookahead_adamw``...), made by ``timm.optim.create_optimizer_v2``
    with ``optimizer_kwargs`` (``betas``, ``eps``...). Biases, norms and what the model's ``no_weight_decay()``
    names (a ViT's position embedding and class token) take no weight decay. ``layer_decay`` scales each
    backbone layer group's learning rate by ``layer_decay ** depth_from_the_top`` (timm's ``group_matcher``;
    the heads train at the full rate), as BEiT and timm's fine-tuning recipes do.

    ``scheduler``: ``cosine`` (to zero), ``multistep`` (times ``decay`` at each epoch of ``milestones``)
    or ``constant``, after ``warmup_steps`` of linear warm-up; or any schedule of ``transformers.get_scheduler``
    (``linear``, ``cosine_with_restarts``, ``polynomial``, ``inverse_sqrt``, ``cosine_with_min_lr``,
    ``warmup_stable_decay``...) with ``scheduler_kwargs`` (``num_cycles``, ``power``, ``min_lr_rate``...)."""

    optimizer: str = "adamw"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    backbone_lr: float | None = None
    text_lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.05
    layer_decay: float | None = None
    scheduler: str = "cosine"
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    warmup_steps: int = 0
    milestones: list[int] = field(default_factory=list)
    decay: float = 0.1
    grad_clip: float | None = None
    freeze: Literal["none", "backbone", "partial"] = "none"
    trainable_prefixes: list[str] = field(default_factory=list)
    ema_decay: float | None = None
    implementation: Literal["auto", "fused", "foreach", "for"] = "auto"

    def __post_init__(self) -> None:
        problems = []
        if self.lr <= 0:
            problems.append(f"lr={self.lr} must be positive")
        for name in ("backbone_lr", "text_lr"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            problems.append(f"layer_decay={self.layer_decay} must lie in (0, 1], e.g. 0.75")
        problems += [p for p in (optimizer_problem(self), scheduler_problem(self)) if p]
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps={self.warmup_steps} must be >= 0")
        if self.grad_clip is not None and self.grad_clip <= 0:
            problems.append(f"grad_clip={self.grad_clip} must be positive")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            problems.append(f"ema_decay={self.ema_decay} must lie in (0, 1)")
        if self.freeze == "partial" and not self.trainable_prefixes:
            problems.append("freeze='partial' needs trainable_prefixes, e.g. ['backbone.layer4', 'head', 'classifier']")
        if problems:
            raise ValueError("; ".join(problems))


def freeze(model: nn.Module, config: OptimConfig) -> None:
    """``backbone``: a linear probe (only the heads train); ``partial``: only ``trainable_prefixes`` train.

    Freezing only ever turns training off: what the model itself keeps locked (the locked layers of a
    LiT text tower) stays locked.
    """
    if config.freeze == "none":
        return
    for name, param in model.named_parameters():
        if config.freeze == "backbone":
            param.requires_grad_(param.requires_grad and not name.startswith("backbone."))
        else:
            param.requires_grad_(param.requires_grad and name.startswith(tuple(config.trainable_prefixes)))
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"optim.trainable_prefixes={config.trainable_prefixes} match no parameter; nothing would train.")


def train_mode(model: nn.Module) -> None:
    """``model.train()``, except that batch-norm layers whose parameters are all frozen keep their
    running statistics (eval mode). A frozen backbone then computes the same features while the
    heads train as at evaluation, as a linear probe should; its statistics never drift."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            parameters = list(module.parameters(recurse=False))
            if parameters and not any(p.requires_grad for p in parameters):
                module.eval()


def parameter_groups(model: nn.Module, config: OptimConfig) -> list[dict[str, Any]]:
    """The trainable parameters grouped by learning rate and weight decay.

    The backbone and a trainable text tower may have their own learning rates (``backbone_lr``, ``text_lr``);
    ``layer_decay`` scales each of the model's layer groups (``model.group_matcher()``) by ``layer_decay`` per
    group below the top; biases, norms and what ``model.no_weight_decay()`` names take no weight decay.
    """
    part_lr = {"backbone.": config.backbone_lr, "text_tower.": config.text_lr}
    no_weight_decay = getattr(model, "no_weight_decay", None)
    exempt = tuple(no_weight_decay()) if no_weight_decay is not None else ()
    layer_scale = _layer_scales(model, config.layer_decay)
    groups: dict[tuple[str, bool, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = next((prefix for prefix in part_lr if name.startswith(prefix)), "")
        decays = param.ndim > 1 and not any(fnmatch.fnmatchcase(name, pattern) for pattern in exempt)
        groups.setdefault((part, decays, layer_scale(name)), []).append(param)
    param_groups = []
    for (part, decays, scale), params in groups.items():
        part_rate = part_lr.get(part)
        lr = part_rate if part_rate is not None else config.lr
        param_groups.append({"params": params, "lr": lr * scale, "weight_decay": config.weight_decay if decays else 0.0})
    return param_groups


def _layer_scales(model: nn.Module, layer_decay: float | None) -> Callable[[str], float]:
    """``name -> layer_decay ** (top group - the parameter's group)``, from timm's grouping of the model's
    parameters (its ``group_matcher``; parameters no group matches, such as the heads, rank at the top)."""
    if layer_decay is None:
        return lambda name: 1.0
    group_matcher = getattr(model, "group_matcher", None)
    if group_matcher is None:
        raise ConfigError(
            f"optim.layer_decay needs a model with group_matcher() (timm's layer groups); {type(model).__name__} has none."
        )
    from timm.models import group_parameters

    layer_of = group_parameters(model, group_matcher(coarse=False), reverse=True)
    top = max(layer_of.values())
    return lambda name: layer_decay ** (top - layer_of.get(name, top))


def build_optimizer(model: nn.Module, config: OptimConfig, device_type: str = "cpu") -> torch.optim.Optimizer:
    """``config.optimizer`` (any timm optimizer) over :func:`parameter_groups`, made by ``timm.optim.create_optimizer_v2``."""
    return _create(parameter_groups(model, config), config, device_type)


def _create(param_groups: list[dict[str, Any]], config: OptimConfig, device_type: str) -> torch.optim.Optimizer:
    from timm.optim import create_optimizer_v2, get_optimizer_class

    # YAML has lists where optimizers take tuples (betas)
    kwargs: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in config.optimizer_kwargs.items()}
    accepts = inspect.signature(get_optimizer_class(config.optimizer.split("_")[-1], bind_defaults=False)).parameters
    kwargs.update({key: value for key, value in _implementation(config.implementation, device_type).items() if key in accepts})
    if "nesterov" in accepts and config.momentum == 0:
        kwargs.setdefault("nesterov", False)  # Nesterov needs momentum: plain SGD
    return create_optimizer_v2(
        param_groups, opt=config.optimizer, lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum, **kwargs
    )


def _implementation(choice: str, device_type: str) -> dict[str, bool]:
    """torch's keyword for the optimizer kernels (``auto``: fused on CUDA, where one kernel for all
    parameters saves hundreds of launches per step; torch's own default elsewhere)."""
    if choice == "auto":
        return {"fused": True} if device_type == "cuda" else {}
    return {"fused": {"fused": True}, "foreach": {"foreach": True}, "for": {"foreach": False}}[choice]


def optimizer_problem(config: OptimConfig) -> str | None:
    """Why ``config.optimizer`` with its ``optimizer_kwargs`` cannot be made (checked on one stand-in parameter), or ``None``."""
    from timm.optim import list_optimizers

    parts = config.optimizer.lower().split("_")
    known = [str(name) for name in list_optimizers()]
    if parts[-1] not in known or (len(parts) > 1 and parts[:-1] != ["lookahead"]):
        return (
            f"optimizer={config.optimizer!r} is not a timm optimizer.{did_you_mean(config.optimizer, known)} "
            "The names are timm.optim.list_optimizers() (adamw, sgd, lamb, lion...), optionally as lookahead_NAME."
        )
    try:
        _create([{"params": [nn.Parameter(torch.zeros(2, 2))]}], config, "cpu")
    except (TypeError, ValueError, ImportError, RuntimeError) as error:
        return f"optimizer={config.optimizer!r} with optimizer_kwargs={config.optimizer_kwargs}: {error}"
    return None


OWN_SCHEDULES = ("cosine", "multistep", "constant")
# transformers' schedules that step without a metric and take the run's length.
_TRANSFORMERS_UNUSABLE = ("reduce_lr_on_plateau", "greedy")


def build_schedule(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int, steps_per_epoch: int | None
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up, then cosine to zero over the whole run, or step decay at epoch ``milestones``, or
    constant; any other name is ``transformers.get_scheduler``'s, given the warm-up and the run's length.

    Counted in optimizer steps (the run's :class:`~visnet_hf.training.steps.StepCounter`), so
    gradient accumulation changes neither the curve nor the warm-up.

    Raises:
        ConfigError: epoch milestones over a stream of unknown length.
    """
    total = max(1, total_steps)
    if config.scheduler not in OWN_SCHEDULES:
        from transformers import get_scheduler

        return get_scheduler(
            config.scheduler,
            optimizer,
            num_warmup_steps=config.warmup_steps,
            num_training_steps=total,
            scheduler_specific_kwargs=dict(config.scheduler_kwargs),
        )
    if config.milestones and steps_per_epoch is None:
        raise ConfigError("optim.milestones count epochs, which a stream of unknown length does not have.")
    milestones = sorted(m * (steps_per_epoch or 0) for m in config.milestones)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.scheduler == "cosine":
            progress = min(1.0, (step - config.warmup_steps) / max(1, total - config.warmup_steps))
            return 0.5 * (1 + math.cos(math.pi * progress))
        if config.scheduler == "multistep":
            return config.decay ** bisect.bisect_right(milestones, step)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def scheduler_problem(config: OptimConfig) -> str | None:
    """Why ``config.scheduler`` with its ``scheduler_kwargs`` cannot run (tried on a stand-in optimizer), or ``None``."""
    from transformers import SchedulerType

    if config.scheduler in OWN_SCHEDULES:
        if config.scheduler_kwargs:
            return f"scheduler_kwargs are for transformers' schedules; {config.scheduler!r} takes none (decay, milestones, warmup_steps)"
        return None
    known = [kind.value for kind in SchedulerType if kind.value not in _TRANSFORMERS_UNUSABLE]
    if config.scheduler not in known:
        return f"scheduler={config.scheduler!r} is not a schedule.{did_you_mean(config.scheduler, [*OWN_SCHEDULES, *known])} Names: {', '.join(dict.fromkeys([*OWN_SCHEDULES, *known]))}"
    try:
        build_schedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), config, 10, None)
    except (TypeError, ValueError) as error:
        return f"scheduler={config.scheduler!r} with scheduler_kwargs={config.scheduler_kwargs}: {error}"
    return None
