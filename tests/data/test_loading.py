"""Data sources through `datasets`, column mapping, class names, descriptions and resumable augmentation."""

from __future__ import annotations

import gzip
import importlib.util
import re
import struct
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from tests.helpers import WNIDS, generated_images, with_column
from visnet_hf.data import AugmentConfig, DataConfig, DataError, TransformedDataset, build_transforms, load_eval_data, load_splits
from visnet_hf.training import load_config
from visnet_hf.training import main as train_main

ROOT = Path(__file__).resolve().parents[2]

CIFAR100_FINE = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
]
CIFAR100_COARSE = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}


def _foolbox_files() -> list[str]:
    """The paths of foolbox 3.3.4's 20 CIFAR-100 test images (``cifar100_<index>_<fine label>.png``)."""
    spec = importlib.util.find_spec("foolbox")  # finds the files without importing foolbox
    if spec is None:
        pytest.skip("pip install foolbox==3.3.4 for its 20 real CIFAR-100 images")
    files = sorted(str(f) for f in (Path(spec.submodule_search_locations[0]) / "data").glob("cifar100_*_*.png"))
    assert len(files) == 20
    return files


@pytest.fixture(scope="module")
def cifar100_parquet(tmp_path_factory) -> str:
    """The 20 real CIFAR-100 test images of foolbox 3.3.4, with uoft-cs/cifar100's exact features."""
    import datasets
    from PIL import Image

    files = [Path(f) for f in _foolbox_files()]
    coarse_names = sorted(CIFAR100_COARSE)
    coarse_of = {fine: coarse_names.index(c) for c, members in CIFAR100_COARSE.items() for fine in members.split()}
    fine = [int(re.match(r"cifar100_\d+_(\d+)\.png", f.name).group(1)) for f in files]
    features = datasets.Features(
        {
            "img": datasets.Image(),
            "fine_label": datasets.ClassLabel(names=CIFAR100_FINE),
            "coarse_label": datasets.ClassLabel(names=coarse_names),
        }
    )
    dataset = datasets.Dataset.from_dict(
        {
            "img": [Image.open(f).convert("RGB") for f in files],
            "fine_label": fine,
            "coarse_label": [coarse_of[CIFAR100_FINE[label]] for label in fine],
        },
        features=features,
    )
    path = tmp_path_factory.mktemp("cifar100") / "test.parquet"
    dataset.to_parquet(str(path))
    return str(path)


@pytest.mark.slow
def test_cifar100_column_mapping_with_the_seed_config(cifar100_parquet, tiny_text_encoder, tmp_path, capsys):
    """The shipped CIFAR-100 config, pointed at a local copy with the Hub dataset's features, trains: on the classes
    the 20 images show, the other names of the label left out and said."""
    overrides = [
        "data.source=parquet",
        f"data.path={cifar100_parquet}",
        f"data.eval_path={cifar100_parquet}",
        f"model.text_encoder={tiny_text_encoder}",
        "batch_size=8",
        "optim.warmup_steps=0",
        "stages=[{name: align, epochs: 1, objective: align}, {name: finetune, epochs: 1, objective: finetune}]",
        f"output_dir={tmp_path / 'run'}",
        "trackers=[]",
    ]
    config = load_config(ROOT / "configs" / "vsenet_resnet18_cifar100.yaml", overrides)
    splits = load_splits(config.data)
    shown = sorted({int(re.search(r"cifar100_\d+_(\d+)\.png", f).group(1)) for f in _foolbox_files()})
    assert splits.class_names == [CIFAR100_FINE[i] for i in shown] and len(splits.unused_names) == 100 - len(shown)
    assert splits.train.column_names == ["image", "label", "source_index"]
    mountain = splits.train[0]["label"]
    assert splits.class_names[mountain] == "mountain"  # foolbox's cifar100_00_49.png
    capsys.readouterr()
    results = train_main(["--config", str(ROOT / "configs" / "vsenet_resnet18_cifar100.yaml"), *overrides])
    assert results["model"].config.id2label[mountain] == "mountain"
    assert f"no image carries {100 - len(shown)} of them ({splits.unused_names[0]!r}, " in capsys.readouterr().out
    assert [h["stage"] for h in results["state"]["history"]] == ["align", "finetune"]
    assert "train_align" in results["state"]["history"][0] and "train_semantic_ce" in results["state"]["history"][1]


def test_imagefolder_source(tmp_path):
    for index, image in enumerate(generated_images(12)):
        folder = tmp_path / "images" / ("red" if index % 2 else "blue")
        folder.mkdir(parents=True, exist_ok=True)
        if index < 2:  # JPEG as some browsers name it is an image too
            image.convert("RGB").save(folder / f"{index}.jfif", "JPEG")
        else:
            image.save(folder / f"{index}.png")
    splits = load_splits(DataConfig(source="imagefolder", path=str(tmp_path / "images"), val_fraction=0.5))
    assert splits.class_names == ["blue", "red"]
    assert len(splits.train) + len(splits.eval) == 12
    assert sorted(set(splits.eval["label"])) == [0, 1]  # stratified


