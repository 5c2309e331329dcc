"""A page to try a model: drop an image, edit the class names, see the top-k (``visnet app``).

Gradio is the ecosystem's convention for this (and what a Hugging Face Space runs): ``gr.Image`` in,
``gr.Label`` out. For a VSENet the class names are editable: the page re-embeds them with the model's
text encoder (its bundled copy, or the one its config names) and scores the image among them,
which is the model's point: new names without retraining. Every mistake on the page (a file that
is not an image, an empty or overlong list of names, a text encoder that cannot be loaded) is a
message on the page, not a stack trace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._choices import ZERO_SHOT_HEADS
from .data.images import BadImageError, decode
from .errors import VisnetError
from .hub.loading import EVAL_RESULTS, model_file, read_config
from .predict import IMAGE_SUFFIXES, Predictor, parse_names


class Classifier:
    """The page's model: :class:`~visnet_hf.predict.Predictor`, with every problem turned into a message."""

    def __init__(self, model_dir: str):
        self.predictor = Predictor(model_dir)
        self.source, self.model = self.predictor.source, self.predictor.model
        self.is_vsenet = self.predictor.is_vsenet
        self.class_names = self.predictor.class_names  # its vocabulary: trained, or given since

    def predict(
        self,
        image_path: str | None,
        names_text: str | None = None,
        head: str | None = None,
        calibration: float | None = None,
        top_k: int = 5,
    ) -> tuple[dict[str, float], str]:
        """``({label: probability}, message)`` for the top ``top_k`` classes; the message explains any problem."""
        if not image_path:
            return {}, "Drop an image (or paste one, or use the webcam) to see what the model makes of it."
        try:
            image = decode(image_path, Path(image_path).name)
        except BadImageError as error:
            return {}, f"That file is not an image the model can read: {error}."
        names, message = None, ""
        try:
            if self.is_vsenet:
                names = parse_names(names_list(self.class_names) if names_text is None else names_text, self.class_names)
            predictions = self.predictor.predict(image, names, zero_shot_head=head or None, calibration=calibration, top_k=top_k)
        except VisnetError as error:
            return {}, str(error)
        if names is not None and set(names) != set(self.class_names):
            used = head or self.model.config.zero_shot_config.head
            message = f"Scored among {len(names)} names by the {used!r} zero-shot head."
        return {p["label"]: p["score"] for p in predictions}, message

    def summary(self) -> str:
        """The model card's summary: family, backbone, input size, classes and metrics."""
        config = self.model.config
        lines = [
            f"**{Path(str(self.source)).name or self.source}**: {config.model_type.upper()} on `{config.backbone}`, "
            f"{config.data_config['input_size'][-1]} px input."
        ]
        names = self.class_names
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        trained = list(config.trained_class_names) if self.is_vsenet else names
        if names == trained:
            lines.append(f"Trained classes ({len(names)}): {shown}.")
        else:  # a vocabulary given since: new names, some with photos (visnet extend), maybe the trained ones beside
            with_photos = sum(1 for count in config.class_example_counts or [] if count)
            lines.append(
                f"Classes ({len(names)}): {shown}. {len(set(names) - set(trained))} of them not trained on, scored from "
                f"their names{f' ({with_photos} also from their photos)' if with_photos else ''}; trained on "
                f"{len(trained)} classes."
            )
        metrics_path = model_file(self.source, EVAL_RESULTS)
        if metrics_path is not None:
            metrics = json.loads(Path(metrics_path).read_text())
            if "accuracy" in metrics:
                lines.append(
                    f"Top-1 {100 * metrics['accuracy']:.1f}%"
                    + (f", top-5 {100 * metrics['top5_accuracy']:.1f}%" if "top5_accuracy" in metrics else "")
                    + (f" on {metrics['num_examples']} images" if "num_examples" in metrics else "")
                    + (f" ({metrics['split']})" if "split" in metrics else "")
                    + "."
                )
        if self.is_vsenet:
            lines.append(
                f"Text encoder `{config.text_config.encoder}`; zero-shot head `{config.zero_shot_config.head}`; calibration "
                f"offset {config.zero_shot_config.calibration:g} (applied when trained and new names are mixed)"
                + (
                    f", {config.zero_shot_config.example_calibration:g} beside names given photos."
                    if config.zero_shot_config.example_calibration is not None
                    else "."
                )
            )
        return "\n\n".join(lines)

    def examples(self) -> list[str]:
        """Images kept in the model folder (``examples/``, or beside the weights), if any."""
        folder = Path(str(self.source))
        if not folder.is_dir():
            return []
        candidates = sorted((folder / "examples").glob("*")) + sorted(folder.glob("*"))
        return [str(p) for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES][:8]


def names_list(names: list[str]) -> str:
    """The names as the page's text box shows them: comma-separated, or one per line where a name has a comma."""
    return ("\n" if any("," in name for name in names) else ", ").join(names)


