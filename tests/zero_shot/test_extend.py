"""`visnet extend`: a saved VSENet learns the classes of a folder of photos from their names and photos, and the
saved result answers the pipeline, predict and eval; the mistakes are one `visnet: error:` line."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest
import torch
from transformers import pipeline

import visnet_hf
from tests.cli.test_cli_errors import error_of
from tests.helpers import CLASS_NAMES
from visnet_hf.cli import main as cli

NEW = ["lion", "truck", "boat"]


@pytest.fixture(scope="module")
def saved_vsenet(tiny_text_encoder, tiny_parquet, tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, prototype_weight=1.0
    ).eval()
    images = list(datasets.Dataset.from_parquet(tiny_parquet)["image"])
    model.fit_prototypes([(model.image_processor()(images[80:], return_tensors="pt")["pixel_values"], torch.arange(16) % 4)])
    folder = tmp_path_factory.mktemp("vsenet")
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def new_photos(tiny_parquet, tmp_path_factory):
    """``new_photos/<name>/IMG_000N.jpg``: 4 real photos for each new class."""
    root = tmp_path_factory.mktemp("new_photos")
    images = list(datasets.Dataset.from_parquet(tiny_parquet)["image"])
    for index, name in enumerate(NEW):
        (root / name).mkdir()
        for number, image in enumerate(images[4 * index : 4 * index + 4]):
            image.convert("RGB").save(root / name / f"IMG_{number:04d}.jpg")
    return root


def test_extend_then_the_saved_model_answers_pipeline_predict_and_eval(saved_vsenet, new_photos, tiny_parquet, tmp_path, capsys):
    output = tmp_path / "extended"
    capsys.readouterr()
    assert cli(["extend", "--model", saved_vsenet, "--data", str(new_photos), "--output-dir", str(output)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        result["new_classes"] == sorted(NEW) and result["photos"] == {"lion": 4, "truck": 4, "boat": 4} and result["classes"] == 3
    )
    assert result["already_trained"] == []
    config = json.loads((output / "config.json").read_text())
    assert config["class_names"] == sorted(NEW) and config["class_example_counts"] == [4, 4, 4]  # the folders' order
    card = (output / "README.md").read_text()
    assert "Learned from photos (3): boat (4), lion (4), truck (4)." in card
    # the weight the photos are scored with, as the default resolves it (ConSE and semantic, plus prototypes at 1)
    assert (
        "Each is scored by its name plus 3.0 times the square root of its number of photos times the cosine\nto their mean less 0.1"
        in card
    )
    assert "without photos" not in card  # every name has some
    # no offset, as no trained name is kept; and the temperature its scores are divided by: the names' weight, 3,
    # plus half of 3 times sqrt(4 photos)
    assert (
        "(and, for those given photos, by the photos too). The scores are then divided by 6.0\n(`zero_shot_config.score_temperature`: the names' scores' weight plus half"
        in card
    )

    classify = pipeline("image-classification", model=str(output))
    top = classify(str(new_photos / "truck" / "IMG_0000.jpg"), top_k=3)
    assert {row["label"] for row in top} == set(NEW)
    assert cli(["predict", "--model", str(output), str(new_photos / "boat")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(rows) == 4 and all(row["predictions"][0]["label"] in NEW for row in rows)
    assert cli(["eval", "--model", str(output), "--data", str(new_photos)]) == 0
    in_order = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert in_order["num_examples"] == 12
    # The same photos in a labelled file whose classes come in another order: still scored with the saved photos.
    names = sorted(NEW, reverse=True)
    files = [(path, names.index(name)) for name in NEW for path in sorted((new_photos / name).iterdir())]
    reordered = datasets.Dataset.from_dict(
        {"image": [str(path) for path, _ in files], "label": [label for _, label in files]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)}),
    )
    reordered.to_parquet(tmp_path / "reordered.parquet")
    assert cli(["eval", "--model", str(output), "--data", str(tmp_path / "reordered.parquet")]) == 0
    other_order = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert other_order["num_examples"] == 12 and other_order["accuracy"] == in_order["accuracy"]
    assert other_order["loss"] == pytest.approx(in_order["loss"], rel=1e-4, abs=1e-4)
    assert other_order["scored"] == "all of reordered.parquet, among the model's 3 classes (the data holds all 3 of them)"
    # Names that are not all the model's: scored among the data's names, and the result says how each was scored.
    renamed = reordered.cast_column("label", datasets.ClassLabel(names=["zebra", "lion", "boat"]))
    renamed.to_parquet(tmp_path / "renamed.parquet")
    assert cli(["eval", "--model", str(output), "--data", str(tmp_path / "renamed.parquet")]) == 0
    among_data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert among_data["num_examples"] == 12 and among_data["scored"] == (
        "all of renamed.parquet, among its 3 class names (2 with the model's photos, 1 by their names alone)"
    )
    # a name the model holds photos of, written otherwise: scored by its name alone, and said as a note, not a warning
    recased = reordered.cast_column("label", datasets.ClassLabel(names=["Truck", "lion", "boat"]))
    recased.to_parquet(tmp_path / "recased.parquet")
    assert cli(["eval", "--model", str(output), "--data", str(tmp_path / "recased.parquet")]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out.strip().splitlines()[-1])["scored"].endswith("(2 with the model's photos, 1 by their names alone)")
    assert "visnet: note: {'Truck': 'truck'} differ from names this model holds photos of only in case" in said.err
    assert "UserWarning" not in said.err
    from visnet_hf.predict import Predictor

    assert Predictor(str(output)).vocabulary(names).examples.counts.tolist() == [4.0, 4.0, 4.0]  # the page's names too

    kept = tmp_path / "kept"
    assert cli(["extend", "--model", saved_vsenet, "--data", str(new_photos), "--output-dir", str(kept), "--keep-trained"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["classes"] == 7 and result["kept_trained"] == 4
    assert json.loads((kept / "config.json").read_text())["class_names"] == [*CLASS_NAMES, *sorted(NEW)]
    assert any(f"visnet calibrate --model {kept} --data IMAGES_OF_BOTH" in note for note in result["notes"])
    # the offset beside names with photos, fitted on images of trained and new classes; the zero-shot one stays
    both = tmp_path / "both"
    shutil.copytree(new_photos, both)
    for number, (image, label) in enumerate(list(zip(*datasets.Dataset.from_parquet(tiny_parquet)[80:96].values()))):
        (both / CLASS_NAMES[label]).mkdir(exist_ok=True)
        image.convert("RGB").save(both / CLASS_NAMES[label] / f"{number}.jpg")
    assert cli(["calibrate", "--model", str(kept), "--data", str(both)]) == 0
    fitted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fitted["setting"] == "example_calibration" and fitted["images"] == 28
    # the same images labelled by number, without names: the model's classes, as visnet eval reads them
    kept_names = [*CLASS_NAMES, *sorted(NEW)]
    rows = [f"{path},{kept_names.index(path.parent.name)}\n" for path in sorted(both.glob("*/*"))]
    (tmp_path / "numbered.csv").write_text("image,label\n" + "".join(rows))
    assert cli(["calibrate", "--model", str(kept), "--data", str(tmp_path / "numbered.csv")]) == 0
    numbered = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert numbered["images"] == 28 and numbered["calibration"] == pytest.approx(fitted["calibration"], rel=1e-5, abs=1e-5)
    settings = json.loads((kept / "config.json").read_text())["zero_shot_config"]
    assert settings["example_calibration"] == fitted["calibration"] and settings["calibration"] == 0.0
    # eval's --calibration is the offset of that evaluation, beside names with photos too
    assert cli(["eval", "--model", str(kept), "--data", str(both), "--calibration", "1e6"]) == 0
    lowered = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["generalised_zero_shot"]
    assert lowered["seen_accuracy"] == 0.0 and lowered["seen_images"] == 16 and lowered["unseen_images"] == 12
    shutil.copytree(new_photos / "lion", both / "zebra")  # a class the model does not know: among the data's names
    assert cli(["eval", "--model", str(kept), "--data", str(both)]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["scored"]
    assert scored.endswith("among its 8 class names (3 with the model's photos, 4 as trained classes, 1 by their names alone)")
    card = (kept / "README.md").read_text()
    assert f"`zero_shot_config.example_calibration` = {fitted['calibration']} is" in card
    assert f"beside new names given with photos, {fitted['calibration']}" in card
    assert cli(["calibrate", "--model", str(kept), "--offset", "7"]) == 0  # given: for the model's own classes too
    settings = json.loads((kept / "config.json").read_text())["zero_shot_config"]
    assert (settings["example_calibration"], settings["calibration"]) == (7.0, 0.0)
    # a folder named as a trained class: said, listed apart from the new classes, and merged with the trained class
    trained_name = tmp_path / "with_a_trained_name"
    shutil.copytree(new_photos, trained_name)
    (trained_name / "lion").rename(trained_name / CLASS_NAMES[0])
    merged = tmp_path / "merged"
    assert (
        cli(["extend", "--model", saved_vsenet, "--data", str(trained_name), "--output-dir", str(merged), "--keep-trained"]) == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["already_trained"] == [CLASS_NAMES[0]] and result["new_classes"] == ["boat", "truck"]
    assert result["classes"] == 6 and any(f"['{CLASS_NAMES[0]}'] are already trained classes" in n for n in result["notes"])

    # A second batch: the classes added before stay, with their photos; a name given again gets its new photos too.
    batch = tmp_path / "second_batch"
    for name, source in (("lion", "truck"), ("zebra", "boat")):
        (batch / name).mkdir(parents=True)
        for photo in sorted((new_photos / source).iterdir())[:2]:
            (batch / name / photo.name).write_bytes(photo.read_bytes())
    again = tmp_path / "again"
    assert cli(["extend", "--model", str(kept), "--data", str(batch), "--output-dir", str(again), "--keep-trained"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["photos"] == {"lion": 6, "zebra": 2}
    assert any("Kept the 3 classes added before" in note and "['lion'] get the new photos" in note for note in result["notes"])
    config = json.loads((again / "config.json").read_text())
    assert config["class_names"] == [*CLASS_NAMES, *sorted(NEW), "zebra"]
    assert config["class_example_counts"] == [0, 0, 0, 0, 4, 6, 4, 2]


def test_extend_mistakes(saved_vsenet, new_photos, tmp_path, capsys):
    broken = tmp_path / "broken"
    (broken / "lion").mkdir(parents=True)
    (broken / "zebra").mkdir()
    (broken / "lion" / "IMG_0001.jpg").write_bytes((new_photos / "lion" / "IMG_0000.jpg").read_bytes())
    (broken / "zebra" / "._IMG_0001.jpg").write_bytes(b"macOS's copy of a photo's metadata: no photo")
    err = error_of(cli, ["extend", "--model", saved_vsenet, "--data", str(broken), "--output-dir", str(tmp_path / "o")], capsys)
    assert f"{broken / 'zebra'}: no images in this class folder; add a few photos of the class, or remove the folder" in err
    (broken / "zebra" / "IMG_0002.jpg").write_bytes(b"not a jpeg")
    err = error_of(cli, ["extend", "--model", saved_vsenet, "--data", str(broken), "--output-dir", str(tmp_path / "o")], capsys)
    assert "an example of 'zebra'" in err and "IMG_0002.jpg" in err
    assert "cannot be decoded: it is in no image format PIL reads. Replace it with a readable photo or remove it" in err
    assert "BytesIO" not in err
    assert not (tmp_path / "o").exists()  # nothing written
    err = error_of(cli, ["extend", "--model", saved_vsenet, "--data", str(new_photos), "--output-dir", saved_vsenet], capsys)
    assert "is the model's own folder: the extended model would overwrite it" in err  # not SameFileError's traceback
    numbered = tmp_path / "numbered.csv"  # labels without names: a new class is learned from its name too
    numbered.write_text(
        "image,label\n" + "".join(f"{path},{i % 2}\n" for i, path in enumerate(sorted((new_photos / "lion").iterdir())))
    )
    err = error_of(cli, ["extend", "--model", saved_vsenet, "--data", str(numbered), "--output-dir", str(tmp_path / "o")], capsys)
    assert "numbered.csv labels its photos with numbers and no names for them" in err and "--label-column" in err
    assert "data.class_names" not in err  # extend takes no config
    alone = tmp_path / "alone"  # one class, without --keep-trained: it would be every image's answer
    shutil.copytree(new_photos / "lion", alone / "lion")
    err = error_of(cli, ["extend", "--model", saved_vsenet, "--data", str(alone), "--output-dir", str(tmp_path / "o")], capsys)
    assert "holds one class ('lion'): a model of one class gives it to every image. Add --keep-trained" in err
    assert not (tmp_path / "o").exists()

    frn = tmp_path / "frn"
    visnet_hf.create_model("frn_resnet18", num_labels=2, image_size=32).save_pretrained(frn)
    err = error_of(cli, ["extend", "--model", str(frn), "--data", str(new_photos), "--output-dir", str(tmp_path / "o")], capsys)
    assert "holds a FRNForImageClassification; new classes from their names and photos need a VSENet" in err


def test_photos_for_a_model_without_statistics_are_used_and_it_is_said(tiny_text_encoder, new_photos):
    model = visnet_hf.create_model("vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32)
    photos = {name: sorted((new_photos / name).iterdir()) for name in NEW}
    with pytest.warns(UserWarning, match=r"holds no feature statistics.*model\.fit_prototypes"):
        model.eval().set_classes(NEW, examples=photos)
    assert model.config.class_example_counts == [4, 4, 4]


def test_predict_reads_a_phone_sized_photo_as_the_pipeline_does(saved_vsenet, new_photos, tmp_path):
    """visnet predict (and the page) hand the processor a photo many times the model's size already presized (in
    Pillow's two steps); the pipeline resizes it in one: the same labels, scores within a hundredth."""
    from PIL import Image

    from visnet_hf.predict import Predictor

    path = tmp_path / "phone.jpg"
    Image.open(next((new_photos / "lion").iterdir())).convert("RGB").resize((1600, 1200), Image.Resampling.BICUBIC).save(path)
    predictor = Predictor(saved_vsenet)
    seen = []

    class Watched(type(predictor.processor)):
        def __call__(self, images, **kwargs):
            seen.append(images.size)
            return super().__call__(images, **kwargs)

    predictor.processor = Watched(**predictor.processor.to_dict())
    ours = predictor.predict(path, top_k=4)
    theirs = pipeline("image-classification", model=saved_vsenet)(str(path), top_k=4)
    assert [min(size) for size in seen] == [predictor.processor.size["shortest_edge"]]  # not 1200
    assert [p["label"] for p in ours] == [p["label"] for p in theirs]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(ours, theirs, strict=True)) < 0.01


