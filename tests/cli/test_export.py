"""Export for serving: ONNX run by onnxruntime and torch.export, from the command, checked against PyTorch."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForImageClassification

import visnet_hf
from tests.helpers import CLASS_NAMES, FIXTURES, generated_images
from visnet_hf.cli import main as cli
from visnet_hf.export import ExportError, export_model

onnxruntime = pytest.importorskip("onnxruntime", reason="pip install -e '.[export]' for onnx and onnxruntime")


@pytest.fixture(scope="module")
def real_images(tmp_path_factory, cifar10_sample):
    folder = tmp_path_factory.mktemp("images")
    for index, image in enumerate(cifar10_sample[0][:6]):
        image.save(folder / f"{index}.png")
    return folder


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_the_export_scores_real_images_as_the_model_does(fmt, minilm_path, real_images, tmp_path, capsys):
    """The 0.2 VSENet (both test-time views, visual prototypes with WordNet, separate zero-shot heads) among new
    names: the hardest graph the project makes, through the command a user types."""
    model = AutoModelForImageClassification.from_pretrained(FIXTURES / "v0_2_0" / "vsenet").eval()
    model.set_classes(["zebra", "lorry", "goldfish", "cat"])  # a mixed vocabulary: ConSE, prototypes, the offset
    model.save_pretrained(tmp_path / "model")
    assert cli(["export", "--model", str(tmp_path / "model"), "--output-dir", str(tmp_path / "out"), "--format", fmt,
                "--images", str(real_images)]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["checked_on_images"] == 6 and result["top1_equal"] and result["max_logit_difference"] < 1e-3
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == ["zebra", "lorry", "goldfish", "cat"]
    assert (tmp_path / "out" / "preprocessor_config.json").exists()
    # Read back independently of the check: the file alone, on a batch of another size.
    pixels = model.image_processor()(generated_images(3, size=48), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(["logits"], {"pixel_values": pixels.numpy()})[0])
    else:
        got = torch.export.load(str(tmp_path / "out" / "model.pt2")).module()(pixels)
    assert got.argmax(-1).tolist() == expected.argmax(-1).tolist()
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)


def test_an_frn_exports_and_a_wrong_export_is_refused(tiny_text_encoder, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "frn_resnet18", num_labels=len(CLASS_NAMES), id2label=dict(enumerate(CLASS_NAMES)), image_size=32
    )
    model.eval().save_pretrained(tmp_path / "frn")
    assert export_model(tmp_path / "frn", tmp_path / "out", "onnx")["top1_equal"]
    model.to(torch.bfloat16).save_pretrained(tmp_path / "frn_bf16")  # saved in half precision: exported in float32
    assert export_model(tmp_path / "frn_bf16", tmp_path / "out_bf16", "onnx")["top1_equal"]

    from visnet_hf import export

    monkeypatch.setattr(
        export, "_export_onnx", lambda wrapper, pixels, path: (path.write_bytes(b"x"), lambda batch: -wrapper(batch))[1]
    )
    with pytest.raises(ExportError, match="does not score as the model does.*nothing was kept"):
        export_model(tmp_path / "frn", tmp_path / "wrong", "onnx")
    assert not (tmp_path / "wrong" / "model.onnx").exists()
    with pytest.raises(SystemExit):
        cli(["export", "--model", str(tmp_path / "frn"), "--output-dir", str(tmp_path / "o"), "--format", "tflite"])


def test_a_model_given_photos_exports_with_them(minilm_path, real_images, tmp_path, capsys):
    """New names given with photos beside the trained classes: the photos' whitened cosines, the trained classes'
    centroids and the temperature that grows with the photos, in one graph. A branch on a buffer (were the
    statistics fitted? how many photos?) stopped torch.export before."""
    model = AutoModelForImageClassification.from_pretrained(FIXTURES / "v0_2_0" / "vsenet").eval()
    trained = len(model.config.trained_class_names)
    features = torch.randn(40, model.config.num_features, generator=torch.Generator().manual_seed(0))
    assert model.fit_prototypes([{"image_features": features, "labels": torch.arange(40) % trained}]) == 40
    assert model.zero_shot.prototypes.whitening(model.config.zero_shot_config.example_shrinkage) is not None
    photos = sorted(real_images.iterdir())
    with pytest.warns(UserWarning, match="offset"):
        model.set_classes(["zebra", "lorry"], examples={"zebra": photos[:2], "lorry": photos[2:5]}, keep_trained=True)
    model.save_pretrained(tmp_path / "model")
    assert cli(["export", "--model", str(tmp_path / "model"), "--output-dir", str(tmp_path / "out"),
                "--images", str(real_images)]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["checked_on_images"] == 6 and result["top1_equal"] and result["max_logit_difference"] < 1e-3
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == [*model.config.trained_class_names, "zebra", "lorry"]
