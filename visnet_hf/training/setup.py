"""Building a training run: the Accelerator, the data, the model, its constraints, optimizer and schedule.

:func:`setup` reads the data through ``datasets`` (map-style, cached features, or a stream);
:func:`assemble` is the part every run shares, for a script that brings its own loaders.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedType
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, TorchDynamoPlugin, set_seed
from torch.utils.data import DataLoader

from ..constraints import SoftTuning
from ..data import Splits, TransformedDataset, build_transforms, collate, load_splits, per_class_sample
from ..data.features import FeatureCache, FeatureDataset, check_cacheable, collate_features
from ..errors import ConfigError
from ..evaluation import eval_loader
from ..registry import create_model, get_preset
from ..text.local_copies import DEFAULT_TEXT_ENCODER
from .checkpoints import STATE_FILE, CheckpointError, latest_checkpoint, read_state
from .config import TrainConfig
from .mixing import build_mixup
from .monitoring import NonFiniteGuard
from .optim import build_optimizer, build_schedule, freeze
from .run import Run, StateSnapshot, TrainerState
from .runtime import compile_in_place, compile_options, loader_options, pin_memory, use_channels_last
from .steps import RunPlan, StagePlan

__all__ = ["StreamLoader", "assemble", "build_constraints", "build_model", "make_accelerator", "restore", "setup"]


def make_accelerator(config: TrainConfig) -> Accelerator:
    """The run's ``Accelerator``: gradient accumulation and trackers from the config; processes,
    devices and precision from ``accelerate launch`` / ``accelerate config``."""
    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=config.trackers or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        # The run compiles the model itself, in place (runtime.compile_options reads what accelerate was asked).
        dynamo_plugin=TorchDynamoPlugin(backend="no"),
    )
    # Pinned batches copy to the GPU without blocking; the device is known once the Accelerator is.
    accelerator.dataloader_config.non_blocking = pin_memory(config.data, accelerator.device)
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and accelerator.distributed_type != DistributedType.FSDP:
        # accelerate shards with FSDP on GPU-like devices only; elsewhere it silently replicates.
        accelerator.print(
            f"FSDP was asked for, but accelerate runs it on GPUs (and other accelerators) only: this run "
            f"replicates the model ({accelerator.distributed_type.value}) on {accelerator.device}."
        )
    return accelerator


def build_model(config: TrainConfig, class_names: list[str], descriptions=None, synonyms=None, synsets=None):
    """A new model from the config's preset, for the data's class names."""
    model_config = config.model
    kwargs: dict[str, Any] = dict(model_config.overrides)
    if model_config.pretrained_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=model_config.pretrained_file)
    if get_preset(model_config.name).family == "vsenet":
        kwargs.update(class_names=class_names, text_encoder=model_config.text_encoder or DEFAULT_TEXT_ENCODER)
        if descriptions is not None:
            kwargs["class_descriptions"] = descriptions
        if synonyms is not None:
            kwargs["class_synonyms"] = synonyms
        if synsets is not None:
            kwargs["class_synsets"] = synsets
    else:
        kwargs.update(num_labels=len(class_names), id2label=dict(enumerate(class_names)))
    model = create_model(
        model_config.name,
        pretrained=model_config.pretrained or bool(model_config.pretrained_file),
        image_size=model_config.image_size,
        **kwargs,
    )
    if model_config.gradient_checkpointing:
        model.activation_checkpointing_enable()
    return model


def setup(config: TrainConfig, accelerator: Accelerator) -> Run:
    """Data, model, constraints (all validated before the first step), loaders, then :func:`assemble`."""
    set_seed(config.seed)
    if config.data.streaming:
        return _setup_streaming(config, accelerator)
    splits = load_splits(config.data, seed=config.seed)
    model = build_model(config, splits.class_names, splits.descriptions, splits.synonyms, splits.synsets)
    soft_tuning = build_constraints(config, model)
    freeze(model, config.optim)
    eval_batch_size = config.eval_batch_size or config.batch_size
    if config.data.cache_features:
        train_dataset, train_loader, evaluation = _cached_feature_loaders(config, accelerator, model, splits, soft_tuning)
        training_images: Any = DataLoader(train_dataset, batch_size=eval_batch_size, collate_fn=collate_features)
    else:
        train_transform, eval_transform = build_transforms(model.config.data_config, config.data.augment)
        train_dataset = TransformedDataset(splits.train, train_transform, seed=config.seed, on_bad_image=config.data.on_bad_image)
        loading = loader_options(config.data, accelerator.device)
        train_loader = DataLoader(
            train_dataset,
            batch_size=config.batch_size,
            shuffle=True,
            collate_fn=collate,
            drop_last=len(splits.train) > config.batch_size,
            **loading,
        )
        evaluation = eval_loader(splits.eval, eval_transform, eval_batch_size, config.data, **loading)
        training_images = eval_loader(splits.train, eval_transform, eval_batch_size, config.data, **loading)
    statistics_images = fit_feature_statistics(config, accelerator, model, splits, training_images)
    run = assemble(config, accelerator, model, soft_tuning, train_dataset, train_loader, evaluation, splits)
    run.statistics_images = statistics_images
    return run


STATISTICS_IMAGES_PER_CLASS = 100


def fit_feature_statistics(config: TrainConfig, accelerator: Accelerator, model, splits: Splits, training_images) -> Any:
    """A VSENet's feature statistics (:meth:`~visnet_hf.VSENetForImageClassification.fit_prototypes`: the trained
    classes' centroids and within-class spread of the backbone's pooled features), which few-shot photos are compared
    in and zero-shot prototypes borrow. A frozen backbone's features never change: they are fitted here, once, from
    ``training_images`` (every training image at the eval transform, or their cached features); every process
    computes the same from all the images. A backbone that trains is fitted again before each export
    (:func:`~visnet_hf.training.loop.export`), from up to ``STATISTICS_IMAGES_PER_CLASS`` training images per class:
    returns the loader of those images then, else None."""
    if not hasattr(model, "fit_prototypes"):
        return None
    if config.optim.freeze != "backbone":
        _, eval_transform = build_transforms(model.config.data_config, config.data.augment)
        sample = per_class_sample(splits.train, STATISTICS_IMAGES_PER_CLASS, config.seed)
        return eval_loader(sample, eval_transform, config.eval_batch_size or config.batch_size, config.data)
    model.to(accelerator.device)
    started = time.perf_counter()
    images = model.fit_prototypes(training_images)
    accelerator.print(
        f"Feature statistics of {len(model.config.trained_class_names)} classes from {images} training images "
        f"({time.perf_counter() - started:.0f}s)."
    )
    return None


def _uses_prototypes(model) -> bool:
    zero_shot = getattr(getattr(model, "config", None), "zero_shot_config", None)
    return zero_shot is not None and zero_shot.prototype_weight > 0


class StreamLoader:
    """This process's part of a stream, batched, on the device; its ``state_dict`` is the stream's
    position (checkpointed with the run, so ``--resume`` continues mid-stream)."""

    resumes_itself = True  # no skipping of batches on resume: the restored state is the position
    per_process = True  # each process holds different examples (evaluation gathers them once)

    def __init__(self, examples, loader, device: torch.device, non_blocking: bool = False):
        self.examples, self.loader, self.device, self.non_blocking = examples, loader, device, non_blocking

    def set_epoch(self, epoch: int) -> None:
        self.examples.set_epoch(epoch)

    def __iter__(self):
        from accelerate.utils import send_to_device

        for batch in self.loader:
            yield send_to_device(batch, self.device, non_blocking=self.non_blocking)

    def state_dict(self) -> dict[str, Any]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)


def _setup_streaming(config: TrainConfig, accelerator: Accelerator) -> Run:
    """``data.streaming``: each process streams its own shards; the model and the rest as in :func:`setup`."""
    from ..data.streaming import StreamExamples, load_streams, stream_loader

    streams = load_streams(config.data, accelerator.process_index, accelerator.num_processes)
    model = build_model(config, streams.class_names)
    if _uses_prototypes(model):
        raise ConfigError(
            "model.overrides.zero_shot_config.prototype_weight cannot be used with data.streaming: the class centroids need a pass over "
            "the training set. Set prototype_weight: 0, and call model.fit_prototypes(batches of training images) on the "
            "trained model before scoring with it."
        )
    soft_tuning = build_constraints(config, model)
    freeze(model, config.optim)
    train_transform, eval_transform = build_transforms(model.config.data_config, config.data.augment)
    loading = loader_options(config.data, accelerator.device)
    pinned, workers = loading.pop("pin_memory"), loading.pop("num_workers")
    train_examples = StreamExamples(
        streams.train,
        train_transform,
        seed=config.seed,
        on_bad_image=config.data.on_bad_image,
        buffer_size=config.data.shuffle_buffer,
        rank=accelerator.process_index,
    )
    eval_examples = StreamExamples(streams.eval, eval_transform, on_bad_image=config.data.on_bad_image, train=False)
    train = StreamLoader(
        train_examples,
        stream_loader(train_examples, config.batch_size, workers, pin_memory=pinned, **loading),
        accelerator.device,
        pinned,
    )
    evaluation = StreamLoader(
        eval_examples,
        stream_loader(eval_examples, config.eval_batch_size or config.batch_size, workers, pin_memory=pinned, **loading),
        accelerator.device,
        pinned,
    )
    described = Splits(None, None, streams.class_names, eval_description=streams.eval_description)
    run = assemble(config, accelerator, model, soft_tuning, train_examples, train, evaluation, described)
    if config.checkpoints:
        accelerator.register_for_checkpointing(train)
    return run


def build_constraints(config: TrainConfig, model) -> list[SoftTuning]:
    """Each stage's constraints, loaded and set up on the model (before it is wrapped)."""
    soft_tuning = [
        SoftTuning.build(list(stage.constraints), allow=config.plugins_allow, deny=config.plugins_deny) for stage in config.stages
    ]
    for stage_constraints in soft_tuning:
        stage_constraints.setup(model)
    return soft_tuning