def test_a_linked_class_folder_is_read_and_a_link_back_up_is_not_followed(tmp_path):
    """Class folders gathered by links (``ln -s /data/cats photos/cat``) are read, as torchvision's ImageFolder reads
    them; they were skipped, and their class silently missing. A link to a folder above is not read without end."""
    elsewhere = tmp_path / "elsewhere" / "cats"
    elsewhere.mkdir(parents=True)
    (tmp_path / "photos" / "dog").mkdir(parents=True)
    for index, image in enumerate(generated_images(4)):
        image.save((elsewhere if index % 2 else tmp_path / "photos" / "dog") / f"{index}.png")
    (tmp_path / "photos" / "cat").symlink_to(elsewhere, target_is_directory=True)
    (tmp_path / "photos" / "dog" / "up").symlink_to(tmp_path / "photos", target_is_directory=True)
    loaded = load_eval_data(DataConfig(source="imagefolder", path=str(tmp_path / "photos")))
    assert loaded.class_names == ["cat", "dog"] and len(loaded.dataset) == 4
    assert sorted(loaded.dataset["label"]) == [0, 0, 1, 1]


def test_a_class_folder_holds_its_images_at_any_depth(tmp_path):
    """The class is the folder under the root (or under a split folder), the images anywhere beneath it: Tiny-ImageNet's
    ``<wnid>/images/*.JPEG`` beside a boxes file, images at two depths in one class; hidden files (macOS's ``._``
    copies) are not images. Where datasets' imagefolder reads a folder, its rows come in the same order."""
    import datasets

    images = iter(generated_images(12))
    layout = ["n02129165/images/a.png", "n02129165/b.png", "n02129165/close ups/c.png", "n04490091/images/d.PNG"]
    layout += ["train/lion/images/e.png", "train/lion/f.png", "train/truck/g.png", "val/lion/h.png", "val/truck/x/i.png"]
    for relative in layout:
        root = tmp_path / ("splits" if relative.startswith(("train", "val")) else "ids")
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        next(images).save(root / relative, format="PNG")
    (tmp_path / "ids" / "n02129165" / "._b.png").write_bytes(b"AppleDouble, not a PNG")
    (tmp_path / "ids" / "n04490091" / "n04490091_boxes.txt").write_text("d.PNG 0 0 10 10")

    whole = load_eval_data(DataConfig(path=str(tmp_path / "ids")))
    assert whole.class_names == ["n02129165", "n04490091"] and whole.dataset["label"] == [0, 0, 0, 1]
    splits = load_splits(DataConfig(path=str(tmp_path / "splits")))
    assert splits.class_names == ["lion", "truck"]
    assert (splits.train["label"], splits.eval["label"]) == ([0, 0, 1], [0, 1])  # the val folder is the eval split

    flat = tmp_path / "flat"
    for index, image in enumerate(generated_images(9)):
        folder = flat / ("cat dog", "cat", "Zebra")[index % 3]  # " " sorts before "/", "Z" before "c"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"IMG_{index}.png")
    theirs = datasets.load_dataset("imagefolder", data_dir=str(flat))["train"]
    ours = load_eval_data(DataConfig(path=str(flat))).dataset
    assert ours["label"] == theirs["label"] and ours.features["label"].names == theirs.features["label"].names
    as_paths = datasets.Image(decode=False)
    assert [i["path"] for i in ours.cast_column("image", as_paths)["image"]] == [
        i["path"] for i in theirs.cast_column("image", as_paths)["image"]
    ]


def test_a_class_named_as_a_split_is_a_class(tmp_path):
    """CIFAR-100 has a class ``train``: beside other class folders, or holding its photos itself, a folder named as a
    split is a class; only a folder whose folders are all split folders of class folders is split."""
    classes = _class_folder(tmp_path / "vehicles", ["bus", "test", "train"])
    loaded = load_eval_data(DataConfig(path=str(classes)))
    assert loaded.class_names == ["bus", "test", "train"] and len(loaded.dataset) == 6
    only = _class_folder(tmp_path / "one", ["train"])  # a single class, its photos in it
    assert load_eval_data(DataConfig(path=str(only))).class_names == ["train"]
    _class_folder(tmp_path / "split" / "train", ["bus", "car"])
    _class_folder(tmp_path / "split" / "val", ["bus", "car"])
    splits = load_splits(DataConfig(path=str(tmp_path / "split")))
    assert splits.class_names == ["bus", "car"] and (len(splits.train), len(splits.eval)) == (4, 4)
    _class_folder(tmp_path / "kaggle" / "train", ["bus", "car"])  # beside it, test images without classes
    _class_folder(tmp_path / "kaggle", ["test"])
    with pytest.raises(DataError, match=r"kaggle/test holds images beside its class folders"):
        load_eval_data(DataConfig(path=str(tmp_path / "kaggle")))  # not two classes, train and test


def _class_folder(root: Path, names: list[str], per_class: int = 2) -> Path:
    images = iter(generated_images(per_class * len(names)))
    for name in names:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            next(images).save(root / name / f"{index}.png")
    return root


def test_an_eval_folder_or_file_is_matched_to_the_training_classes_by_name(tmp_path):
    """``data.eval_path`` works for an image folder (it was ignored), and an eval split whose classes are fewer or
    in another order is labelled by class name, not by its own class numbers."""
    import datasets

    train = _class_folder(tmp_path / "train", ["cat", "dog", "zebra"])
    fewer = _class_folder(tmp_path / "fewer", ["cat", "zebra"])
    splits = load_splits(DataConfig(path=str(train), eval_path=str(fewer)))
    assert splits.class_names == ["cat", "dog", "zebra"] and len(splits.train) == 6
    assert [splits.eval.features["label"].int2str(label) for label in splits.eval["label"]] == ["cat"] * 2 + ["zebra"] * 2
    assert splits.eval_description == f"all of the image folder {fewer}"

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["zebra", "cat"])})
    rows = {"image": [str(fewer / "cat" / "0.png"), str(fewer / "zebra" / "0.png")], "label": [1, 0]}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(tmp_path / "reordered.parquet")
    splits = load_splits(DataConfig(path=str(train), eval_path=str(tmp_path / "reordered.parquet")))
    assert splits.eval["label"] == [0, 2]  # cat, zebra: the training folder's numbers

    other = _class_folder(tmp_path / "other", ["cat", "lorry"])
    with pytest.raises(DataError, match=r"classes the training data has not: \['lorry'\]"):
        load_splits(DataConfig(path=str(train), eval_path=str(other)))
    with pytest.raises(ValueError, match="eval_split"):
        DataConfig(source="hub", path="owner/name", eval_path=str(fewer))


