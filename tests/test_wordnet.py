"""Class descriptions and class similarity from the WordNet extract shipped in the package, and VSENets that use them."""

import gzip

import pytest
import torch

from visnet_hf import VSENetForImageClassification, create_model
from visnet_hf.errors import ConfigError
from visnet_hf.wordnet import (
    build_resource,
    describe,
    fill_descriptions,
    hierarchy_similarity,
    hypernym_path,
    read_resource,
    sense_records,
    sense_summary,
    senses,
    synset_for,
    synset_ids,
    wu_palmer,
)


def test_a_name_is_described_by_its_hypernym_and_gloss():
    (description,) = describe(["goldfish"])
    assert description.startswith("a type of cyprinid; small golden or orange-red freshwater fishes")
    assert describe(["zzqx no such thing"]) == [None]
    assert senses("Golden  Retriever") == senses("golden retriever") != []


def test_the_sense_is_one_a_photo_can_show_unless_synonyms_say_otherwise():
    assert synset_for("crane").lexname == 5  # the bird: of the senses a photo shows, an animal first
    assert synset_for("bighorn").lexname == 5  # the sheep: a lower-case name is not the Bighorn River
    assert synset_for("slug").lexname == 5  # the gastropod, not the bullet
    assert synset_for("slug", ["sluggard"]).lexname == 18  # the synonym picks the idle person
    assert synset_for("slug", ["no such synonym"]) == synset_for("slug")


# Names whose most frequent WordNet sense is not what a photo of the class shows, brand and model names among them,
# each with the sense the rule must give (by its first lemma and lexicographer file), or None: no sense rather than
# a wrong one. Read in a vocabulary that mixes lower-case and capitalised names, as most do.
AMBIGUOUS = {
    "seal": ("seal", 5),  # the animal, not sealing wax (WordNet's first) nor the stamp
    "crane": ("crane", 5),
    "bass": ("bass", 5),  # the fish, not the voice
    "mouse": ("mouse", 5),
    "mate": ("mate", 13),  # the drink, not "an exact duplicate"
    "apple": ("apple", 13),  # the fruit, not the tree
    "jaguar": ("jaguar", 5),
    "Jaguar": None,  # capitalised: the car maker WordNet does not know, not the cat
    "Corolla": None,  # the Toyota, not the petals
    "Tesla": None,  # not Nikola Tesla (a person: nothing a photo of the class shows)
    "Labrador": None,  # the region: a Labrador retriever is "Labrador retriever"
    "Mustang": None,
    "Beetle": None,
    "Polo": None,
    "Galaxy": None,
    "Persian": None,  # a people and a language; the cat is "Persian cat"
    "Toyota Corolla": None,
    "iPhone 15": None,
    "golden retriever puppy": ("golden retriever", 5),  # the longest part WordNet knows, the rest a modifier
    "baby seal": ("seal", 5),
    "red apple": ("apple", 13),
}


def test_ambiguous_names_get_the_sense_a_photo_shows_or_none():
    ids = synset_ids(list(AMBIGUOUS))
    synsets, _ = read_resource()
    got = {name: (synsets[wnid[1:]].lemmas[0], synsets[wnid[1:]].lexname) if wnid else None for name, wnid in zip(AMBIGUOUS, ids)}
    assert got == AMBIGUOUS


def test_capitals_say_nothing_in_a_vocabulary_that_capitalises_every_name():
    assert synset_ids(["Cat", "Golden Retriever Puppy", "Toyota Corolla"]) == (
        synset_ids(["cat"])[0],
        synset_ids(["golden retriever"])[0],
        None,  # "Toyota" is a city to WordNet, not a modifier of "Corolla"
    )


def test_describe_shows_each_classs_sense_and_how_it_was_chosen(tiny_text_encoder, capsys):
    records = sense_records(["seal", "crane", "Tesla"], wnids=[None, "n03126707", None])  # the crane: the machine
    assert [(r.name, r.how) for r in records] == [("seal", "guessed"), ("crane", "given"), ("Tesla", "none")]
    assert records[0].lemma == "seal" and "marine mammals" in records[0].description
    summary = sense_summary(records)
    assert summary.startswith("WordNet senses of 3 classes: 1 given by the data, 1 guessed from the name, 1 without")
    assert "'seal' → seal (n02076196, guessed)" in summary and "'Tesla': no sense (none)" in summary
    names = ["seal", "Tesla", "n02950826-cannon"]  # the last names its sense (the gun, not the horse's leg bone)
    model = create_model("vsenet_resnet18", class_names=names, text_encoder=tiny_text_encoder, image_size=32)
    assert [(r.name, r.how) for r in describe(model)] == [("seal", "guessed"), ("Tesla", "none"), (names[2], "given")]
    assert describe(model)[2].wnid == "n02950826"