def assemble(
    config: TrainConfig,
    accelerator: Accelerator,
    model,
    soft_tuning: list[SoftTuning],
    train_dataset,
    train_loader,
    eval_loader,
    splits: Splits | None = None,
) -> Run:
    """Memory format, optimizer, one ``prepare``, the plan, schedule, EMA, compilation: a :class:`Run`.

    :func:`setup` calls it with loaders over ``datasets`` splits; a script that brings its own data
    (tensors already on the GPU, say) calls it with its own: a loader needs ``__len__``, ``__iter__``
    (dicts with ``pixel_values`` and ``labels``) and ``set_epoch``, as does ``train_dataset``.
    """
    memory_format = torch.channels_last if use_channels_last(config.model, model, accelerator.device) else None
    if memory_format is not None:
        model.to(memory_format=memory_format)
    optimizer = build_optimizer(model, config.optim, accelerator.device.type)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)

    plan = RunPlan.build(
        [StagePlan(epochs=stage.epochs, steps=stage.steps) for stage in config.stages],
        loader_batches=len(train_loader) if hasattr(train_loader, "__len__") else None,  # a stream has no length
        accumulation=config.gradient_accumulation_steps,
        max_steps_per_epoch=config.max_steps_per_epoch,
    )
    scheduler = build_schedule(optimizer, config.optim, plan.total_steps, plan.steps_per_epoch)
    ema = _build_ema(accelerator.unwrap_model(model), config)
    compiled = compile_options(config.model)
    if compiled is not None:
        compile_in_place(accelerator.unwrap_model(model), compiled)  # after the EMA copy, which stays eager
    wise_ft_start = StateSnapshot() if config.wise_ft is not None else None
    mixup = build_mixup(config.mixup, accelerator.unwrap_model(model).config.num_labels) if config.mixup else None
    if config.checkpoints:
        extra = [obj for obj in (ema, wise_ft_start) if obj is not None]
        accelerator.register_for_checkpointing(scheduler, *soft_tuning, *extra)
    return Run(
        config=config,
        accelerator=accelerator,
        splits=splits,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_dataset=train_dataset,
        train_loader=train_loader,
        eval_loader=eval_loader,
        soft_tuning=soft_tuning,
        ema=ema,
        plan=plan,
        guard=NonFiniteGuard(config.on_nonfinite, accelerator),
        wise_ft_start=wise_ft_start,
        memory_format=memory_format,
        mixup=mixup,
    )


