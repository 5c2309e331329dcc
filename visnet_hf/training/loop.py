"""The training run, laid out as timm's ``train.py`` and accelerate's examples are.

    accelerator = make_accelerator(config)      # the entry point owns it and passes it down (setup.py)
    run = setup(config, accelerator)            # data, model, constraints, optimizer, one prepare (setup.py)
    while not run.finished:
        train_one_epoch(run)                    # micro-batches → optimizer steps
        end_epoch(run)                          # evaluate, export the best, checkpoint
    finish(run)                                 # reports, push, end_training

One :class:`~visnet_hf.training.steps.StepCounter` is the run's clock: the learning-rate schedule,
the constraints (counted from their stage's first step), logging, evaluation and checkpoints all
read it.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from tqdm.auto import tqdm

from .. import hub
from ..data import names_alike_note, unused_names_note
from ..evaluation import evaluate_model
from ..reports import write_reports
from .checkpoints import save_checkpoint
from .config import TrainConfig
from .mixing import mix
from .monitoring import NonFiniteLossError
from .optim import train_mode
from .run import Run, StateSnapshot, TrainerState
from .setup import assemble, make_accelerator, restore, setup

__all__ = ["NonFiniteLossError", "Run", "StateSnapshot", "TrainerState", "assemble", "make_accelerator", "setup", "train"]


def train(config: TrainConfig, accelerator: Accelerator | None = None, resume: bool | str = False) -> dict[str, Any]:
    """Run a whole training job; returns the final evaluation and where everything was written.

    ``resume``: ``True`` continues from the newest complete checkpoint under ``output_dir``; a path, from that
    checkpoint folder (``output_dir/checkpoints/step_N``).
    """
    accelerator = accelerator or make_accelerator(config)
    run = setup(config, accelerator)
    if resume:
        restore(run, None if resume is True else resume)
    start(run)
    while not run.finished:
        train_one_epoch(run)
        end_epoch(run)
    return finish(run)


def start(run: Run) -> None:
    """Write the resolved config, open the trackers, say what the run trains and evaluates on."""
    config, accelerator = run.config, run.accelerator
    if accelerator.is_main_process and (config.export or config.checkpoints):
        run.output_dir.mkdir(parents=True, exist_ok=True)
        (run.output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    accelerator.init_trackers("visnet", config=_flat_hparams(config))
    run.counter.skip_empty_stages(run.plan)
    per_epoch = f"{run.plan.steps_per_epoch} optimizer steps per epoch, " if run.plan.steps_per_epoch else ""
    splits = run.splits
    if splits.train is None:  # streamed: the sizes are not known in advance
        sizes = f"Training on a stream of {len(splits.class_names)} classes ({accelerator.num_processes} part(s)); evaluating on"
    else:
        sizes = f"Training on {len(splits.train)} images of {len(splits.class_names)} classes; evaluating on {len(splits.eval)} images:"
    accelerator.print(f"{sizes} {splits.eval_description}. {per_epoch}{run.plan.total_steps} optimizer steps in all.")
    if splits.unused_names:
        note = unused_names_note(splits.unused_names, len(splits.class_names))
        accelerator.print(f"{note} To choose the classes yourself, give data.include_classes.")
    if alike := names_alike_note(splits.class_names):
        accelerator.print(alike)
    model = run.inner
    if hasattr(model, "vocabulary"):  # a VSENet: which WordNet sense each class name was read as, and whence
        from ..wordnet import sense_records, sense_summary

        text = model.config.text_config
        names = list(model.config.trained_class_names)
        synonyms, synsets = getattr(splits, "synonyms", None), getattr(splits, "synsets", None)
        accelerator.print(sense_summary(sense_records(names, synonyms, synsets, text.describe)))


# -- the loop ---------------------------------------------------------------------------------


def train_one_epoch(run: Run) -> None:
    """Micro-batches until the epoch's data, or its stage's steps, run out."""
    counter, accelerator = run.counter, run.accelerator
    run.train_loader.set_epoch(counter.data_epoch)
    run.train_dataset.set_epoch(counter.data_epoch)
    resumes_itself = getattr(run.train_loader, "resumes_itself", False)
    loader = (
        accelerator.skip_first_batches(run.train_loader, counter.batch)
        if counter.batch and not resumes_itself
        else run.train_loader
    )
    train_mode(run.model)
    run.epoch_started, run.eval_seconds = time.perf_counter(), 0.0
    progress = tqdm(
        total=_steps_left_in_epoch(run),
        disable=True if not accelerator.is_local_main_process else None,  # None: only on a terminal
        desc=_where(run),
        leave=False,
    )
    for batch in loader:
        if counter.epoch_done(run.plan):
            break
        if train_step(run, batch):
            progress.update(1)
            after_step(run)
    progress.close()


def train_step(run: Run, batch: dict[str, Any]) -> bool:
    """One micro-batch; returns whether it completed an optimizer step."""
    accelerator, counter, state, model = run.accelerator, run.counter, run.state, run.model
    for message in batch.pop("bad_images", []):
        if message not in state.bad_images:
            state.bad_images.append(message)
    if run.memory_format is not None and "pixel_values" in batch:
        batch["pixel_values"] = batch["pixel_values"].contiguous(memory_format=run.memory_format)
    batch, constrained = mix(run.mixup, batch) if run.mixup is not None else (batch, batch)
    skipped = False
    with accelerator.accumulate(model):
        with accelerator.autocast():
            outputs = model(**batch, **run.stage.forward_kwargs())
            terms = {name: value.float() for name, value in outputs.loss_terms.items()}
            terms.update(
                run.soft_tuning[counter.stage].terms(model, constrained, outputs, counter.step_in_stage(run.plan), counter.epoch)
            )
        loss = torch.stack(list(terms.values())).sum()
        finite = run.guard.observe(loss, terms, counter.step)
        keep = finite if run.config.on_nonfinite == "skip" else None
        for meter in (run.epoch_losses, run.window_losses):
            meter.add({"loss": loss, **terms}, keep)
        accelerator.backward(loss)  # on every process, always: the gradient all-reduces stay paired
        synced = accelerator.sync_gradients
        if synced:
            skipped = run.guard.skip_update()
            if not skipped:
                if run.config.optim.grad_clip:
                    accelerator.clip_grad_norm_(model.parameters(), run.config.optim.grad_clip)
                run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
    counter.batch += 1
    if not synced:
        return False
    run.scheduler.step()
    if skipped:
        state.skipped_steps += 1
        accelerator.print(f"Skipped step {counter.step}: a loss was not finite (on_nonfinite: skip).")
    elif run.ema is not None:
        run.ema.update_parameters(run.inner)
    counter.step += 1
    return True


def after_step(run: Run) -> None:
    """Logging, evaluation and checkpoints every so many optimizer steps."""
    config, step = run.config, run.counter.step
    if step % config.log_every_steps == 0:
        run.guard.check()
        logged = {f"train/{name}": value for name, value in run.window_losses.means().items()}
        logged["train/lr"] = run.scheduler.get_last_lr()[0]
        run.window_losses.reset()
        run.accelerator.log(logged, step=step)
        if not sys.stdout.isatty():  # a log file or a pipe has no progress bar: one line per window instead
            run.accelerator.print(_progress_line(run, logged))
    if config.eval_every_steps and step % config.eval_every_steps == 0 and not run.counter.epoch_done(run.plan):
        evaluate(run)
        train_mode(run.model)
    if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
        checkpoint(run)


def end_epoch(run: Run) -> None:
    """Evaluate, close the epoch (moving to the next stage when this one is done), checkpoint."""
    if run.last_eval_step != run.counter.step:
        evaluate(run)
    wise_ft = run.config.wise_ft
    if wise_ft is not None and run.stage.name == wise_ft.stage and run.counter.stage_done(run.plan):
        run.wise_ft_start.take(run.accelerator.unwrap_model(run.eval_model))
    run.counter.end_epoch(run.plan)
    run.epoch_losses.reset()
    checkpoint(run)


def evaluate(run: Run) -> dict[str, Any]:
    """Score the eval split, record it in the history and the trackers, export the model when it is the best."""
    run.guard.check()
    started = time.perf_counter()
    result = evaluate_model(run.accelerator, run.eval_model, run.eval_loader, run.splits.class_names, run.memory_format)
    run.eval_seconds += time.perf_counter() - started
    counter, state = run.counter, run.state
    seconds = time.perf_counter() - run.epoch_started
    record = {
        "stage": run.stage.name,
        "epoch": counter.data_epoch + 1,
        "step": counter.step,
        **{f"train_{name}": value for name, value in run.epoch_losses.means().items()},
        "eval_loss": result["loss"],
        "eval_accuracy": result["accuracy"],
        "eval_top5_accuracy": result.get("top5_accuracy"),
        "eval_images": result["num_examples"],
        "seconds": seconds,
        "train_seconds": seconds - run.eval_seconds,
    }
    state.history.append(record)
    run.accelerator.log({f"eval/{k}": v for k, v in record.items() if k.startswith("eval_")}, step=counter.step)
    losses = "  ".join(
        f"{k.removeprefix('train_')} {v:.4f}" for k, v in record.items() if k.startswith("train_") and k != "train_seconds"
    )
    run.accelerator.print(
        f"[{_where(run)}] step {counter.step}  {losses}  eval_loss {result['loss']:.4f}  acc {result['accuracy']:.4f}"
        f"  top5 {result.get('top5_accuracy', float('nan')):.4f}  on {result['num_examples']} images  ({seconds:.0f}s)"
    )
    run.last_eval, run.last_eval_step = result, counter.step
    if result["accuracy"] > state.best_accuracy:
        state.best_accuracy = result["accuracy"]
        if run.config.export and run.config.wise_ft is None:  # with WiSE-FT the interpolation is exported, at the end
            export(run, run.output_dir / "model", result)
    return result


def checkpoint(run: Run) -> Path | None:
    """Save everything ``--resume`` needs (unless ``checkpoints: false``); never a run that has gone non-finite."""
    run.guard.check()
    if not run.config.checkpoints:
        return None
    run.state.epoch_losses = run.epoch_losses.state_dict()
    return save_checkpoint(run.accelerator, run.output_dir, run.counter.step, asdict(run.state), run.config.keep_checkpoints)


def export(run: Run, directory: Path, evaluation: dict[str, Any]) -> None:
    """Save the model with its training config, metrics and card to a temporary folder, then swap
    it in: a kill never leaves half a model."""
    accelerator, config = run.accelerator, run.config
    refit_feature_statistics(run)
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(run.eval_model)  # every process takes part: FSDP gathers its shards here
    if accelerator.is_main_process:
        temporary = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        accelerator.unwrap_model(run.eval_model).save_pretrained(temporary, state_dict=state_dict)
        (temporary / hub.TRAINING_CONFIG).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        summary: dict[str, Any] = {
            k: evaluation[k] for k in ("accuracy", "top5_accuracy", "loss", "num_examples") if k in evaluation
        }
        summary.update(split=run.splits.eval_description, step=run.counter.step)
        (temporary / hub.EVAL_RESULTS).write_text(_json(summary))
        hub.write_card(temporary, model_id=config.hub.repo_id or str(directory), license=config.hub.license)
        previous = directory.with_name(directory.name + ".old")
        if directory.exists():
            directory.rename(previous)
        temporary.rename(directory)
        shutil.rmtree(previous, ignore_errors=True)
    accelerator.wait_for_everyone()


def refit_feature_statistics(run: Run) -> None:
    """A VSENet whose backbone trains: its feature statistics (few-shot photos and zero-shot prototypes read them)
    fitted again to the weights about to be exported, from a sample of the training images
    (:func:`~visnet_hf.training.setup.fit_feature_statistics`). Every process computes the same."""
    if run.statistics_images is None:
        return
    model = run.accelerator.unwrap_model(run.eval_model)
    model.fit_prototypes(run.statistics_images)
    run.statistics_step = run.counter.step


def apply_wise_ft(run: Run) -> dict[str, torch.Tensor]:
    """Load ``(1 - alpha) * start + alpha * final`` into the model (with ``seen_alpha``: that for the
    trained vocabulary, and a copy of the heads at ``alpha`` for every other), evaluate it, export it;
    returns the final weights."""
    from ..wise_ft import interpolate_state

    wise_ft, start = run.config.wise_ft, run.wise_ft_start.state
    model = run.accelerator.unwrap_model(run.eval_model)
    final = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
    seen_alpha = wise_ft.alpha if wise_ft.seen_alpha is None else wise_ft.seen_alpha
    model.load_state_dict(interpolate_state(start, final, seen_alpha))
    if wise_ft.seen_alpha is not None:
        model.keep_zero_shot_heads(interpolate_state(start, final, wise_ft.alpha))
    per_use = f" (the trained vocabulary's heads at {seen_alpha})" if wise_ft.seen_alpha is not None else ""
    run.accelerator.print(
        f"WiSE-FT: alpha {wise_ft.alpha}{per_use} between the end of stage {wise_ft.stage!r} and the final weights."
    )
    result = evaluate(run)
    run.state.history[-1]["stage"] = "wise_ft"
    if run.config.export:
        export(run, run.output_dir / "model", result)
    return final


def finish(run: Run) -> dict[str, Any]:
    """Reports, the optional push, and the run's summary; ends the trackers."""
    accelerator, state, config = run.accelerator, run.state, run.config
    wise_ft_final = apply_wise_ft(run) if config.wise_ft is not None else None
    if run.statistics_step != run.counter.step:  # the model returned holds the statistics of its own weights
        refit_feature_statistics(run)
    # One checksum of the weights per process: DDP replicas that drifted apart would show here.
    checksum = torch.tensor([sum(p.detach().double().sum().item() for p in run.inner.parameters())], device=accelerator.device)
    skipped = torch.tensor([state.skipped_steps], device=accelerator.device)
    last_eval = run.last_eval
    bad_images = state.bad_images + [m for m in last_eval.get("bad_images", []) if m not in state.bad_images]
    if bad_images:
        accelerator.print(
            f"Skipped {len(bad_images)} unreadable image(s) (data.on_bad_image: skip):\n  " + "\n  ".join(bad_images)
        )
    run_info = {
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "rank_checksums": accelerator.gather(checksum).cpu().tolist(),
        "rank_skipped_steps": accelerator.gather(skipped).cpu().tolist(),
        "skipped_steps": state.skipped_steps,
        "bad_images": state.bad_images,
    }
    results: dict[str, Any] = {
        "output_dir": str(run.output_dir),
        "model_dir": str(run.output_dir / "model"),
        "state": asdict(state),
        **run_info,
    }
    if last_eval and accelerator.is_main_process and config.export:
        report = {**last_eval, "scored": run.splits.eval_description, "run": run_info}
        results.update(write_reports(run.output_dir, report, state.history, run.splits.class_names))
        accelerator.print(
            f"Done. Model: {run.output_dir / 'model'}  Metrics: {results['metrics_file']}  "
            f"Plots: {results['confusion_png']}, {results['curve_png']}"
        )
    if config.hub.push and accelerator.is_main_process:
        results["pushed_files"] = hub.push_model(
            run.output_dir / "model", config.hub.repo_id, private=config.hub.private, license=config.hub.license
        )
        accelerator.print(f"Pushed {len(results['pushed_files'])} files to https://huggingface.co/{config.hub.repo_id}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    accelerator.free_memory()  # the prepared objects go with the run: another run may follow in this process
    results["final_eval"] = {k: v for k, v in last_eval.items() if k != "scores"}
    results["model"] = run.accelerator.unwrap_model(run.eval_model)  # the model scored and exported (EMA, WiSE-FT)
    if wise_ft_final is not None:  # both ends of the interpolation, for a curve over alpha
        results["wise_ft_endpoints"] = {"start": run.wise_ft_start.state, "final": wise_ft_final}
    return results


# -- helpers ----------------------------------------------------------------------------------


def _where(run: Run) -> str:
    """``stage 2/3`` (epochs) or ``stage step 40/100`` (a stage counted in steps)."""
    stage, counter = run.stage, run.counter
    if run.finished:
        return "end"
    if stage.steps is not None:
        return f"{stage.name} step {counter.step_in_stage(run.plan)}/{stage.steps}"
    return f"{stage.name} {counter.epoch + 1}/{stage.epochs}"


def _progress_line(run: Run, logged: dict[str, float]) -> str:
    """``[train 1/3] step 20/120  loss 1.2345  ce 1.2001  lr 9.7e-04  (14s)``: the window's mean losses."""
    values = "  ".join(f"{name.removeprefix('train/')} {value:.4f}" for name, value in logged.items() if name != "train/lr")
    seconds = time.perf_counter() - run.epoch_started
    return (
        f"[{_where(run)}] step {run.counter.step}/{run.plan.total_steps}  {values}  lr {logged['train/lr']:.1e}  ({seconds:.0f}s)"
    )


def _steps_left_in_epoch(run: Run) -> int | None:
    in_stage = run.plan.stage_steps[run.counter.stage] - run.counter.step_in_stage(run.plan)
    if run.plan.steps_per_epoch is None:
        return in_stage
    done = run.counter.batch // run.plan.accumulation
    return min(in_stage, run.plan.steps_per_epoch - done)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2)


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