def test_a_folder_save_to_disk_wrote_is_a_source(tmp_path):
    """A ``Dataset`` saved with ``save_to_disk`` is read as its one split; a ``DatasetDict``, with its splits."""
    import datasets

    from visnet_hf.data.config import detect_source

    images = [str(path) for path in sorted(_class_folder(tmp_path / "photos", ["cat", "dog"], 4).rglob("*.png"))]
    table = datasets.Dataset.from_dict({"img": images, "animal": ["cat"] * 4 + ["dog"] * 4}).cast_column("img", datasets.Image())
    table.save_to_disk(tmp_path / "one")
    datasets.DatasetDict(train=table.select(range(1, 7)), test=table.select([0, 7])).save_to_disk(tmp_path / "two")
    assert detect_source(str(tmp_path / "one")) == detect_source(str(tmp_path / "two")) == "saved"

    whole = load_eval_data(DataConfig(path=str(tmp_path / "one"), image_column="img", label_column="animal"))
    assert whole.class_names == ["cat", "dog"] and whole.dataset["label"] == [0] * 4 + [1] * 4
    assert whole.description == f"all of the saved dataset {tmp_path / 'one'}"
    splits = load_splits(DataConfig(path=str(tmp_path / "two"), eval_split="test", image_column="img", label_column="animal"))
    assert (len(splits.train), splits.eval["label"]) == (6, [0, 1])


def test_hub_source_goes_through_load_dataset(tiny_parquet, tmp_path):
    """A Hub id and a local dataset folder take the same `datasets.load_dataset(path, subset)` call."""
    import datasets

    full = datasets.Dataset.from_parquet(tiny_parquet)
    (tmp_path / "repo" / "data").mkdir(parents=True)
    full.select(range(64)).to_parquet(str(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet"))
    full.select(range(64, 96)).to_parquet(str(tmp_path / "repo" / "data" / "test-00000-of-00001.parquet"))
    splits = load_splits(DataConfig(source="hub", path=str(tmp_path / "repo"), eval_split="test"))
    assert (len(splits.train), len(splits.eval)) == (64, 32)
    with pytest.raises(DataError, match=r"Split 'validation' not found in the Hub dataset .*repo; it has \['test', 'train'\]"):
        load_splits(DataConfig(source="hub", path=str(tmp_path / "repo"), eval_split="validation"))


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_debian_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 30), ("t10k", 10)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    splits = load_splits(DataConfig(source="fashion_mnist", path=str(tmp_path)))
    assert splits.class_names[0] == "T-shirt/top" and splits.class_names[9] == "Ankle boot"
    assert (len(splits.train), len(splits.eval)) == (30, 10)
    assert splits.train[3]["image"].size == (28, 28) and splits.train[3]["label"] == 3


def test_columns_class_names_and_labels_are_checked(tiny_parquet, tmp_path):
    with pytest.raises(
        DataError,
        match=r"data.label_column='fine_label' is not a column of the train split; its columns are \['image', 'label'\]",
    ):
        load_splits(DataConfig(path=tiny_parquet, label_column="fine_label"))
    import datasets

    plain = datasets.Dataset.from_dict({"image": generated_images(8), "label": [0, 1] * 4})
    plain.to_parquet(str(tmp_path / "plain.parquet"))
    with pytest.raises(DataError, match="has no class names.*data.class_names"):
        load_splits(DataConfig(path=str(tmp_path / "plain.parquet")))
    with pytest.raises(DataError, match=r"Labels \[1\] lie outside the 1 classes"):
        load_splits(DataConfig(path=str(tmp_path / "plain.parquet"), class_names=["only"]))
    assert load_splits(
        DataConfig(path=str(tmp_path / "plain.parquet"), class_names=["a", "b"], val_fraction=0.5)
    ).class_names == ["a", "b"]
    # class_names: [0, 1] in a YAML file are numbers: said, with the quoted list
    with pytest.raises(ValueError, match=r"class_names=\[0, 1\] must be a list of non-empty strings .* \['0', '1'\]"):
        DataConfig(path=str(tmp_path / "plain.parquet"), class_names=[0, 1])
    assert DataConfig(path=str(tmp_path / "plain.parquet"), class_names=("a", "b")).class_names == ["a", "b"]


def test_descriptions_file(tiny_parquet, tmp_path):
    (tmp_path / "descriptions.yaml").write_text("cat: a small domestic feline\ndog: [a loyal pet, barks]\n")
    splits = load_splits(DataConfig(path=tiny_parquet, descriptions_file=str(tmp_path / "descriptions.yaml")))
    assert splits.descriptions == [["a small domestic feline"], ["a loyal pet", "barks"], [], []]
    (tmp_path / "bad.yaml").write_text("kat: typo\n")
    with pytest.raises(DataError, match=r"descriptions for unknown classes \['kat'\]"):
        load_splits(DataConfig(path=tiny_parquet, descriptions_file=str(tmp_path / "bad.yaml")))


def test_augmentation_depends_only_on_seed_epoch_and_index(tiny_parquet):
    splits = load_splits(DataConfig(path=tiny_parquet))
    data_config = {"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear", "crop_pct": 1.0}
    train, _ = build_transforms(data_config, AugmentConfig(random_crop_padding=4, hflip=True))
    dataset = TransformedDataset(splits.train, train, seed=3)
    first = dataset[5]["pixel_values"]
    torch.manual_seed(12345)  # the global RNG does not matter
    torch.rand(100)
    assert torch.equal(dataset[5]["pixel_values"], first)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[5]["pixel_values"], first)
    state = torch.get_rng_state()
    dataset[6]
    assert torch.equal(torch.get_rng_state(), state)  # and is not consumed


