"""Bad input, killed runs, full disks and untrusted files: each case with the text the user sees."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file

import visnet_hf
from tests.helpers import generated_images, one_thread, write_config
from visnet_hf.data import DataConfig, DataError, load_splits
from visnet_hf.data.images import BadImageError, decode, decode_tensor, to_rgb
from visnet_hf.training import ConfigError, load_config, train
from visnet_hf.training import main as train_main
from visnet_hf.training.checkpoints import CheckpointError, latest_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def parquet_with_bad_images(tmp_path) -> str:
    """48 readable images, one file that is not an image, one truncated PNG."""
    images = [{"bytes": png_bytes(image), "path": f"good_{i}.png"} for i, image in enumerate(generated_images(48))]
    images.append({"bytes": b"this is not an image", "path": "notes.txt.jpg"})
    whole = png_bytes(generated_images(1, size=64)[0])
    images.append({"bytes": whole[: len(whole) // 2], "path": "truncated.png"})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    dataset = datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(50)]}, features=features)
    path = tmp_path / "bad.parquet"
    dataset.to_parquet(str(path))
    return str(path)


@pytest.mark.slow
def test_unreadable_image_stops_the_run_naming_it(parquet_with_bad_images, tmp_path):
    config = write_config(tmp_path, parquet_with_bad_images, "frn_resnet18", extra="trackers: []\nbatch_size: 50\n")
    with pytest.raises(
        BadImageError,
        match=r"Image \d+ of the (train|eval) split \((notes\.txt\.jpg|truncated\.png)\) cannot be decoded: .*set data\.on_bad_image: skip",
    ):
        train(load_config(config, ["stages.0.epochs=1", "data.val_fraction=0.5"]))


@pytest.mark.slow
def test_unreadable_images_are_skipped_counted_and_reported(parquet_with_bad_images, tmp_path, capsys):
    config = write_config(tmp_path, parquet_with_bad_images, "frn_resnet18", extra="trackers: []\n")
    results = train_main(
        ["--config", str(config), "stages.0.epochs=1", "data.on_bad_image=skip", "data.val_fraction=0.5", "batch_size=25"]
    )
    evaluation = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    reported = results["bad_images"] + evaluation.get("bad_images", [])
    assert sorted({m.split("(")[1].split(")")[0] for m in reported}) == ["notes.txt.jpg", "truncated.png"]
    assert "unreadable image(s) (data.on_bad_image: skip)" in capsys.readouterr().out
    # Evaluation dropped its unreadable images instead of counting them.
    assert sum(map(sum, evaluation["confusion_matrix"])) == 25 - len(evaluation.get("bad_images", []))


def test_image_modes_are_converted_to_rgb():
    grey = Image.fromarray(np.full((4, 4), 100, np.uint8), mode="L")
    assert to_rgb(grey).getpixel((0, 0)) == (100, 100, 100)
    transparent = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert to_rgb(transparent).getpixel((0, 0)) == (255, 255, 255)  # composited on white
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    assert to_rgb(half).getpixel((0, 0)) == (127, 127, 127)
    palette = Image.new("P", (4, 4))
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.putpixel((0, 0), 1)
    assert to_rgb(palette).getpixel((0, 0)) == (200, 100, 50)
    sixteen = Image.fromarray(np.array([[0, 65535], [32896, 257]], dtype=np.uint16))
    assert sixteen.mode in ("I;16", "I")
    converted = to_rgb(sixteen)
    assert converted.mode == "RGB"
    assert [converted.getpixel(p)[0] for p in ((0, 0), (1, 0), (0, 1), (1, 1))] == [0, 255, 128, 1]


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_for_the_training_recipe(tmp_path):
    """A phone photo for a 32-pixel recipe: libjpeg decodes it at 1/8 scale (still 3 times the size each way), upright,
    and after the recipe's resize it is the full decode's to a fraction of a grey level; a PNG, a JPEG not large
    enough and a decode that is not told the size read every pixel; a truncated one is named."""
    import datasets

    from visnet_hf.data import RecipeTransform
    from visnet_hf.data.transforms import TransformedDataset

    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((1600, 1200), Image.Resampling.BICUBIC)
    photo = Image.fromarray(
        np.clip(np.asarray(coarse, dtype=np.int16) + rng.integers(-8, 9, (1200, 1600, 3)), 0, 255).astype(np.uint8)
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # taken upright: stored sideways
    photo.save(tmp_path / "phone.jpg", quality=92, exif=exif.tobytes())
    photo.save(tmp_path / "phone.png")
    recipe = RecipeTransform((32, 32), padding=0, hflip=False, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bicubic")
    reduced, full = (decode_tensor(str(tmp_path / "phone.jpg"), "phone", fits) for fits in ((32, 32), None))
    assert reduced.shape == (3, 200, 150) and full.shape == (3, 1600, 1200)  # 1/8 scale, then turned upright
    difference = (recipe(reduced) - recipe(full)).abs() * 127.5  # grey levels
    assert difference.mean() < 0.5 and difference.max() <= 4  # 0.25 and 1 here
    photo.save(tmp_path / "phone.mpo", format="MPO", save_all=True, append_images=[photo.resize((160, 120))])
    assert decode_tensor(str(tmp_path / "phone.mpo"), "phone", (32, 32)).shape == (3, 150, 200)  # a JPEG with more after it
    assert decode_tensor(str(tmp_path / "phone.png"), "phone", (32, 32)).shape == (3, 1200, 1600)  # saved without EXIF
    assert decode_tensor(str(tmp_path / "phone.jpg"), "phone", (256, 256)).shape == (3, 1600, 1200)  # 1200 < 2 x 3 x 256
    rows = datasets.Dataset.from_dict({"image": [str(tmp_path / "phone.jpg")], "label": [0]})
    torch.testing.assert_close(TransformedDataset(rows, recipe)[0]["pixel_values"], recipe(reduced), atol=0, rtol=0)
    photo.save(tmp_path / "progressive.jpg", quality=92, progressive=True)  # its frame header is another marker
    assert decode_tensor(str(tmp_path / "progressive.jpg"), "phone", (32, 32)).shape == (3, 150, 200)
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "phone.jpg").read_bytes()[:30000])
    with pytest.raises(BadImageError, match=r"photo cut\.jpg cannot be decoded"):
        decode_tensor(str(tmp_path / "cut.jpg"), "photo cut.jpg", (32, 32))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_photo_tagged_with_its_orientation_reads_upright_on_every_path(orientation, tmp_path, monkeypatch):
    """A phone stores a portrait photo sideways with an EXIF orientation; datasets and transformers' pipelines turn
    it upright, so training, visnet predict, visnet extend and the page (decode) must too, by either JPEG decoder."""
    from transformers.image_utils import load_image

    from visnet_hf.data import images

    rng = np.random.default_rng(orientation)
    pixels = (rng.random((24, 40, 3)) * 60).astype(np.uint8)
    pixels[:12, :20] += 180  # one bright corner: each of the eight orientations gives other pixels
    exif = Image.Exif()
    exif[0x0112] = orientation
    for suffix in ("jpg", "png"):
        path = tmp_path / f"photo.{suffix}"
        Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
        shown = np.asarray(load_image(str(path)), dtype=int)  # what a pipeline reads
        assert shown.shape[:2] == ((40, 24) if orientation >= 5 else (24, 40))
        for value in (str(path), {"bytes": path.read_bytes(), "path": None}, Image.open(path)):
            np.testing.assert_array_equal(np.asarray(decode(value, "photo"), dtype=int), shown)
        for decoder in (images._torchcodec_decode_jpeg, None):  # TorchCodec, and torchvision where it is missing
            monkeypatch.setattr(images, "_torchcodec_decode_jpeg", decoder)
            tensor = decode_tensor(str(path), "photo").permute(1, 2, 0).numpy().astype(int)
            assert tensor.shape == shown.shape and np.abs(tensor - shown).max() <= 2  # libjpeg builds may differ by a level


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_decoding_arbitrary_bytes_gives_an_image_or_a_named_error(data):
    try:
        image = decode({"bytes": data, "path": "fuzz.bin"}, "Image 7 of the train split (fuzz.bin)")
    except BadImageError as error:
        assert str(error).startswith("Image 7 of the train split (fuzz.bin)")
    else:
        assert image.mode == "RGB"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), cut=st.integers(0, 2000), flips=st.lists(st.integers(0, 2000), max_size=4))
def test_decoding_jpeg_like_bytes_to_tensors_gives_an_image_or_a_named_error(data, cut, flips):
    """The fast JPEG decoder gets framed garbage and damaged real JPEGs, told the recipe's size or not (its frame
    header read first); PIL names what it rejects."""
    buffer = io.BytesIO()
    generated_images(1, size=24)[0].save(buffer, format="JPEG")
    damaged = bytearray(buffer.getvalue()[: max(4, cut)])
    for position in flips:
        damaged[position % len(damaged)] ^= 0xFF
    candidates = (b"\xff\xd8" + data + b"\xff\xd9", bytes(damaged), bytes(damaged) + b"\xff\xd9")
    for candidate, fits in itertools.product(candidates, (None, (2, 2))):
        try:
            image = decode_tensor({"bytes": candidate, "path": "fuzz.jpg"}, "Image 7 of the train split (fuzz.jpg)", fits)
        except BadImageError as error:
            assert str(error).startswith("Image 7 of the train split (fuzz.jpg)")
        else:
            assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3


@settings(deadline=None)
@given(
    mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F"]),
    width=st.integers(1, 12),
    height=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_every_mode_round_trips_through_png_or_tiff_to_rgb(mode, width, height, seed):
    rng = np.random.default_rng(seed)
    image = Image.new(mode, (width, height))
    image.putdata(
        [int(v) for v in rng.integers(0, 256, width * height)]
        if image.getbands() and len(image.getbands()) == 1
        else [tuple(int(v) for v in rng.integers(0, 256, len(image.getbands()))) for _ in range(width * height)]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF")
    try:  # Pillow cannot always read back what it wrote (YCbCr TIFFs of a pixel or two, with Pillow 12)
        Image.open(io.BytesIO(buffer.getvalue())).load()
    except OSError:
        with pytest.raises(BadImageError, match="fuzz cannot be decoded"):
            decode({"bytes": buffer.getvalue(), "path": None}, "fuzz")
        return
    decoded = decode({"bytes": buffer.getvalue(), "path": None}, "fuzz")
    assert decoded.mode == "RGB" and decoded.size == (width, height)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True), st.text(max_size=8))
KEYS = st.sampled_from(["model", "data", "optim", "stages", "batch_size", "lr", "name", "epochs", "seed", "source", "bogus"])
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(KEYS, children, max_size=4)),
    max_leaves=12,
)


@settings(deadline=None)
@given(document=st.dictionaries(KEYS, TREES, max_size=5))
def test_any_yaml_document_gives_a_config_or_a_config_error(document, tmp_path_factory):
    import yaml

    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        config = load_config(path)
    except ConfigError as error:
        assert "problem(s)" in str(error)
    else:
        assert config.batch_size >= 1


def test_empty_split_is_reported(tmp_path):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"image": [], "label": []}, features=features).to_parquet(str(tmp_path / "empty.parquet"))
    with pytest.raises(DataError, match="The train split is empty"):
        load_splits(DataConfig(path=str(tmp_path / "empty.parquet")))


def test_unknown_preset_and_backbone_fail_before_any_data_is_read(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(None, ["model.name=vsenet_resnt18", "model.overrides={backbone: resnt50}", "data.path=/nowhere"])
    assert "model.name: Unknown model 'vsenet_resnt18'. Did you mean 'vsenet_resnet18'" in str(error.value)
    assert "model.overrides.backbone: Unknown backbone 'resnt50'. Did you mean 'resnet50'" in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_config(None, ["model.name=frn_resnet18", "model.overrides={num_classes: 3}", "data.path=/nowhere"])
    assert "model.overrides.num_classes: timm's keyword for the backbone's classifier" in str(error.value)


@pytest.mark.slow
def test_a_full_disk_fails_loudly_and_keeps_the_previous_checkpoint(tiny_parquet, tmp_path, monkeypatch):
    from accelerate import Accelerator

    saves = {"count": 0}
    original = Accelerator.save_state

    def save_state(self, output_dir=None, **kwargs):
        saves["count"] += 1
        if saves["count"] == 2:
            Path(output_dir, "partial.bin").write_bytes(b"half")
            raise OSError(28, "No space left on device")
        return original(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    config = write_config(tmp_path, tiny_parquet, "frn_resnet18", extra="trackers: []\ncheckpoint_every_steps: 2\n")
    with pytest.raises(
        CheckpointError,
        match=r"Saving the checkpoint of step 4 .* failed \(\[Errno 28\] No space left on device\); the previous checkpoint .*step_00000002 is intact",
    ):
        train(load_config(config))
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step_00000002"]
    assert latest_checkpoint(tmp_path / "run").name == "step_00000002"


def test_resume_ignores_incomplete_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "step_00000004").mkdir(parents=True)
    (root / "step_00000004" / "trainer_state.json").write_text("{}")
    (root / "step_00000008.tmp").mkdir()
    (root / "step_00000008.tmp" / "trainer_state.json").write_text("{}")
    (root / "step_00000006").mkdir()  # killed before its state was written
    assert latest_checkpoint(tmp_path).name == "step_00000004"


@pytest.mark.slow
def test_kill_9_then_resume_ends_like_an_uninterrupted_run(tiny_parquet, tmp_path, capsys):
    extra = "trackers: []\ncheckpoint_every_steps: 3\nkeep_checkpoints: 3\nbatch_size: 8\n"
    overrides = ["stages.0.constraints=[{name: grey_values, weight: 0.1}]"]
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference_dir.mkdir(), killed_dir.mkdir()
    with one_thread():  # as the subprocess below
        reference = write_config(reference_dir, tiny_parquet, "frn_resnet18", extra=extra)
        train(load_config(reference, [*overrides, "checkpoint_every_steps=null"]))  # checkpoints change nothing

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "train.py")]
    config = write_config(killed_dir, tiny_parquet, "frn_resnet18", extra=extra)
    process = subprocess.Popen(
        [*command, "--config", str(config), *overrides], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoints = killed_dir / "run" / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoints.exists() and len([p for p in checkpoints.iterdir() if not p.name.endswith(".tmp")]) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed; make it longer"
    killed_at = latest_checkpoint(killed_dir / "run")
    assert killed_at is not None

    capsys.readouterr()
    with one_thread():  # resumed in this process: what matters is the kill
        train(load_config(config, overrides), resume=True)
    assert f"Resumed from {killed_at}" in capsys.readouterr().out
    expected = load_file(reference_dir / "run" / "model" / "model.safetensors")
    final = load_file(killed_dir / "run" / "model" / "model.safetensors")
    for name, tensor in expected.items():
        torch.testing.assert_close(final[name], tensor, atol=1e-6, rtol=0)


def test_loading_never_runs_code_from_the_model_folder(tmp_path):
    model = visnet_hf.create_model("frn_resnet18", num_labels=2, image_size=32)
    model.save_pretrained(tmp_path)
    marker = tmp_path / "code_ran"
    (tmp_path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((tmp_path / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel", "AutoConfig": "modeling_evil.EvilConfig"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    from transformers import AutoModelForImageClassification

    loaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert type(loaded) is visnet_hf.FRNForImageClassification and not marker.exists()
    with pytest.raises(ValueError, match="never run code from a model folder"):
        visnet_hf.FRNForImageClassification.from_pretrained(tmp_path, trust_remote_code=True)
    assert not marker.exists()


def test_pickle_weights_only_with_opt_in_and_weights_only_loading(tmp_path):
    model = visnet_hf.create_model("frn_resnet18", num_labels=2, image_size=32).eval()
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="model.safetensors"):
        visnet_hf.FRNForImageClassification.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="weights_only=False would let a pickle file run arbitrary code"):
        visnet_hf.FRNForImageClassification.from_pretrained(tmp_path, use_safetensors=False, weights_only=False)
    loaded = visnet_hf.FRNForImageClassification.from_pretrained(tmp_path, use_safetensors=False).eval()
    pixel_values = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(pixel_values).logits, model(pixel_values).logits)