def _image_input():
    """``gr.Image`` that hands over the uploaded file even when it is not an image, so that the page
    can say so (Gradio's own check would fail the request with a generic error).

    The instance's ``preprocess`` is wrapped rather than ``gr.Image`` subclassed: Gradio writes a
    ``.pyi`` stub beside the source file of every component subclass.
    """
    import gradio as gr

    image = gr.Image(type="filepath", sources=["upload", "clipboard", "webcam"], label="Image", height=320)
    decode_upload = image.preprocess

    def preprocess(payload):
        try:
            return decode_upload(payload)
        except Exception:  # PIL cannot open it: predict() names the problem on the page
            return str(payload.path) if payload is not None and payload.path else None

    image.preprocess = preprocess
    return image


def build_app(model_dir: str):
    """The Gradio page for a saved model (a folder or a Hub id)."""
    import gradio as gr

    classifier = Classifier(model_dir)
    with gr.Blocks(title=f"visnet_hf: {Path(str(model_dir)).name}") as page:
        gr.Markdown("# Try the model\nDrop an image; for a VSENet, edit the class names and see the scores change.")
        with gr.Row():
            with gr.Column():
                image = _image_input()
                names = gr.Textbox(
                    value=names_list(classifier.class_names),
                    lines=3,
                    label="Class names (comma- or line-separated)",
                    visible=classifier.is_vsenet,
                    elem_id="class-names",
                )
                with gr.Row(visible=classifier.is_vsenet):
                    head = gr.Dropdown(
                        list(ZERO_SHOT_HEADS),
                        value=classifier.model.config.zero_shot_config.head if classifier.is_vsenet else None,
                        label="Zero-shot head",
                    )
                    calibration = gr.Number(
                        value=getattr(classifier.model.config, "calibration", 0.0), label="Calibration offset (mixed names)"
                    )
                top_k = gr.Slider(1, 10, value=5, step=1, label="Top-k")
                button = gr.Button("Classify", variant="primary", elem_id="classify")
            with gr.Column():
                label = gr.Label(label="Predictions", elem_id="predictions")
                message = gr.Markdown(elem_id="message")
                gr.Markdown(classifier.summary(), elem_id="summary")
        examples = classifier.examples()
        if examples:
            gr.Examples(examples=[[path] for path in examples], inputs=[image])
        inputs = [image, names, head, calibration, top_k]
        button.click(classifier.predict, inputs=inputs, outputs=[label, message], api_name="predict")
        image.change(classifier.predict, inputs=inputs, outputs=[label, message], api_name=False)
    return page


def launch(model_dir: str, host: str = "127.0.0.1", port: int | None = None, **kwargs: Any):
    """Serve the page (``visnet app``); returns once the server stops, unless ``prevent_thread_lock``."""
    page = build_app(model_dir)
    return page.launch(server_name=host, server_port=port, **kwargs)


SPACE_README = """---
title: {title}
emoji: 🔭
colorFrom: blue
colorTo: green
sdk: gradio
app_file: app.py
pinned: false
models:
- {model_id}
---

Try [{model_id}](https://huggingface.co/{model_id}), a visnet_hf {family} model: drop an image, edit the
class names, and see the top predictions. Served by `visnet_hf.app`.
"""

SPACE_APP = '''"""A Space for {model_id}: the page `visnet app` serves, loading the model by its Hub id."""

from visnet_hf.app import build_app

build_app("{model_id}").launch()
'''


def write_space(model_dir: str | Path, model_id: str, output: str | Path) -> list[Path]:
    """``app.py``, ``requirements.txt`` and the Space ``README.md`` (``sdk: gradio``) for ``model_id``."""
    family = read_config(Path(model_dir))["model_type"]
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    files = {
        "app.py": SPACE_APP.format(model_id=model_id),
        # visnet_hf itself: from PyPI once published, else from the project's repository (edit the line to it).
        "requirements.txt": "visnet-hf\ngradio>=5\n",
        "README.md": SPACE_README.format(title=model_id.split("/")[-1], model_id=model_id, family=family.upper()),
    }
    for name, text in files.items():
        (output / name).write_text(text)
    return [output / name for name in files]


def push_space(model_dir: str | Path, repo_id: str, model_id: str | None = None, private: bool = False, api=None) -> list[str]:
    """Write the Space files for ``model_id`` (default: the model repo of the same name) and upload them
    to the Space ``repo_id``; push the model itself with ``visnet push`` first."""
    import tempfile

    from .hub import sharing

    api = api or sharing.make_api()
    with tempfile.TemporaryDirectory() as folder:
        written = write_space(model_dir, model_id or repo_id, folder)
        api.create_repo(repo_id=repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="space", commit_message="visnet_hf Space")
        return sorted(path.name for path in written)