def test_include_classes_filters_and_relabels_after_the_split(tiny_parquet):
    everything = load_splits(DataConfig(path=tiny_parquet, val_fraction=0.25))
    subset = load_splits(DataConfig(path=tiny_parquet, val_fraction=0.25, include_classes=["ship", "cat"]))
    assert subset.class_names == ["ship", "cat"]
    assert subset.train.features["label"].names == ["ship", "cat"]
    ship, cat = everything.class_names.index("ship"), everything.class_names.index("cat")
    expected = [{ship: 0, cat: 1}[label] for label in everything.eval["label"] if label in (ship, cat)]
    assert subset.eval["label"] == expected  # the same held-out images, relabelled
    with pytest.raises(DataError, match=r"'shp' \(Did you mean 'ship'\?\)"):
        load_splits(DataConfig(path=tiny_parquet, include_classes=["shp"]))


def test_names_of_the_label_that_no_image_carries_are_left_out_and_said(tiny_parquet, tmp_path):
    """A file filtered from a larger one keeps every name of its ClassLabel: training learns the classes it has images
    of (an eval file's images count), evaluation and extend read them, each says so; data.include_classes still rules."""
    import datasets

    from visnet_hf.data import unused_names_note

    full = datasets.Dataset.from_parquet(tiny_parquet)
    dog, car, ship = 1, 2, 3  # cat is 0
    full.filter(lambda label: label in (dog, ship), input_columns="label").to_parquet(tmp_path / "filtered.parquet")
    full.filter(lambda label: label == car, input_columns="label").to_parquet(tmp_path / "cars.parquet")
    filtered = str(tmp_path / "filtered.parquet")

    splits = load_splits(DataConfig(path=filtered, val_fraction=0.25))
    assert splits.class_names == ["dog", "ship"] and splits.unused_names == ["cat", "car"]
    for split in (splits.train, splits.eval):
        assert split.features["label"].names == ["dog", "ship"] and set(split["label"]) == {0, 1}
    assert "the other 2" in unused_names_note(splits.unused_names, 2) and "'cat', 'car'" in unused_names_note(["cat", "car"], 2)
    with_eval = load_splits(DataConfig(path=filtered, eval_path=str(tmp_path / "cars.parquet")))
    assert with_eval.class_names == ["dog", "car", "ship"] and with_eval.unused_names == ["cat"]  # car: eval images only
    chosen = load_splits(DataConfig(path=filtered, val_fraction=0.25, include_classes=["ship", "dog"]))
    assert chosen.class_names == ["ship", "dog"] and chosen.unused_names == []

    whole = load_eval_data(DataConfig(path=filtered))
    assert whole.class_names == ["dog", "ship"] and whole.unused_names == ["cat", "car"]
    assert [whole.class_names[label] for label in whole.dataset["label"]] == [
        full.features["label"].names[label] for label in full["label"] if label in (dog, ship)
    ]
    assert whole.description == "all of filtered.parquet, the 2 of its label's 4 classes it has images of"
    assert load_eval_data(DataConfig(path=tiny_parquet)).unused_names == []


def test_wordnet_ids_come_from_a_data_column(tiny_parquet, tmp_path):
    path = with_column(tiny_parquet, tmp_path / "wnid.parquet", "wnid", {**WNIDS, "car": None})
    splits = load_splits(DataConfig(path=path, class_synset_column="wnid", include_classes=["ship", "car", "cat"]))
    assert splits.synsets == ["n04194289", None, "n02124075"]  # per class, in the kept order; none given for car
    unset = load_splits(DataConfig(path=path))  # a column named wnid, of WordNet ids only, is read without being named
    assert unset.synsets == [WNIDS.get(name) if name != "car" else None for name in unset.class_names]
    renamed = with_column(tiny_parquet, tmp_path / "synset.parquet", "synset", WNIDS)
    assert load_splits(DataConfig(path=renamed)).synsets is None  # another name: only when named
    with pytest.raises(DataError, match=r"data.class_synset_column='wnids' is not a column .*Did you mean 'wnid'"):
        load_splits(DataConfig(path=path, class_synset_column="wnids"))
    wrong = with_column(tiny_parquet, tmp_path / "wrong.parquet", "wnid", {**WNIDS, "dog": "02084071"})
    with pytest.raises(DataError, match=r"holds '02084071' for class 'dog', which is not a WordNet noun id such as 'n01443537'"):
        load_splits(DataConfig(path=wrong, class_synset_column="wnid"))
    assert load_splits(DataConfig(path=wrong)).synsets is None  # not named, not all ids: not read, no error