def test_the_installed_command_in_a_fresh_process(saved_vsenet, new_photos, tmp_path):
    """As a user runs it: the `visnet` script loads the model with nothing imported before (the Auto classes are
    registered by the loading itself)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    visnet = shutil.which("visnet") or str(Path(sys.executable).parent / "visnet")
    output = tmp_path / "extended"
    done = subprocess.run(
        [visnet, "extend", "--model", saved_vsenet, "--data", str(new_photos), "--output-dir", str(output)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["photos"] == {"lion": 4, "truck": 4, "boat": 4}


def test_extend_from_a_table_of_photo_paths_and_names(saved_vsenet, new_photos, tmp_path, capsys):
    """A labelled .csv file (paths relative to it, class names as labels), or a folder of photos with a metadata.csv,
    extends a model as the class folders do, and a photo it names that is not there is one error, with its path."""
    shutil.copytree(new_photos, tmp_path / "photos")
    rows = [(f"photos/{name}/{photo.name}", name) for name in NEW for photo in sorted((new_photos / name).iterdir())]
    table = tmp_path / "labels.csv"
    table.write_text("image,label\n" + "".join(f"{path},{name}\n" for path, name in rows))
    output = tmp_path / "from_table"
    capsys.readouterr()
    assert cli(["extend", "--model", saved_vsenet, "--data", str(table), "--output-dir", str(output)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["photos"] == {"boat": 4, "lion": 4, "truck": 4}
    assert json.loads((output / "config.json").read_text())["class_example_counts"] == [4, 4, 4]
    # a folder of photos whose metadata.csv names their classes, as datasets' ImageFolder reads one
    (tmp_path / "flat").mkdir()
    for number, (path, _) in enumerate(rows):
        shutil.copy(tmp_path / path, tmp_path / "flat" / f"{number}.jpg")
    (tmp_path / "flat" / "metadata.csv").write_text(
        "file_name,label\n" + "".join(f"{i}.jpg,{n}\n" for i, (_, n) in enumerate(rows))
    )
    assert cli(["extend", "--model", saved_vsenet, "--data", str(tmp_path / "flat"), "--output-dir", str(output)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["photos"] == {"boat": 4, "lion": 4, "truck": 4}
    table.write_text(table.read_text() + "photos/lion/IMG_0009.jpg,lion\n")
    err = error_of(cli, ["extend", "--model", saved_vsenet, "--data", str(table), "--output-dir", str(tmp_path / "o")], capsys)
    assert (
        "an example of 'lion'" in err
        and "IMG_0009.jpg) is not there: no such file. Fix its path or remove it, then run again." in err
    )


def test_a_file_filtered_from_a_larger_one_extends_with_the_classes_it_has_photos_of(saved_vsenet, new_photos, tmp_path, capsys):
    """``Dataset.filter`` keeps every name of the label's ClassLabel: a name no photo carries is no new class (as a
    class folder without images is refused), and the result says which names were left out."""
    rows = [(str(photo), NEW.index(name)) for name in NEW for photo in sorted((new_photos / name).iterdir())]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[*NEW, "zebra"])})
    everything = datasets.Dataset.from_dict({"image": [r[0] for r in rows], "label": [r[1] for r in rows]}, features=features)
    everything.filter(lambda label: label != NEW.index("truck"), input_columns="label").to_parquet(tmp_path / "some.parquet")
    capsys.readouterr()
    output = tmp_path / "extended"
    assert cli(["extend", "--model", saved_vsenet, "--data", str(tmp_path / "some.parquet"), "--output-dir", str(output)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["new_classes"] == ["lion", "boat"] and result["photos"] == {"lion": 4, "boat": 4}
    assert any("no image carries 2 of them ('truck', 'zebra'), so visnet extend learns the other 2" in n for n in result["notes"])
    assert json.loads((output / "config.json").read_text())["class_names"] == ["lion", "boat"]


def test_class_folders_named_by_wordnet_id_are_read_as_their_names(saved_vsenet, new_photos, tmp_path, capsys):
    """ImageNet's layout (``n02129165/``, ...): the text encoder reads each folder's WordNet name ("lion"), so the
    model learns the classes exactly as from folders named in words; the labels stay the folders' names."""
    wnids = {"lion": "n02129165", "truck": "n04490091", "boat": "n02858304"}
    for name, wnid in wnids.items():
        shutil.copytree(new_photos / name, tmp_path / "by_id" / wnid)
    outputs = {}
    for kind, data in (("names", new_photos), ("ids", tmp_path / "by_id")):
        outputs[kind] = tmp_path / kind
        assert cli(["extend", "--model", saved_vsenet, "--data", str(data), "--output-dir", str(outputs[kind])]) == 0
    by_name, by_id = (visnet_hf.VSENetForImageClassification.from_pretrained(outputs[kind]) for kind in ("names", "ids"))
    assert by_id.config.class_names == sorted(wnids.values())
    order = [by_name.config.class_names.index(name) for name in ("lion", "boat", "truck")]  # the ids' sorted order
    torch.testing.assert_close(by_id.class_embeddings, by_name.class_embeddings[order])
    torch.testing.assert_close(by_id.class_example_sums, by_name.class_example_sums[order])
    assert [record.lemma for record in visnet_hf.wordnet.describe(by_id)] == ["lion", "boat", "truck"]


