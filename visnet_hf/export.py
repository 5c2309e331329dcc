"""Exporting a saved model for serving: ONNX (run by onnxruntime) or ``torch.export``, checked against PyTorch.

The exported graph takes ``pixel_values`` (a batch of images as the model's image processor prepares them:
resized, cropped, normalised; the batch size is free) and returns the logits over the model's own classes,
with the test-time views (flip, zoom) the model was saved with. A VSENet is exported with its saved vocabulary:
new names need the Python model. Beside the graph go ``preprocessor_config.json`` (how to prepare an image)
and ``labels.json`` (the logits' classes, in order).

Every export is checked before it is kept: the exported model and the PyTorch model score the same images
(the ones given, or generated ones), and the export fails unless their top-1 classes are equal on every image
and their logits agree up to float rounding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import VisnetError
from .hub.loading import load_model

FORMATS = ("onnx", "torch-export")
ONNX_OPSET = 18  # Resize with antialias (the zoom view) needs 18


class ExportError(VisnetError, RuntimeError):
    """An export that could not be made, or that does not score as the model does."""


class _Logits(nn.Module):
    """The model as a function of images alone: what the exported graph computes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def export_model(
    model_dir: str | Path, output_dir: str | Path, format: str = "onnx", images: Sequence[str | Path] | None = None
) -> dict[str, Any]:
    """What ``visnet export`` runs: export a saved model and check it.

    Args:
        model_dir: a saved model folder or a Hub id.
        output_dir: where ``model.onnx`` (or ``model.pt2``), ``preprocessor_config.json`` and ``labels.json`` go.
        format: ``onnx`` or ``torch-export``.
        images: image files or folders to check the export on (default: 8 generated images).

    Returns:
        What was written and how it was checked: the images, whether every top-1 agreed, the largest logit difference.

    Raises:
        ExportError: the export failed, or scores otherwise than the model (nothing is left in ``output_dir``).
    """
    if format not in FORMATS:
        raise ExportError(f"Unknown export format {format!r}; choose one of {list(FORMATS)}.")
    model = load_model(model_dir).float()  # one saved in half precision too: ONNX Runtime's CPU kernels take float32
    wrapper = _Logits(model).eval()
    pixels = _check_images(model, images)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    path = output / ("model.onnx" if format == "onnx" else "model.pt2")
    with torch.no_grad():
        expected = wrapper(pixels)  # first, eagerly: what the model holds (its vocabulary) is made outside the export
    try:
        exported = _export_onnx(wrapper, pixels, path) if format == "onnx" else _export_program(wrapper, pixels, path)
        got = exported(pixels).detach()
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    except Exception as error:  # an operator an exporter does not know, a runtime that refuses the graph, ...
        path.unlink(missing_ok=True)
        raise ExportError(f"Exporting {model_dir} to {format} failed: {type(error).__name__}: {error}") from error
    difference = float((got - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    same_top1 = bool((got.argmax(-1) == expected.argmax(-1)).all())
    if not same_top1 or difference > 1e-3 * scale:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"The {format} export of {model_dir} does not score as the model does (top-1 equal on every image: "
            f"{same_top1}; largest logit difference {difference:.3g}); nothing was kept."
        )
    model.image_processor().save_pretrained(output)
    names = [model.config.id2label[index] for index in range(len(model.config.id2label))]
    (output / "labels.json").write_text(json.dumps(names, indent=1) + "\n")
    return {
        "path": str(path),
        "format": format,
        "checked_on_images": len(pixels),
        "top1_equal": same_top1,
        "max_logit_difference": difference,
        "classes": len(names),
    }


def _check_images(model: Any, images: Sequence[str | Path] | None) -> torch.Tensor:
    """The images the export is checked on, prepared by the model's image processor."""
    from PIL import Image

    from .data.images import decode
    from .image_processing import presized
    from .predict import image_files

    processor = model.image_processor()
    if images:
        pictures = [presized(decode(file, str(file)), processor) for file in image_files(images)]
    else:
        generator = torch.Generator().manual_seed(0)
        size = model.config.data_config["input_size"][-1]
        pictures = [
            Image.fromarray((torch.rand(size, size, 3, generator=generator) * 255).to(torch.uint8).numpy()) for _ in range(8)
        ]
    return processor(pictures, return_tensors="pt")["pixel_values"]


def _export_onnx(wrapper: nn.Module, pixels: torch.Tensor, path: Path):
    """``torch.onnx.export`` (its graph from ``torch.export``, a free batch size), run back by onnxruntime."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (the exporter's own dependency, named here so that its absence says what to install)
    except ImportError as error:
        raise ExportError("ONNX export needs onnx, onnxscript and onnxruntime: pip install -e '.[export]'.") from error
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (pixels,),
            str(path),
            input_names=["pixel_values"],
            output_names=["logits"],
            dynamic_shapes={"pixel_values": {0: batch}},
            opset_version=ONNX_OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(["logits"], {"pixel_values": batch.numpy()})[0])

    return run


def _export_program(wrapper: nn.Module, pixels: torch.Tensor, path: Path):
    """``torch.export`` with a free batch size, saved as ``model.pt2`` and loaded back from the file."""
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(wrapper, (pixels,), dynamic_shapes={"pixel_values": {0: batch}})
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()

    def run(batch_pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return loaded(batch_pixels)

    return run


__all__ = ["FORMATS", "ExportError", "export_model"]