def jpeg_bytes(image, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


@pytest.mark.slow
def test_recipe_transform_gives_one_of_torchvisions_crops_and_flips(tiny_parquet):
    """The tensor recipe against torchvision's PIL route, every crop offset and flip enumerated."""
    import datasets
    from torchvision.transforms import functional as F

    from visnet_hf.data.images import decode, decode_tensor

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    train, _ = build_transforms(
        {"input_size": [3, 32, 32], "mean": mean, "std": std, "interpolation": "bilinear", "crop_pct": 1.0},
        AugmentConfig(random_crop_padding=4, hflip=True),
    )
    value = datasets.Dataset.from_parquet(tiny_parquet).cast_column("image", datasets.Image(decode=False))[0]["image"]
    image = decode(value, "test")
    candidates = {
        (top, left, flip): F.normalize(
            F.to_tensor((F.hflip if flip else (lambda x: x))(F.crop(F.pad(image, 4), top, left, 32, 32))), mean, std
        )
        for top in range(9)
        for left in range(9)
        for flip in (False, True)
    }
    seen = []
    for seed in range(300):
        output = train(decode_tensor(value, "test"), torch.Generator().manual_seed(seed))
        matches = [key for key, expected in candidates.items() if torch.allclose(output, expected, atol=1e-5)]
        assert len(matches) >= 1, f"seed {seed}: not one of torchvision's crops"
        seen.append(matches[0])
    tops, lefts, flips = zip(*seen)
    assert set(tops) == set(range(9)) and set(lefts) == set(range(9)) and set(flips) == {False, True}
    assert 0.35 < sum(flips) / len(flips) < 0.65


def test_recipe_transform_resizes_other_sizes_like_pil():
    from PIL import Image
    from torchvision.transforms import functional as F

    from visnet_hf.data import RecipeTransform
    from visnet_hf.data.images import decode, decode_tensor

    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (12, 20, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # 48x80, blocky
    value = {"bytes": png_bytes(Image.fromarray(smooth))}
    transform = RecipeTransform((32, 32), padding=0, hflip=False, mean=[0.5] * 3, std=[0.5] * 3)
    output = transform(decode_tensor(value, "test"))
    expected = F.normalize(F.to_tensor(F.resize(decode(value, "test"), [32, 32])), [0.5] * 3, [0.5] * 3)
    assert output.shape == (3, 32, 32) and output.dtype == torch.float32
    assert (output - expected).abs().mean() < 0.02  # torch's antialiased bilinear against PIL's


def test_decode_tensor_agrees_with_pil_for_every_kind_of_file(tmp_path):
    """JPEG (colour, grey, CMYK, from a path) through the fast decoder or its fallback, PNG with alpha through PIL."""
    from PIL import Image

    from visnet_hf.data.images import BadImageError, decode, decode_tensor

    rng = np.random.default_rng(1)
    colour = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
    (tmp_path / "colour.jpg").write_bytes(jpeg_bytes(colour))
    values = [
        {"bytes": jpeg_bytes(colour)},
        {"bytes": jpeg_bytes(colour.convert("L"))},
        {"bytes": jpeg_bytes(colour.convert("CMYK"))},
        {"bytes": None, "path": str(tmp_path / "colour.jpg")},
        str(tmp_path / "colour.jpg"),
        {"bytes": png_bytes(Image.new("RGBA", (5, 3), (10, 20, 30, 0)))},
    ]
    for value in values:
        tensor = decode_tensor(value, "test")
        assert tensor.dtype == torch.uint8 and tensor.shape[0] == 3
        assert torch.equal(tensor, torch.from_numpy(np.array(decode(value, "test"))).permute(2, 0, 1))
    whole = jpeg_bytes(colour)
    for broken in (whole[: len(whole) // 2], b"\xff\xd8 not a JPEG after all \xff\xd9"):
        with pytest.raises(BadImageError, match=r"Image 3 of the train split \(cut\.jpg\) cannot be decoded"):
            decode_tensor({"bytes": broken, "path": "cut.jpg"}, "Image 3 of the train split (cut.jpg)")


def test_a_photo_read_from_a_path_leaves_no_file_open(tmp_path):
    """PIL keeps the file of a GIF or TIFF open after loading it: one handle per photo of a folder, and a
    ResourceWarning that ``visnet extend`` used to pass on to the user as a note."""
    import gc
    import warnings

    from PIL import Image

    from visnet_hf.data.images import decode

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8))
    photo.convert("P").save(tmp_path / "palette.gif")
    photo.save(tmp_path / "photo.tiff")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        for name in ("palette.gif", "photo.tiff"):
            for value in (str(tmp_path / name), tmp_path / name, {"bytes": None, "path": str(tmp_path / name)}):
                assert decode(value, name).size == (7, 9)
        gc.collect()
    assert not [warning for warning in said if issubclass(warning.category, ResourceWarning)]


def test_a_phones_heic_photos_are_images(tmp_path, monkeypatch):
    """HEIC / HEIF files (an iPhone's photos) in a class folder are read, through pillow-heif's plugin; without it,
    each is named as a HEIC photo with the package that reads it."""
    import datasets
    from PIL import Image

    from visnet_hf.data import images
    from visnet_hf.data.images import BadImageError, decode_tensor

    rng = np.random.default_rng(2)
    photo = Image.fromarray(np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), 8, 0), 8, 1))
    for relative in ("photos/cat/IMG_0001.HEIC", "photos/dog/IMG_0002.heif"):
        (tmp_path / relative).parent.mkdir(parents=True)
        photo.save(tmp_path / relative, format="HEIF", quality=95)
    whole = load_eval_data(DataConfig(path=str(tmp_path / "photos")))
    assert whole.class_names == ["cat", "dog"] and len(whole.dataset) == 2
    for value in whole.dataset.cast_column("image", datasets.Image(decode=False))["image"]:
        pixels = decode_tensor(value, "test")
        assert pixels.shape == (3, 48, 64)
        assert (pixels.float() - torch.from_numpy(np.array(photo)).permute(2, 0, 1).float()).abs().mean() < 12  # lossy

    monkeypatch.setattr(images, "_HEIF_READER", False)
    monkeypatch.setattr(Image, "ID", [name for name in Image.ID if name != "HEIF"])  # as if pillow-heif were missing
    with pytest.raises(BadImageError, match=r"\(IMG_0001.HEIC\) is a HEIC/HEIF photo .*pip install 'visnet_hf\[heic\]'"):
        decode_tensor(str(tmp_path / "photos/cat/IMG_0001.HEIC"), "Image 0 of the train split (IMG_0001.HEIC)")