def test_extend_says_the_sense_each_new_name_was_given_where_the_model_reads_senses(
    tiny_text_encoder, saved_vsenet, new_photos, tmp_path, capsys
):
    """With WordNet descriptions a guessed sense describes the class: extend lists the senses, as training does, and
    says how to give another; a model that reads no sense (the fixture's: no descriptions, hierarchy or glosses) is
    told nothing about them."""
    describing = tmp_path / "describing"
    model = visnet_hf.create_model(
        "vsenet_resnet18", class_names=CLASS_NAMES, text_encoder=tiny_text_encoder, image_size=32, describe_classes="wordnet"
    )
    model.save_pretrained(describing)
    wnids = {"lion": "n02129165", "truck": "n04490091", "boat": "n02858304"}
    for name, wnid in wnids.items():
        shutil.copytree(new_photos / name, tmp_path / "by_id" / f"{wnid}-{name}")
    said = {}
    for kind, model_dir, data in (
        ("names", describing, new_photos),
        ("ids", describing, tmp_path / "by_id"),
        ("no senses read", saved_vsenet, new_photos),
    ):
        capsys.readouterr()
        assert cli(["extend", "--model", str(model_dir), "--data", str(data), "--output-dir", str(tmp_path / kind)]) == 0
        said[kind] = capsys.readouterr().err
    assert "visnet: note: WordNet senses of 3 new classes: 0 given by the data, 3 guessed from the name" in said["names"]
    assert "'lion' → lion (n02129165, guessed): a type of big cat" in said["names"]
    assert "name the class folder by its WordNet id and name (n02950826-cannon)" in said["names"]
    assert "WordNet senses of 3 new classes: 3 given by the data, 0 guessed" in said["ids"] and "n02950826" not in said["ids"]
    assert "WordNet senses" not in said["no senses read"]