def test_describe_none_turns_every_use_of_wordnet_off(tiny_text_encoder):
    wnids = ["n02121620", "n02084071"]
    on, off = (
        create_model(
            "vsenet_resnet18",
            class_names=["cat", "dog"],
            class_synsets=wnids,
            text_encoder=tiny_text_encoder,
            image_size=32,
            describe_classes=describe,
            prototype_weight=1.0,
            prototype_hierarchy=2.0,
            prototype_glosses=2.0,
        )
        for describe in ("wordnet", "none")
    )
    assert on.vocabulary.synsets == tuple(wnids) and on.vocabulary.texts.descriptions is not None
    assert off.vocabulary.synsets is None and off.trained_vocabulary.synsets is None  # even the ids the data gave
    assert off.vocabulary.texts.descriptions is None
    assert off.vocabulary.glosses.abs().sum() == 0 and on.vocabulary.glosses.abs().sum() > 0
    new = off.vocabulary_for(["lion", "truck"], synsets=["n02129165", None])
    assert new.synsets is None and new.glosses.abs().sum() == 0
    assert [r.how for r in describe(off)] == ["off", "off"]


def test_a_given_wordnet_id_wins_over_the_sense_guessed_from_the_name():
    assert synset_ids(["cat", "lion", "zzqx"]) == ("n02121620", "n02129165", None)
    # "lion" as the famous person (noun.person): given, it is used; an id WordNet lacks or a malformed one is not
    assert synset_ids(["lion", "lion", "lion"], wnids=["n10265070", "n99999999", "lion"]) == ("n10265070",) + ("n02129165",) * 2
    assert synset_ids(["slug"], synonyms=[["sluggard"]]) == (f"n{synset_for('slug', ['sluggard']).offset}",)
    # a name that is itself a WordNet id (an ImageNet-style class folder) is that sense, as given
    assert synset_ids(["n01443537", "n99999999"]) == ("n01443537", None)
    assert synset_ids(["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]) == ("n02085620", "n02085782")  # Stanford Dogs
    assert [(r.lemma, r.how) for r in sense_records(["n01443537"])] == [("goldfish", "given")]


def test_a_given_wordnet_id_picks_the_sense_described():
    # ImageNet's "organ" is the pipe organ; guessed from the name alone it is the electronic organ
    organ, crane = "n03854065", "n03126707"  # the pipe organ and the machine (the name alone: the bird)
    guessed = describe(["organ", "crane"])
    given = describe(["organ", "crane"], wnids=[organ, crane])
    assert "electronic simulation" in guessed[0] and "keyboard instrument" in given[0]
    assert read_resource()[0][crane[1:]].gloss in given[1] and given[1] != guessed[1]
    assert describe(["organ"], wnids=["n99999999"]) == guessed[:1]  # an id WordNet lacks: the guess
    filled = fill_descriptions("wordnet", ["organ", "crane"], [None, "mine"], None, [organ, crane])
    assert filled == [given[0], "mine"]  # a given description still wins


def test_classes_are_alike_by_the_depth_of_the_hypernym_they_share():
    cat, lion, car = synset_ids(["cat", "lion", "car"])
    path = hypernym_path(lion)
    assert path[0] == "00001740" and path[-1] == lion[1:]  # entity ... lion
    assert read_resource()[0][path[-2]].lemmas[0] == "big cat"
    shared = len([a for a, b in zip(hypernym_path(cat), path) if a == b])  # entity ... feline
    assert wu_palmer(cat, lion) == pytest.approx(2 * shared / (len(hypernym_path(cat)) + len(path)))
    assert wu_palmer(cat, cat) == 1.0 and wu_palmer(cat, None) == 0.0
    similarity = hierarchy_similarity((cat, None), (lion, car, cat))
    assert similarity.shape == (2, 3) and similarity[1].eq(0).all()  # an unknown name is alike to nothing
    assert similarity[0, 2] == 1.0 > similarity[0, 0] > similarity[0, 1] > 0  # a cat is nearer a lion than a car


def test_given_descriptions_win_and_missing_ones_are_looked_up():
    filled = fill_descriptions("wordnet", ["goldfish", "albatross", "zzqx"], [None, "mine", None], None)
    assert filled[0].startswith("a type of cyprinid") and filled[1] == "mine" and filled[2] is None
    assert fill_descriptions(None, ["goldfish"], None, None) is None
    with pytest.raises(ConfigError, match="describe_classes='wikipedia'"):
        fill_descriptions("wikipedia", ["goldfish"], None, None)


def test_the_extract_is_rebuilt_from_a_wordnet_dict_folder(tmp_path):
    dictionary = tmp_path / "dict"
    dictionary.mkdir()
    (dictionary / "data.noun").write_text(
        "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
        "01439121 05 n 01 cyprinid 0 001 @ 01432517 n 0000 | a fish of the family Cyprinidae\n"
        "01443537 05 n 02 goldfish 0 Carassius_auratus 0 001 @ 01439121 n 0000 | small golden fishes; kept in ponds\n",
        encoding="latin-1",
    )
    (dictionary / "index.noun").write_text(
        "  1 This software and database is being provided to you\n"
        "cyprinid n 1 1 @ 1 0 01439121  \n"
        "goldfish n 1 1 @ 1 0 01443537  \n",
        encoding="latin-1",
    )
    output = tmp_path / "extract.tsv.gz"
    build_resource(dictionary, output)
    synsets, index = read_resource(output)
    goldfish = synsets[index["goldfish"][0]]
    assert goldfish.lemmas == ("goldfish", "Carassius auratus")
    assert goldfish.description == "a type of cyprinid; small golden fishes"
    assert synsets["01439121"].description == "a fish of the family Cyprinidae"  # its hypernym is not in the extract
    with gzip.open(output, "rt") as handle:
        assert handle.read().count("\n") == 4


def test_a_vsenet_describes_every_vocabulary_it_embeds(tiny_text_encoder, tmp_path):
    names = ["goldfish", "pretzel", "zzqx"]
    plain = create_model("vsenet_resnet18", class_names=names, text_encoder=tiny_text_encoder)
    described = create_model("vsenet_resnet18", class_names=names, text_encoder=tiny_text_encoder, describe_classes="wordnet")
    moved = (plain.class_embeddings - described.class_embeddings).norm(dim=-1)
    assert moved[0] > 1e-3 and moved[1] > 1e-3 and moved[2] < 1e-6  # WordNet has no "zzqx": its texts are the same

    described.set_classes(["albatross", "goldfish"], descriptions=[None, "a pet fish"])
    assert described.config.class_descriptions[0][0].startswith("a type of pelagic bird")
    assert described.config.class_descriptions[1] == ["a pet fish"]
    described.save_pretrained(tmp_path)
    loaded = VSENetForImageClassification.from_pretrained(tmp_path)
    assert loaded.config.text_config.describe == "wordnet"
    torch.testing.assert_close(loaded.class_embeddings, described.class_embeddings)
    organ = "n03854065"  # the pipe organ; the name alone reads as the body part
    by_id = create_model(
        "vsenet_resnet18",
        class_names=["organ"],
        text_encoder=tiny_text_encoder,
        describe_classes="wordnet",
        class_synsets=[organ],
    )
    by_name = create_model("vsenet_resnet18", class_names=["organ"], text_encoder=tiny_text_encoder, describe_classes="wordnet")
    assert (by_id.class_embeddings - by_name.class_embeddings).norm() > 1e-3
    described.set_classes(["organ"], synsets=[organ])
    assert "keyboard instrument" in described.config.class_descriptions[0][0]
    torch.testing.assert_close(described.class_embeddings, by_id.class_embeddings)
    with pytest.raises(ConfigError, match="text_config.describe='wikipedia' must be one of"):
        create_model("vsenet_resnet18", class_names=names, text_encoder=tiny_text_encoder, describe_classes="wikipedia")


def test_a_name_of_several_kinds_takes_the_kind_of_the_names_beside_it():
    """Among garments "coat" is the garment and "bag" the container (alone, the photo order's first: an animal's
    coat, a cow's udder); among tools "drill" is the tool, not the baboon; a mixed vocabulary, or too few names to
    say, leaves the order's guess; a sense given, or chosen by synonyms, is kept."""
    garments = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
    ids = dict(zip(garments, synset_ids(garments), strict=True))
    assert (ids["coat"], ids["bag"]) == ("n03057021", "n02773037")  # coat: an outer garment; bag: a container
    assert synset_ids(["coat"]) == ("n01898731",) and synset_ids(["bag"]) == ("n02370360",)
    tools = ["hammer", "file", "saw", "drill", "wrench", "chisel", "level", "plane", "vise", "clamp"]
    assert dict(zip(tools, synset_ids(tools), strict=True))["drill"] == "n03239726"
    assert synset_ids(["drill", "coat", "dress", "shirt"])[:2] == ("n02487079", "n01898731")  # 3 others: too few to say
    mixed = ["coat", "zebra", "lion", "tiger", "dress", "shirt", "bus", "sandal"]
    assert synset_ids(mixed)[0] == "n01898731"  # 3 animals and 4 artifacts of 7 others: no kind has three quarters
    given = synset_ids(garments, wnids=["n01898731" if name == "coat" else None for name in garments])
    assert given[garments.index("coat")] == "n01898731"
    by_synonyms = synset_ids(garments, synonyms=[["pelage"] if name == "coat" else None for name in garments])
    assert by_synonyms[garments.index("coat")] == "n01898731"


def test_new_names_are_guessed_in_the_kind_of_the_classes_the_model_trained_on(tiny_text_encoder, capsys):
    """A model trained on garments reads a new "bag" as the container, where a model trained on animals (or the
    name alone) reads the udder; the sense is kept with the extended model and described as guessed."""
    from visnet_hf.wordnet import describe

    garments = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "ankle boot"]
    animals = ["zebra", "lion", "tiger", "goldfish", "tabby", "ox", "hen", "frog"]
    wears, beasts = (
        create_model(
            "vsenet_resnet18", class_names=names, text_encoder=tiny_text_encoder, image_size=32, describe_classes="wordnet"
        )
        for names in (garments, animals)
    )
    assert wears.vocabulary_for(["bag", "sneaker"]).synsets == ("n02773037", "n03472535")
    assert beasts.vocabulary_for(["bag", "sneaker"]).synsets == ("n02370360", "n03472535")
    wears.set_classes(["bag", "sneaker"])
    assert wears.config.class_synsets == ["n02773037", "n03472535"]
    assert [(record.wnid, record.how) for record in describe(wears)] == [("n02773037", "guessed"), ("n03472535", "guessed")]
    wears.set_classes(["bag", *garments])  # beside the trained classes: they are among the names
    assert wears.config.class_synsets[0] == "n02773037"


def test_the_guessed_sense_follows_the_kind_of_a_vocabulary_of_one_kind():
    """ImageNet-1k's 518 artifact classes as one vocabulary: 456 get their own sense (436 by the photo order alone,
    which puts an animal first). Over all 1,000 names it changes nothing (887, the test below)."""
    from timm.data import ImageNetInfo

    synsets, _ = read_resource()
    info = ImageNetInfo()
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]
    truth = list(info.label_names())
    artifacts = [i for i, wnid in enumerate(truth) if synsets[wnid[1:]].lexname == 6]
    guessed = synset_ids([names[i] for i in artifacts])
    assert sum(guess == truth[i] for guess, i in zip(guessed, artifacts, strict=True)) >= 450


def test_the_guessed_sense_is_imagenets_own_for_most_of_its_class_names():
    """The guess from the name alone against ImageNet-1k's WordNet ids, each class named by its first name (timm's
    ImageNetInfo: "tench, Tinca tinca" is "tench"): 887 of the 1,000 (README: zero-shot); some names cannot be told
    apart by any guess ("crane" is a bird and a machine there)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]
    guessed = synset_ids(names)
    right = sum(guess == wnid for guess, wnid in zip(guessed, info.label_names(), strict=True))
    assert right >= 870, f"{right} of 1,000 ImageNet class names get their own sense"
