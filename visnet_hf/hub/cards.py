"""Model cards, rendered from ``hub_cards/`` and a saved model's own files.

A model folder written by training holds ``config.json``, ``model.safetensors``,
``preprocessor_config.json``, ``training_config.yaml`` and ``eval_results.json``; the card is rendered
from those files alone, so ``visnet card DIR`` gives the same card as the end of training.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..errors import ModelLoadError
from .loading import EVAL_RESULTS, TRAINING_CONFIG, is_repo_id, read_config


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


def _model_name(model_dir: Path, model_id: str | None, training_config: dict | None) -> str:
    if model_id and is_repo_id(model_id):
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
    config = read_config(model_dir)
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
    text, zero_shot, photo_weight, temperature = _vsenet_settings(config) if family == "vsenet" else ({}, {}, None, None)
    template = files("visnet_hf.hub_cards").joinpath(f"{family}.md").read_text()
    return ModelCard.from_template(
        card_data,
        template_str=template,
        model_id=model_id or str(model_dir),
        model_name=model_name,
        backbone=config["backbone"],
        text_encoder=text.get("encoder"),
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
        trained_names_kept=bool(set(class_names) & set(config.get("trained_class_names") or class_names)),
        calibration=zero_shot.get("calibration", 0.0),
        example_calibration=zero_shot.get("example_calibration"),
        calibration_method=(
            _json_field(model_dir / "calibration.json", "method")
            if _json_field(model_dir / "calibration.json", "setting") in (None, "calibration")
            else None
        ),
        wise_ft=_wise_ft_description(model_dir, training_config),
        templates=text.get("templates") or [],
        has_synonyms=bool(config.get("class_synonyms")),
        text_pooling=text.get("pooling", "mean"),
        class_centering=text.get("centering", False),
        zero_shot_head=zero_shot.get("head", "semantic"),
        prototype_weight=zero_shot.get("prototype_weight", 0.0),
        prototype_sharpness=zero_shot.get("prototype_sharpness"),
        prototype_hierarchy=zero_shot.get("prototype_hierarchy", 0.0),
        prototype_glosses=zero_shot.get("prototype_glosses", 0.0),
        backbone_label_weight=zero_shot.get("backbone_label_weight", 0.0),
        backbone_classifier_weight=zero_shot.get("backbone_classifier_weight", 0.0),
        backbone_classifier_hierarchy=zero_shot.get("backbone_classifier_hierarchy", 10.0),
        backbone_labels=len(config.get("backbone_labels") or []),
        few_shot=[
            (name, count) for name, count in zip(class_names, config.get("class_example_counts") or [], strict=False) if count
        ],
        example_weight=photo_weight,
        score_temperature=temperature,
        temperature_given=zero_shot.get("score_temperature") is not None,
        example_shrinkage=zero_shot.get("example_shrinkage"),
        example_threshold=zero_shot.get("example_threshold"),
        new_without_photos=[
            name
            for name, count in zip(class_names, config.get("class_example_counts") or [], strict=False)
            if not count and name not in (config.get("trained_class_names") or class_names)
        ],
        constraints=_constraints(training_config),
        training_config=yaml.safe_dump(training_config, sort_keys=False) if training_config else None,
    )


def _vsenet_settings(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], float, float]:
    """A VSENet config's text and zero-shot settings, from either layout (grouped, or visnet_hf 0.2's flat one), the
    weight its photos are scored with, and the temperature its own vocabulary's scores are divided by (when it is
    not the trained one)."""
    from ..models.vsenet import VSENetConfig

    parsed = VSENetConfig.from_dict(config)
    settings = parsed.zero_shot_config
    counts = [count for count in parsed.class_example_counts or [] if count]
    typical = sum(counts) / len(counts) if counts else 0.0  # as few_shot.typical_photos, on the saved counts
    return (
        parsed.text_config.to_dict(),
        settings.to_dict(),
        settings.photo_weight(),
        round(float(settings.temperature_for(typical)), 3),
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