def test_a_folder_with_split_folders_lends_its_train_photos(saved_vsenet, new_photos, tmp_path, capsys):
    """``new_photos/train/<class>/`` beside ``new_photos/val/<class>/``: the photos to learn from are the train split's
    (another with --split), and the result says which."""
    for split, count in (("train", 3), ("val", 1)):
        for name in NEW:
            (tmp_path / "split" / split / name).mkdir(parents=True)
            for photo in sorted((new_photos / name).iterdir())[:count]:
                shutil.copy(photo, tmp_path / "split" / split / name / photo.name)
    capsys.readouterr()
    assert cli(["extend", "--model", saved_vsenet, "--data", str(tmp_path / "split"), "--output-dir", str(tmp_path / "a")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["photos"] == {"boat": 3, "lion": 3, "truck": 3} and result["photos_from"].startswith("the 'train' split")
    flags = ["--split", "validation", "--output-dir", str(tmp_path / "b")]
    assert cli(["extend", "--model", saved_vsenet, "--data", str(tmp_path / "split"), *flags]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["photos"] == {"boat": 1, "lion": 1, "truck": 1}
    (tmp_path / "split" / "train" / "zebra").mkdir()  # a class folder of a split without a photo is refused too
    args = ["extend", "--model", saved_vsenet, "--data", str(tmp_path / "split"), "--output-dir", str(tmp_path / "c")]
    assert "train/zebra: no images in this class folder" in error_of(cli, args, capsys)


def test_a_class_named_in_any_script_or_linked_from_elsewhere_is_a_class(saved_vsenet, new_photos, tmp_path, capsys):
    """A class folder named "crème brûlée" or "寿司", or a link to a folder of photos elsewhere, is a class; the result
    writes the names as they are (it wrote "cr\\u00e8me", and skipped the linked folder)."""
    (tmp_path / "new").mkdir()
    shutil.copytree(new_photos / "lion", tmp_path / "new" / "crème brûlée")
    (tmp_path / "new" / "寿司").symlink_to(new_photos / "boat", target_is_directory=True)
    capsys.readouterr()
    assert cli(["extend", "--model", saved_vsenet, "--data", str(tmp_path / "new"), "--output-dir", str(tmp_path / "o")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert '"new_classes": ["crème brûlée", "寿司"]' in line
    assert json.loads(line)["photos"] == {"crème brûlée": 4, "寿司": 4}


def test_a_model_whose_borrowed_classifiers_read_senses_says_the_senses_too(saved_vsenet):
    """The borrowed classifiers mix by WordNet too (``backbone_classifier_hierarchy``): a model that reads no sense
    otherwise is told them where it borrows by them, and not where the hierarchy is 0 or nothing is borrowed."""
    from types import SimpleNamespace

    from visnet_hf.extend import _senses_note

    model = visnet_hf.VSENetForImageClassification.from_pretrained(saved_vsenet)
    photos = SimpleNamespace(class_names=["lion", "truck"], synonyms=None, synsets=None)
    settings = model.config.zero_shot_config
    said = {}
    for weight, hierarchy in ((0.0, 10.0), (2.0, 0.0), (2.0, 10.0)):
        model.config.zero_shot_config = settings.updated(
            backbone_classifier_weight=weight, backbone_classifier_hierarchy=hierarchy
        )
        said[weight, hierarchy] = _senses_note(model, photos, ["lion", "truck"])
    assert said[0.0, 10.0] is None and said[2.0, 0.0] is None
    assert said[2.0, 10.0].startswith("WordNet senses of 2 new classes: 0 given by the data, 2 guessed from the name")


def test_the_photos_weight_is_the_models_unless_given_and_is_saved_and_reported(saved_vsenet, new_photos, tmp_path, capsys):
    """``--example-weight`` sets the weight the extended model saves and scores its photos with (0: its names alone);
    the result reports the weight either way; a negative one is refused before anything is written."""
    from PIL import Image

    from visnet_hf.models import VSENetForImageClassification

    model = VSENetForImageClassification.from_pretrained(saved_vsenet).eval()
    photos = [path for name in sorted(NEW) for path in sorted((new_photos / name).iterdir())]
    pixels = model.image_processor()([Image.open(path) for path in photos], return_tensors="pt")["pixel_values"]

    def extended(output, *flags: str) -> tuple[dict, torch.Tensor]:
        assert cli(["extend", "--model", saved_vsenet, "--data", str(new_photos), "--output-dir", str(output), *flags]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        with torch.no_grad():
            return result, VSENetForImageClassification.from_pretrained(output).eval()(pixel_values=pixels).logits

    model.set_classes(sorted(NEW))
    with torch.no_grad():
        names_alone = model(pixel_values=pixels).logits
    result, with_photos = extended(tmp_path / "default")
    assert result["photo_weight"] == 3.0  # the fixture's names' weight: semantic, ConSE and prototypes at 1
    assert result["photo_weight_from"] == "the names' own weight (the photos chose no more)"
    assert not torch.allclose(with_photos, names_alone, atol=1e-3)
    result, without = extended(tmp_path / "names_alone", "--example-weight", "0")
    assert result["photo_weight"] == 0.0 and result["photo_weight_from"] == "--example-weight"
    torch.testing.assert_close(without, names_alone, rtol=1e-4, atol=1e-4)
    result, _ = extended(tmp_path / "lighter", "--example-weight", "1.5")
    saved = json.loads((tmp_path / "lighter" / "config.json").read_text())["zero_shot_config"]
    assert result["photo_weight"] == 1.5 and saved["example_weight"] == 1.5
    # beside the trained classes, an offset fitted with the photos weighed otherwise is said to need fitting again
    calibrated = VSENetForImageClassification.from_pretrained(saved_vsenet)
    calibrated.config.zero_shot_config.example_calibration = 7.0
    calibrated.save_pretrained(tmp_path / "calibrated")
    refit = "(zero_shot_config.example_calibration, 7) was fitted with the photos weighed 3, not 1.5: fit it again"
    for flags, said in (([], False), (["--example-weight", "3"], False), (["--example-weight", "1.5"], True)):
        output = tmp_path / f"kept{len(flags)}{said}"
        command = ["extend", "--model", str(tmp_path / "calibrated"), "--data", str(new_photos), "--output-dir", str(output)]
        assert cli([*command, "--keep-trained", *flags]) == 0
        notes = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["notes"]
        assert any(refit in note and f"visnet calibrate --model {output} --data" in note for note in notes) == said
    output = tmp_path / "negative"
    command = ["extend", "--model", saved_vsenet, "--data", str(new_photos), "--output-dir", str(output)]
    error = error_of(cli, [*command, "--example-weight", "-1"], capsys)
    assert "The photos' weight (--example-weight) must be >= 0 (0: the names alone); got -1.0." in error
    assert not output.exists()