def png_bytes(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_missing_local_file_falls_back_to_the_hub_copy(tiny_parquet, monkeypatch):
    """The quickstart's data section: the local parquet when present, else the same set from the Hub."""
    import datasets

    calls = []
    hub_copy = datasets.Dataset.from_parquet(tiny_parquet).rename_column("image", "img")
    real_load = datasets.load_dataset

    def load_dataset(path, *args, **kwargs):
        if path == "uoft-cs/cifar10":
            calls.append(path)
            return datasets.DatasetDict(train=hub_copy)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    config = load_config(
        ROOT / "configs" / "quickstart.yaml",
        ["data.path=/nowhere/train.parquet", "data.max_train_samples=null", "data.val_fraction=0.25"],
    ).data
    splits = load_splits(config)
    assert calls == ["uoft-cs/cifar10"]
    assert len(splits.train) + len(splits.eval) == 96 and splits.class_names == ["cat", "dog", "car", "ship"]
    assert splits.eval_description == "a stratified 25% held out of the Hub dataset uoft-cs/cifar10 (seed 0)"
    # With the local file present the Hub is never asked.
    calls.clear()
    assert len(load_splits(replace(config, path=tiny_parquet)).eval) == 24 and calls == []


def test_a_development_split_comes_out_of_the_training_part(tiny_parquet):
    """data.dev_fraction: settings are chosen on part of the training split; the test part is in neither."""
    plain = load_splits(DataConfig(path=tiny_parquet, val_fraction=0.25), seed=0)
    dev = load_splits(DataConfig(path=tiny_parquet, val_fraction=0.25, dev_fraction=0.2), seed=0)
    test_rows = set(plain.eval["source_index"])
    train_rows, dev_rows = set(dev.train["source_index"]), set(dev.eval["source_index"])
    assert train_rows | dev_rows == set(plain.train["source_index"]) and not train_rows & dev_rows
    assert not (train_rows | dev_rows) & test_rows
    assert abs(len(dev_rows) - 0.2 * len(plain.train)) < 1
    assert dev.eval_description.startswith("a development split: a stratified 20% of the training part")
    # The same development split whatever classes a fold keeps.
    fold = load_splits(DataConfig(path=tiny_parquet, val_fraction=0.25, dev_fraction=0.2, include_classes=["dog"]), seed=0)
    assert set(fold.eval["source_index"]) <= dev_rows
    with pytest.raises(ValueError, match=r"dev_fraction=1.5 must lie in \[0, 1\)"):
        DataConfig(path=tiny_parquet, dev_fraction=1.5)


def test_per_class_sample_caps_each_class_and_keeps_small_ones_whole():
    import datasets

    from visnet_hf.data import per_class_sample

    labels = [0] * 7 + [1] * 2 + [2] * 4
    dataset = datasets.Dataset.from_dict({"label": labels, "row": list(range(len(labels)))})
    sample = per_class_sample(dataset, 3, seed=0)
    assert np.bincount(sample["label"]).tolist() == [3, 2, 3]
    assert sample["row"] == sorted(sample["row"]) and sample["row"] == per_class_sample(dataset, 3, seed=0)["row"]
    assert per_class_sample(dataset, 3, seed=1)["row"] != sample["row"]  # drawn, not the first rows
    assert per_class_sample(dataset, 7, seed=0) is dataset


def test_a_label_column_of_names_is_read_as_classes(tmp_path):
    """A file whose labels are the class names themselves (strings): its classes are those names, sorted, and an
    eval file is read with the same classes; a name the training file lacks is refused, by name."""
    import datasets

    from visnet_hf.data import load_eval_data

    names = ["zebra", "okapi", "zebra", "lorry", "okapi", "lorry"] * 2
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    datasets.Dataset.from_dict({"image": generated_images(12), "label": names}, features=features).to_parquet(
        tmp_path / "train.parquet"
    )
    datasets.Dataset.from_dict({"image": generated_images(2, seed=1), "label": ["okapi", "zebra"]}, features=features).to_parquet(
        tmp_path / "eval.parquet"
    )
    splits = load_splits(DataConfig(path=str(tmp_path / "train.parquet"), eval_path=str(tmp_path / "eval.parquet")))
    assert splits.class_names == ["lorry", "okapi", "zebra"]
    assert [splits.class_names[label] for label in splits.train["label"]] == names
    assert [splits.class_names[label] for label in splits.eval["label"]] == ["okapi", "zebra"]
    whole = load_eval_data(DataConfig(path=str(tmp_path / "eval.parquet")))
    assert whole.class_names == ["okapi", "zebra"] and whole.dataset["label"] == [0, 1]
    datasets.Dataset.from_dict({"image": generated_images(1), "label": ["tapir"]}, features=features).to_parquet(
        tmp_path / "other.parquet"
    )
    with pytest.raises(DataError, match=r"names classes that are not among \['lorry', 'okapi', 'zebra'\]: \['tapir'\]"):
        load_splits(DataConfig(path=str(tmp_path / "train.parquet"), eval_path=str(tmp_path / "other.parquet")))


def test_a_name_with_spaces_around_it_is_the_name_and_names_written_alike_are_said(tmp_path, capsys):
    """ "okapi " (a spreadsheet's stray space) is the class "okapi", in the training and the eval file; "Zebra" beside
    "zebra" stays a class of its own, and the note names the two: training prints it, a whole file's readers
    (eval, extend) warn it."""
    import datasets

    from visnet_hf.data import names_alike_note
    from visnet_hf.errors import VisnetNote

    names = ["zebra", "okapi ", "Zebra", " okapi", "zebra", "okapi"] * 2
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    datasets.Dataset.from_dict({"image": generated_images(12), "label": names}, features=features).to_parquet(
        tmp_path / "train.parquet"
    )
    datasets.Dataset.from_dict(
        {"image": generated_images(2, seed=1), "label": ["okapi  ", "zebra"]}, features=features
    ).to_parquet(tmp_path / "eval.parquet")
    splits = load_splits(DataConfig(path=str(tmp_path / "train.parquet"), eval_path=str(tmp_path / "eval.parquet")))
    assert splits.class_names == ["Zebra", "okapi", "zebra"]
    assert [splits.class_names[label] for label in splits.train["label"]] == [name.strip() for name in names]
    assert [splits.class_names[label] for label in splits.eval["label"]] == ["okapi", "zebra"]
    note = "Classes of the data differ only in case, underscores or spacing: 'Zebra' and 'zebra'."
    assert names_alike_note(splits.class_names).startswith(note)
    assert names_alike_note(["cat", "Golden_Retriever", "golden  retriever", "Cat"]).startswith(
        "Classes of the data differ only in case, underscores or spacing: 'cat' and 'Cat'; 'Golden_Retriever' and "
        "'golden  retriever'."
    )
    assert names_alike_note(["cat", "dog"]) is None
    with pytest.warns(VisnetNote, match=re.escape(note)):
        whole = load_eval_data(DataConfig(path=str(tmp_path / "train.parquet")))
    assert whole.class_names == ["Zebra", "okapi", "zebra"]
    capsys.readouterr()
    train_main(
        [
            "--data", str(tmp_path / "train.parquet"), "--model", "frn_resnet18", "--epochs", "1", "--image-size", "32",
            "--output-dir", str(tmp_path / "run"), "data.val_fraction=0.5", "trackers=[]", "export=false", "checkpoints=false",
        ]
    )  # fmt: skip
    assert note in capsys.readouterr().out


def test_a_table_of_photo_urls_is_read_from_the_web(web_folder, tmp_path):
    """A table whose image column holds URLs (photos on a web server) is read as datasets.Image reads them; a URL
    that gives nothing is named, as one that cannot be downloaded."""
    import datasets

    from visnet_hf.data.images import BadImageError, decode, decode_tensor

    folder, url = web_folder
    images = generated_images(4)
    for index, image in enumerate(images):
        image.save(folder / f"{index}.png")
    lines = ["image,label"] + [f"{url}/{index}.png,{'zebra' if index % 2 else 'okapi'}" for index in range(4)]
    (tmp_path / "photos.csv").write_text("\n".join(lines) + "\n")
    whole = load_eval_data(DataConfig(path=str(tmp_path / "photos.csv")))
    assert whole.class_names == ["okapi", "zebra"] and len(whole.dataset) == 4
    data_config = {"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear", "crop_pct": 1.0}
    for transform in build_transforms(data_config, AugmentConfig()):  # the training recipe (tensors), eval's (PIL)
        transformed = TransformedDataset(whole.dataset, transform, split="eval")
        local = TransformedDataset(datasets.Dataset.from_dict({"image": images, "label": [0, 1, 0, 1]}), transform)
        for index in range(4):
            torch.testing.assert_close(transformed[index]["pixel_values"], local[index]["pixel_values"])
    assert decode(f"{url}/1.png", "photo 1").size == images[1].size
    assert decode_tensor({"path": f"{url}/1.png", "bytes": None}, "photo 1").shape[1:] == images[1].size[::-1]
    with pytest.raises(BadImageError, match=rf"photo 9 cannot be downloaded: FileNotFoundError: {url}/9.png"):
        decode(f"{url}/9.png", "photo 9")


def _photo_table(tmp_path: Path) -> tuple[list[str], list[str]]:
    """``photos/<class>/<n>.png`` real-looking images under ``tmp_path``: their paths relative to ``tmp_path`` and labels."""
    paths, labels = [], []
    for index, image in enumerate(generated_images(12)):
        label = ["zebra", "okapi", "lorry"][index % 3]
        path = Path("photos") / label / f"{index}.png"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / path)
        paths.append(path.as_posix())
        labels.append(label)
    return paths, labels


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_table_of_image_paths_and_labels_is_a_source(suffix, tmp_path, monkeypatch):
    """A .csv / .tsv / .jsonl file (or a .parquet file of strings) of image paths (relative to the file's folder) and
    class names: read the same from any working directory, for training (with a held-out part) and for scoring; an
    absolute path works too."""
    import json as json_lib

    from visnet_hf.data import load_eval_data

    paths, labels = _photo_table(tmp_path)
    paths[0] = str((tmp_path / paths[0]).resolve())  # absolute paths stay as they are
    table = tmp_path / f"labels{suffix}"
    if suffix == ".jsonl":
        table.write_text("".join(json_lib.dumps({"image": p, "label": n}) + "\n" for p, n in zip(paths, labels, strict=True)))
    elif suffix == ".parquet":
        datasets.Dataset.from_dict({"image": paths, "label": labels}).to_parquet(str(table))
    else:
        sep = "\t" if suffix == ".tsv" else ","
        table.write_text(f"image{sep}label\n" + "".join(f"{p}{sep}{n}\n" for p, n in zip(paths, labels, strict=True)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = DataConfig(path=str(table), val_fraction=0.25)
    assert config.source == {".jsonl": "json", ".parquet": "parquet"}.get(suffix, "csv")
    splits = load_splits(config)
    assert splits.class_names == ["lorry", "okapi", "zebra"] and len(splits.train) + len(splits.eval) == 12
    whole = load_eval_data(DataConfig(path=str(table)))
    assert [whole.class_names[label] for label in whole.dataset["label"]] == labels
    assert whole.dataset[5]["image"].size == generated_images(12)[5].size
    if suffix == ".csv":  # as a spreadsheet saves CSV where the comma is the decimal mark: separated by ";"
        semicolons = tmp_path / "semicolons.csv"
        semicolons.write_text(table.read_text().replace(",", ";"))
        assert load_eval_data(DataConfig(path=str(semicolons))).dataset["label"] == whole.dataset["label"]
    # paths written from the working directory instead (tables/labels.csv naming photos/...): found there
    (tmp_path / "tables").mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tables" / "labels.csv").write_text(
        "image,label\n" + "".join(f"{p},{n}\n" for p, n in zip(paths[1:], labels[1:], strict=True))
    )
    from_cwd = load_eval_data(DataConfig(path="tables/labels.csv"))
    assert len(from_cwd.dataset) == 11 and from_cwd.dataset[0]["image"].size == generated_images(12)[1].size


def test_a_table_with_other_column_names_is_read_by_naming_them(tmp_path, capsys):
    from tests.cli.test_cli_errors import error_of
    from visnet_hf.cli import main as cli
    from visnet_hf.data import load_eval_data

    paths, labels = _photo_table(tmp_path)
    table = tmp_path / "labels.csv"
    table.write_text("file,class\n" + "".join(f"{p},{n}\n" for p, n in zip(paths, labels, strict=True)))
    with pytest.raises(DataError, match=r"data.image_column='image' is not a column .*\['file', 'class'\].*--image-column"):
        load_eval_data(DataConfig(path=str(table)))
    named = load_eval_data(DataConfig(path=str(table), image_column="file", label_column="class"))
    assert named.class_names == ["lorry", "okapi", "zebra"]
    # an image folder's metadata.csv names its images in file_name (datasets' ImageFolder): read with no flag
    metadata = tmp_path / "metadata.csv"
    metadata.write_text("file_name,label\n" + "".join(f"{p},{n}\n" for p, n in zip(paths, labels, strict=True)))
    read = load_eval_data(DataConfig(path=str(metadata)))
    assert [read.class_names[label] for label in read.dataset["label"]] == labels
    assert read.dataset[5]["image"].size == generated_images(12)[5].size
    with pytest.raises(DataError, match=r"data.image_column='photo' is not a column .*\['file_name', 'label'\]"):
        load_eval_data(DataConfig(path=str(metadata), image_column="photo"))  # a column named by the user is not guessed
    err = error_of(cli, ["eval", "--model", "nowhere", "--data", str(table), "--image-column", "nope"], capsys)
    assert "data.image_column='nope' is not a column" in err
    (tmp_path / "labels.xlsx").write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"a \.csv or \.jsonl file of image paths and labels"):
        DataConfig(path=str(tmp_path / "labels.xlsx"))
    (tmp_path / "photos.zip").write_bytes(b"PK")  # photos as they are shared
    with pytest.raises(ValueError, match=r"photos.zip' is a file .* \(an archive: unpack it and give the folder it holds\)"):
        DataConfig(path=str(tmp_path / "photos.zip"))
    with pytest.raises(ValueError, match=r"a csv table of image paths is read as it is.*drop data.streaming"):
        DataConfig(path=str(table), streaming=True)


