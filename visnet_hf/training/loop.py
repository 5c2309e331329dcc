"""The training run, in the order accelerate's own examples use:
Accelerator → seed → build → one ``prepare`` → loop (accumulate, autocast) → evaluate → save.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import hub
from ..constraints import SoftTuning
from ..data import TransformedDataset, build_transforms, collate, load_splits
from ..metrics import compute_all
from ..registry import create_model
from ..text_encoders import default_text_encoder
from .checkpoints import latest_checkpoint, save_checkpoint
from .config import TrainConfig
from .optim import build_optimizer, build_schedule, freeze, train_mode
from .reports import write_reports


class NonFiniteLossError(FloatingPointError):
    """The loss or one of its terms turned NaN or infinite; the message names them and the step."""


@dataclass
class TrainerState:
    """Where a run is; saved in every checkpoint so that ``--resume`` continues exactly there."""

    global_step: int = 0
    stage: int = 0
    epoch: int = 0  # within the stage
    batches_done: int = 0  # within the epoch
    best_accuracy: float = -1.0
    skipped_steps: int = 0
    bad_images: list[str] = field(default_factory=list)  # unreadable images skipped (on_bad_image: skip)
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of this epoch's losses
    epoch_batches: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def build_model(config: TrainConfig, class_names: list[str], descriptions=None):
    model_config = config.model
    kwargs: dict[str, Any] = dict(model_config.overrides)
    if model_config.pretrained_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=model_config.pretrained_file)
    if model_config.name.startswith("vsenet"):
        kwargs.update(class_names=class_names, text_encoder=model_config.text_encoder or default_text_encoder())
        if descriptions is not None:
            kwargs["class_descriptions"] = descriptions
    else:
        kwargs.update(num_labels=len(class_names), id2label=dict(enumerate(class_names)))
    return create_model(
        model_config.name,
        pretrained=model_config.pretrained or bool(model_config.pretrained_file),
        image_size=model_config.image_size,
        **kwargs,
    )


def train(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run a whole training job; returns the final evaluation and where everything was written."""
    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=config.trackers or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(config.seed)

    # Build: data, model, constraints (all validated before the first step).
    splits = load_splits(config.data, seed=config.seed)
    model = build_model(config, splits.class_names, splits.descriptions)
    stage_constraints = [
        SoftTuning.build(list(stage.constraints), allow=config.plugins_allow, deny=config.plugins_deny)
        for stage in config.stages
    ]
    for soft_tuning in stage_constraints:
        soft_tuning.setup(model)
    freeze(model, config.optim)
    train_transform, eval_transform = build_transforms(model.config.data_config, config.data.augment)
    train_dataset = TransformedDataset(splits.train, train_transform, seed=config.seed, on_bad_image=config.data.on_bad_image)
    train_loader = DataLoader(
        train_dataset,
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=config.data.num_workers,
        drop_last=len(splits.train) > config.batch_size,
    )
    eval_loader = DataLoader(
        TransformedDataset(splits.eval, eval_transform, on_bad_image=config.data.on_bad_image, substitute=False, split="eval"),
        batch_size=config.eval_batch_size or config.batch_size,
        collate_fn=collate,
        num_workers=config.data.num_workers,
    )
    optimizer = build_optimizer(model, config.optim)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)

    steps_per_epoch = _steps_per_epoch(len(train_loader), config)
    scheduler = build_schedule(optimizer, config.optim, steps_per_epoch, config.total_epochs)
    ema = _build_ema(accelerator.unwrap_model(model), config)
    accelerator.register_for_checkpointing(scheduler, *stage_constraints, *([ema] if ema is not None else []))

    state = TrainerState()
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            accelerator.print(f"No complete checkpoint under {output_dir / 'checkpoints'}; starting from scratch.")
        else:
            accelerator.load_state(str(checkpoint))
            state = TrainerState(**json.loads((checkpoint / "trainer_state.json").read_text()))
            accelerator.print(f"Resumed from {checkpoint} (step {state.global_step}).")

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    accelerator.init_trackers("visnet", config=_flat_hparams(config))

    inner = accelerator.unwrap_model(model)
    last_eval: dict[str, Any] = {}
    while state.stage < len(config.stages):
        stage = config.stages[state.stage]
        if stage.objective is not None and hasattr(inner.config, "objective"):
            inner.config.objective = stage.objective
        soft_tuning = stage_constraints[state.stage]
        while state.epoch < stage.epochs:
            train_loader.set_epoch(_epoch_index(config, state))
            train_dataset.set_epoch(_epoch_index(config, state))
            loader = accelerator.skip_first_batches(train_loader, state.batches_done) if state.batches_done else train_loader
            train_mode(model)
            started = time.perf_counter()
            progress = tqdm(
                total=steps_per_epoch,
                initial=state.batches_done,
                disable=not accelerator.is_local_main_process,
                desc=f"{stage.name} {state.epoch + 1}/{stage.epochs}",
                leave=False,
            )
            for batch in loader:
                if state.batches_done >= steps_per_epoch:
                    break
                for message in batch.pop("bad_images", []):
                    if message not in state.bad_images:
                        state.bad_images.append(message)
                with accelerator.accumulate(model):
                    with accelerator.autocast():
                        outputs = model(**batch)
                        terms = {name: value.float() for name, value in outputs.loss_terms.items()}
                        terms.update(soft_tuning.terms(model, batch, outputs, state.global_step, state.epoch))
                    loss = torch.stack(list(terms.values())).sum()
                    if not _finite(loss, terms, state, config, accelerator):
                        optimizer.zero_grad()
                        continue
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.optim.grad_clip:
                        accelerator.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                    optimizer.step()
                    optimizer.zero_grad()
                if accelerator.sync_gradients:
                    scheduler.step()
                    if ema is not None:
                        ema.update_parameters(inner)
                state.global_step += 1
                state.batches_done += 1
                progress.update(1)
                state.epoch_batches += 1
                for name, value in {"loss": loss, **terms}.items():
                    state.epoch_sums[name] = state.epoch_sums.get(name, 0.0) + float(value.detach())
                if state.global_step % config.log_every_steps == 0:
                    logged = {f"train/{k}": float(v.detach()) for k, v in {"loss": loss, **terms}.items()}
                    logged["train/lr"] = scheduler.get_last_lr()[0]
                    accelerator.log(logged, step=state.global_step)
                if config.checkpoint_every_steps and state.global_step % config.checkpoint_every_steps == 0:
                    save_checkpoint(accelerator, output_dir, state, config.keep_checkpoints)
            progress.close()
            train_seconds = time.perf_counter() - started

            last_eval = evaluate_model(accelerator, ema.module if ema is not None else model, eval_loader, splits.class_names)
            seconds = time.perf_counter() - started
            epoch_record = {
                "stage": stage.name,
                "epoch": _epoch_index(config, state) + 1,
                "step": state.global_step,
                **{f"train_{k}": v / max(1, state.epoch_batches) for k, v in state.epoch_sums.items()},
                "eval_loss": last_eval["loss"],
                "eval_accuracy": last_eval["accuracy"],
                "eval_top5_accuracy": last_eval.get("top5_accuracy"),
                "seconds": seconds,
                "train_seconds": train_seconds,
            }
            state.history.append(epoch_record)
            accelerator.log({f"eval/{k}": v for k, v in epoch_record.items() if k.startswith("eval_")}, step=state.global_step)
            accelerator.print(
                f"[{stage.name} {state.epoch + 1}/{stage.epochs}] step {state.global_step}  "
                + "  ".join(
                    f"{k.removeprefix('train_')} {v:.4f}"
                    for k, v in epoch_record.items()
                    if k.startswith("train_") and k != "train_seconds"
                )
                + f"  eval_loss {last_eval['loss']:.4f}  acc {last_eval['accuracy']:.4f}"
                + f"  top5 {last_eval.get('top5_accuracy', float('nan')):.4f}  ({seconds:.0f}s)"
            )
            is_best = last_eval["accuracy"] > state.best_accuracy
            state.best_accuracy = max(state.best_accuracy, last_eval["accuracy"])
            state.epoch += 1
            state.batches_done = 0
            state.epoch_sums, state.epoch_batches = {}, 0
            if is_best:
                _export(accelerator, ema.module if ema is not None else inner, output_dir / "model", config, last_eval)
            save_checkpoint(accelerator, output_dir, state, config.keep_checkpoints)
        state.stage += 1
        state.epoch = 0

    # One checksum of the weights per process: DDP replicas that drifted apart would show here.
    checksum = torch.tensor([sum(p.detach().double().sum().item() for p in inner.parameters())], device=accelerator.device)
    if state.bad_images or last_eval.get("bad_images"):
        skipped = state.bad_images + [m for m in last_eval.get("bad_images", []) if m not in state.bad_images]
        accelerator.print(f"Skipped {len(skipped)} unreadable image(s) (data.on_bad_image: skip):\n  " + "\n  ".join(skipped))
    run_info = {
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "rank_checksums": accelerator.gather(checksum).cpu().tolist(),
        "skipped_steps": state.skipped_steps,
        "bad_images": state.bad_images,
    }
    results = {"output_dir": str(output_dir), "model_dir": str(output_dir / "model"), "state": state.__dict__, **run_info}
    if last_eval and accelerator.is_main_process:
        results.update(write_reports(output_dir, {**last_eval, "run": run_info}, state.history, splits.class_names))
        accelerator.print(
            f"Done. Model: {output_dir / 'model'}  Metrics: {results['metrics_file']}  "
            f"Plots: {results['confusion_png']}, {results['curve_png']}"
        )
    if config.hub.push and accelerator.is_main_process:
        results["pushed_files"] = hub.push_model(
            output_dir / "model", config.hub.repo_id, private=config.hub.private, license=config.hub.license
        )
        accelerator.print(f"Pushed {len(results['pushed_files'])} files to https://huggingface.co/{config.hub.repo_id}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    results["final_eval"] = {k: v for k, v in last_eval.items() if k != "scores"}
    results["model"] = inner
    return results


@torch.no_grad()
def evaluate_model(accelerator: Accelerator, model, loader, class_names: list[str]) -> dict[str, Any]:
    """Loss, top-1, top-5, per-class report and confusion matrix over the whole eval split (all ranks)."""
    model.eval()
    rows: list[tuple[torch.Tensor, int, float]] = []
    bad_images: list[str] = []
    for batch in loader:
        bad_images += batch.get("bad_images", [])
        if len(batch["labels"]) == 0:
            local: list = []
        else:
            with accelerator.autocast():
                logits = model(pixel_values=batch["pixel_values"]).logits.float()
            loss = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
            local = list(zip(logits.cpu(), batch["labels"].cpu().tolist(), loss.cpu().tolist()))
        # Objects, not tensors: batches may be ragged where unreadable images were dropped.
        rows += accelerator.gather_for_metrics(local, use_gather_object=True)
    scores = torch.stack([row[0] for row in rows])
    labels = torch.tensor([row[1] for row in rows])
    results = compute_all(scores.numpy(), labels.numpy(), class_names, k=5)
    results["loss"] = float(torch.tensor([row[2] for row in rows]).mean())
    if bad_images:
        results["bad_images"] = bad_images
    return results


def _steps_per_epoch(batches: int, config: TrainConfig) -> int:
    return min(batches, config.max_steps_per_epoch) if config.max_steps_per_epoch else batches


def _epoch_index(config: TrainConfig, state: TrainerState) -> int:
    return sum(stage.epochs for stage in config.stages[: state.stage]) + state.epoch


def _finite(loss, terms, state: TrainerState, config: TrainConfig, accelerator: Accelerator) -> bool:
    if torch.isfinite(loss):
        return True
    values = ", ".join(f"{name}={float(value.detach()):.4g}" for name, value in terms.items())
    bad = [name for name, value in terms.items() if not torch.isfinite(value)]
    message = f"Non-finite loss at step {state.global_step}: {values}; non-finite term(s): {bad}."
    if config.on_nonfinite == "skip":
        state.skipped_steps += 1
        accelerator.print(message + " Skipping this step (on_nonfinite: skip).")
        return False
    raise NonFiniteLossError(message + " Lower the learning rate or the weights, or set on_nonfinite: skip.")


def _build_ema(model, config: TrainConfig):
    if config.optim.ema_decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.optim.ema_decay), use_buffers=True)


def _export(accelerator: Accelerator, model, directory: Path, config: TrainConfig, evaluation: dict) -> None:
    """Save the model with its training config, metrics and card to a temporary folder, then swap
    it in: a kill never leaves half a model."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        temporary = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(temporary)
        (temporary / hub.TRAINING_CONFIG).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        summary = {k: evaluation[k] for k in ("accuracy", "top5_accuracy", "loss") if k in evaluation}
        summary.update(split="validation", num_examples=int(sum(map(sum, evaluation["confusion_matrix"]))))
        (temporary / hub.EVAL_RESULTS).write_text(json.dumps(summary, indent=2))
        hub.write_card(temporary, model_id=config.hub.repo_id or str(directory), license=config.hub.license)
        previous = directory.with_name(directory.name + ".old")
        if directory.exists():
            directory.rename(previous)
        temporary.rename(directory)
        shutil.rmtree(previous, ignore_errors=True)
    accelerator.wait_for_everyone()


def _flat_hparams(config: TrainConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, (int, float, str, bool)):
            flat[prefix] = value
        else:
            flat[prefix] = str(value)

    visit("", config.to_dict())
    return flat

