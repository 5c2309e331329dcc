"""`visnet app`: the page to try a model, through gradio_client and in a real headless Chromium; `visnet space`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

import visnet_hf
from tests.helpers import CIFAR10, CLASS_NAMES, RecordingApi, free_port, generated_images
from visnet_hf import hub
from visnet_hf.cli import main as cli

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def vsenet_dir(tiny_text_encoder, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("app_model")
    model = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32)
    model.save_pretrained(folder)
    (folder / "examples").mkdir()
    generated_images(1)[0].save(folder / "examples" / "square.png")
    return folder


@pytest.fixture(scope="module")
def real_image(tmp_path_factory) -> Path:
    """One real CIFAR-10 image as a PNG file, as a user would drop it (a generated one without ../shared)."""
    path = tmp_path_factory.mktemp("images") / "photo.png"
    if CIFAR10.exists():
        import datasets

        datasets.Dataset.from_parquet(str(CIFAR10)).select(range(1))[0]["image"].save(path)
    else:
        generated_images(1)[0].save(path)
    return path


@pytest.fixture(scope="module")
def served(vsenet_dir):
    """The page, served on 127.0.0.1 in this process."""
    pytest.importorskip("gradio", reason="pip install -e '.[test]' for gradio")  # here: its import takes seconds
    from visnet_hf.app import build_app

    page = build_app(str(vsenet_dir))
    port = free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    page.close()


def test_names_are_parsed_and_checked():
    from visnet_hf.predict import parse_names

    assert parse_names("zebra, lorry\ncat") == ["zebra", "lorry", "cat"]
    # a line that is one of the model's names is that name, commas and all (Hugging Face's ImageNet names)
    imagenet = ["tench, Tinca tinca", "goldfish, Carassius auratus"]
    assert parse_names("\n".join(imagenet), imagenet) == imagenet
    assert parse_names("tench, Tinca tinca\nzebra, ox", imagenet) == ["tench, Tinca tinca", "zebra", "ox"]
    for text, message in (
        ("  ,\n ", "Give at least one class name"),
        (",".join(f"n{i}" for i in range(1001)), "1001 names is too many; give at most 1000"),
        ("cat, dog, cat", "Each name once, please: cat is repeated"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_names(text)


@pytest.mark.slow
def test_the_page_predicts_as_the_pipeline_does_and_follows_the_names(served, vsenet_dir, real_image):
    from gradio_client import Client, handle_file
    from transformers import pipeline

    client = Client(served, verbose=False)
    labels, message = client.predict(handle_file(str(real_image)), ", ".join(CLASS_NAMES), "both", 0.0, 4, api_name="/predict")
    expected = pipeline("image-classification", model=str(vsenet_dir), top_k=4)(str(real_image))
    shown = {c["label"]: c["confidence"] for c in labels["confidences"]}
    assert shown == pytest.approx({p["label"]: p["score"] for p in expected}, abs=1e-4)
    assert message == ""

    labels, message = client.predict(handle_file(str(real_image)), "zebra\nlorry\ncat", "semantic", 0.0, 5, api_name="/predict")
    assert {c["label"] for c in labels["confidences"]} == {"zebra", "lorry", "cat"}
    assert "Scored among 3 names by the 'semantic' zero-shot head" in message

    for names, expected_message in (
        ("", "Give at least one class name"),
        (" , \n", "Give at least one class name"),
        ("cat, cat", "Each name once, please: cat is repeated"),
        (",".join(f"n{i}" for i in range(1001)), "1001 names is too many"),
    ):
        labels, message = client.predict(handle_file(str(real_image)), names, "both", 0.0, 3, api_name="/predict")
        assert expected_message in message and not labels.get("confidences")
    labels, _ = client.predict(handle_file(str(real_image)), ", ".join(CLASS_NAMES), "both", 0.0, 3, api_name="/predict")
    assert len(labels["confidences"]) == 3  # the page recovers: the trained names again


@pytest.mark.slow
def test_a_file_that_is_not_an_image_gets_a_message(served, tmp_path):
    from gradio_client import Client, handle_file

    notes = tmp_path / "notes.png"
    notes.write_text("these are not pixels")
    client = Client(served, verbose=False)
    try:
        labels, message = client.predict(handle_file(str(notes)), "cat, dog", "both", 0.0, 3, api_name="/predict")
    except Exception as error:  # gradio itself may refuse the upload; the page then shows its error
        pytest.fail(f"the page raised instead of explaining: {error}")
    assert "not an image the model can read" in message and not labels.get("confidences")


def test_a_text_encoder_that_cannot_be_loaded_is_explained(vsenet_dir, tmp_path, real_image):
    import json

    from visnet_hf.app import Classifier

    folder = tmp_path / "moved"
    shutil.copytree(vsenet_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["encoder"] = str(tmp_path / "gone")  # as on another machine
    (folder / "config.json").write_text(json.dumps(config))
    labels, message = Classifier(str(folder)).predict(str(real_image), "zebra, ox")
    assert labels == {} and "need the model's text encoder, which cannot be loaded here" in message
    assert "visnet bundle-text-encoder" in message
    labels, _ = Classifier(str(folder)).predict(str(real_image), ", ".join(CLASS_NAMES))  # the trained names need no encoder
    assert set(labels) == set(CLASS_NAMES)
    labels, message = Classifier(str(folder)).predict(str(real_image), "ship, cat")  # nor some of them
    assert set(labels) == {"ship", "cat"} and message.startswith("Scored among 2 names")


def test_the_summary_and_examples_come_from_the_model_folder(vsenet_dir):
    from visnet_hf.app import Classifier

    classifier = Classifier(str(vsenet_dir))
    assert "VSENET on `resnet18`, 32 px input" in classifier.summary()
    assert "Trained classes (4): cat, dog, car, ship." in classifier.summary()
    assert [Path(p).name for p in classifier.examples()] == ["square.png"]


def test_names_with_commas_are_listed_one_per_line_and_read_back_whole(tiny_text_encoder, real_image, tmp_path):
    from visnet_hf.app import Classifier, names_list

    imagenet = ["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark"]
    model = visnet_hf.create_model("vsenet_resnet18", class_names=imagenet, text_encoder=tiny_text_encoder, image_size=32)
    model.save_pretrained(tmp_path)
    classifier = Classifier(str(tmp_path))
    assert names_list(classifier.class_names) == "\n".join(imagenet) and names_list(["cat", "dog"]) == "cat, dog"
    labels, message = classifier.predict(str(real_image))  # the text box's own text: the trained vocabulary
    assert set(labels) == set(imagenet) and message == ""


def test_the_summary_of_a_model_given_new_names_and_photos(vsenet_dir, tmp_path):
    """Names given since training (visnet extend) are the model's classes, not its trained ones, and the summary
    says which are new and which came with photos."""
    from visnet_hf.app import Classifier

    model = visnet_hf.VSENetForImageClassification.from_pretrained(vsenet_dir)
    model.config.zero_shot_config.example_calibration = 7.5
    with pytest.warns(UserWarning):  # no fitted feature statistics: said, and beside the point here
        model.set_classes(["zebra", "ox", "cat"], examples={"zebra": generated_images(2)}, keep_trained=False)
    model.save_pretrained(tmp_path)
    summary = Classifier(str(tmp_path)).summary()
    assert (
        "Classes (3): zebra, ox, cat. 2 of them not trained on, scored from their names (1 also from their photos); trained on 4 classes."
        in summary
    )
    assert "Trained classes" not in summary and ", 7.5 beside names given photos." in summary


@pytest.mark.slow
def test_in_a_real_browser(served, real_image):
    """Load the page in headless Chromium, drop a real image, type new names, read the labels shown."""
    if not CHROMIUM.exists():
        if os.environ.get("VISNET_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(served, wait_until="networkidle")
        page.locator("input[type=file]").first.set_input_files(str(real_image))
        names = page.locator("#class-names textarea")
        names.fill("zebra, lorry, cat")
        page.locator("#classify").click()
        predictions = page.locator("#predictions")
        predictions.get_by_text("lorry").first.wait_for(timeout=60_000)
        shown = predictions.inner_text()
        assert all(name in shown for name in ("zebra", "lorry", "cat")) and "dog" not in shown
        page.screenshot(path=str(ARTIFACTS / "visnet_app.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "visnet_app.png").stat().st_size > 10_000


def test_space_files_and_upload(vsenet_dir, tmp_path, capsys, monkeypatch):
    from visnet_hf.app import write_space

    files = write_space(vsenet_dir, "someone/vsenet-tiny", tmp_path / "space")
    readme = (tmp_path / "space" / "README.md").read_text()
    assert "sdk: gradio" in readme and "app_file: app.py" in readme and "- someone/vsenet-tiny" in readme
    assert 'build_app("someone/vsenet-tiny").launch()' in (tmp_path / "space" / "app.py").read_text()
    assert "visnet-hf" in (tmp_path / "space" / "requirements.txt").read_text()
    assert sorted(p.name for p in files) == ["README.md", "app.py", "requirements.txt"]

    api = RecordingApi()
    monkeypatch.setattr(hub.sharing, "make_api", lambda: api)
    assert cli(["space", str(vsenet_dir), "--repo-id", "someone/vsenet-demo", "--model-id", "someone/vsenet-tiny"]) == 0
    name, created = api.calls[0]
    assert name == "create_repo" and created == {
        "repo_id": "someone/vsenet-demo",
        "repo_type": "space",
        "space_sdk": "gradio",
        "private": False,
        "exist_ok": True,
    }
    name, upload = api.calls[1]
    assert (
        name == "upload_folder"
        and upload["repo_type"] == "space"
        and upload["files"] == ["README.md", "app.py", "requirements.txt"]
    )
    assert "https://huggingface.co/spaces/someone/vsenet-demo" in capsys.readouterr().out


def test_the_page_and_the_command_line_share_one_prediction_path(vsenet_dir, real_image, tmp_path, capsys):
    """`visnet zero-shot` and the page give the same labels and scores, read the same suffixes and names,
    and neither changes the loaded model's config (per-call head and offset)."""
    import json

    from visnet_hf.app import Classifier

    tiff = tmp_path / "photo.tiff"  # a suffix the page once missed
    shutil.copy(real_image, tmp_path / "photo.png")
    from PIL import Image

    Image.open(real_image).save(tiff)
    assert cli(["zero-shot", "--model", str(vsenet_dir), "--classes", "zebra,\ncat", "--top-k", "2", str(tmp_path)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(row["file"]).name for row in printed] == ["photo.png", "photo.tiff"]
    classifier = Classifier(str(vsenet_dir))
    config_before = classifier.model.config.to_dict()
    labels, message = classifier.predict(str(tiff), "zebra,\ncat", head="conse", calibration=3.0, top_k=2)
    assert classifier.model.config.to_dict() == config_before and "by the 'conse' zero-shot head" in message
    labels, _ = classifier.predict(str(tiff), "zebra,\ncat", top_k=2)
    assert printed[1]["predictions"] == [{"label": k, "score": round(v, 4)} for k, v in labels.items()]
    assert [Path(p).suffix for p in classifier.examples()] == [".png"]