def test_too_few_images_to_hold_out_every_class_is_said_with_the_fraction_that_would(tmp_path):
    """20 images of 5 classes: 10% held out is 2 images, fewer than the classes; the error names the least fraction
    that works (and it does work), and with a class of one image, no fraction can, so none is offered."""
    images = generated_images(20)
    for index, image in enumerate(images):
        folder = tmp_path / "few" / f"class{index % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index}.png")
    with pytest.raises(DataError, match=r"20 images of 5 classes .*data\.val_fraction of at least 0\.25 .*data\.eval_path"):
        load_splits(DataConfig(path=str(tmp_path / "few")))
    splits = load_splits(DataConfig(path=str(tmp_path / "few"), val_fraction=0.25))
    assert len(splits.eval) == 5 and sorted(splits.eval["label"]) == [0, 1, 2, 3, 4]
    images[0].save(tmp_path / "few" / "lonely.png")  # beside the class folders: datasets would read no labels at all
    with pytest.raises(ValueError, match=r"holds images beside its class folders \(lonely.png\).*move them into"):
        DataConfig(path=str(tmp_path / "few"))
    (tmp_path / "few" / "lonely.png").unlink()
    (tmp_path / "few" / "class5").mkdir()
    images[1].save(tmp_path / "few" / "class5" / "only.png")
    with pytest.raises(DataError, match=r"the smallest with 1\)") as raised:
        load_splits(DataConfig(path=str(tmp_path / "few"), val_fraction=0.5))
    assert "at least" not in str(raised.value)