def _cached_feature_loaders(config: TrainConfig, accelerator: Accelerator, model, splits: Splits, soft_tuning):
    """``data.cache_features``: the frozen backbone's pooled features of every image, computed once."""
    check_cacheable(model, config.optim.freeze, [c for stage in soft_tuning for c in stage.constraints])
    cache = FeatureCache(config.data.feature_cache_dir)
    _, eval_transform = build_transforms(model.config.data_config, config.data.augment)
    assert splits.train_source is not None and splits.eval_source is not None  # kept for caching
    model.to(accelerator.device)
    started = time.perf_counter()
    train_cached = cache.features(model, splits.train_source, eval_transform, accelerator)
    eval_cached = (
        train_cached
        if splits.eval_source is splits.train_source
        else cache.features(model, splits.eval_source, eval_transform, accelerator)
    )
    accelerator.print(
        f"Backbone features of {len(splits.train_source)} images ready in {time.perf_counter() - started:.0f}s ({cache.directory})."
    )
    train_dataset, eval_dataset = FeatureDataset(splits.train, train_cached), FeatureDataset(splits.eval, eval_cached)
    train_loader = DataLoader(
        train_dataset,
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collate_features,
        drop_last=len(train_dataset) > config.batch_size,
    )
    evaluation = DataLoader(eval_dataset, batch_size=config.eval_batch_size or config.batch_size, collate_fn=collate_features)
    return train_dataset, train_loader, evaluation


def restore(run: Run, checkpoint: str | Path | None = None) -> None:
    """Continue from a checkpoint (model, optimizer, schedule, constraints, EMA, RNG, trainer state): the one given,
    else the newest complete one of the run.

    Raises:
        CheckpointError: a checkpoint given that is not a complete one.
    """
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not (checkpoint / STATE_FILE).exists():
            raise CheckpointError(
                f"--resume {checkpoint}: not a complete checkpoint (a folder output_dir/checkpoints/step_N with "
                f"{STATE_FILE}); give one of those, or --resume alone for the newest."
            )
    else:
        checkpoint = latest_checkpoint(run.output_dir)
    if checkpoint is None:
        run.accelerator.print(f"No complete checkpoint under {run.output_dir / 'checkpoints'}; starting from scratch.")
        return
    run.accelerator.load_state(str(checkpoint))
    run.state = TrainerState.from_dict(read_state(checkpoint))
    run.epoch_losses.load_state_dict(run.state.epoch_losses, run.accelerator.device)
    run.accelerator.print(f"Resumed from {checkpoint} (step {run.counter.step}).")


def _build_ema(model, config: TrainConfig):
    if config.optim.ema_decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.optim.ema_decay), use_buffers=True)
