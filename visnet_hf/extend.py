"""``visnet extend``: a saved VSENet learns new classes from their names and a few photos each (few-shot).

The classes of the data (a folder per class, or a labelled file) become the model's vocabulary, scored from
their texts and photos together (:mod:`visnet_hf.zero_shot.few_shot`); with ``keep_trained`` the trained
classes stay beside them. The extended model is saved as any model is, and answers the pipelines,
``visnet eval``, ``visnet predict`` and the page with no text encoder or photo at hand.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from .data import DataConfig, unused_names_note
from .data.folders import class_folders, has_images, split_folders
from .errors import ConfigError, DataError, NoClassNamesError, warn_user


def extend_saved_model(
    model_dir: str | Path,
    data: DataConfig,
    output_dir: str | Path,
    keep_trained: bool = False,
    example_weight: float | None = None,
) -> dict[str, Any]:
    """Load the model, learn the data's classes from their names and photos, save it to ``output_dir``.

    Args:
        example_weight: the photos' weight to save with the model (``zero_shot_config.example_weight``); ``None``:
            the model's own. Photos unlike the model's training images may call for less (studies/few_shot/OTHER_DOMAIN.md).

    Returns:
        What was done: the classes, how many photos each had, the photos' weight, what was said about them, the
        time taken.

    Raises:
        ConfigError: a model that is not a VSENet; a class folder without images; one class alone without
            ``keep_trained``; ``output_dir`` the model's own folder; a negative ``example_weight``.
        BadImageError: a photo that cannot be read, named.
    """
    from .data import load_eval_data
    from .hub import write_card
    from .hub.loading import TRAINING_CONFIG, load_model, model_file

    started = time.perf_counter()
    if example_weight is not None and not example_weight >= 0:
        raise ConfigError(f"The photos' weight (--example-weight) must be >= 0 (0: the names alone); got {example_weight}.")
    if Path(model_dir).is_dir() and Path(output_dir).resolve() == Path(model_dir).resolve():
        raise ConfigError(
            f"--output-dir {output_dir} is the model's own folder: the extended model would overwrite it, beside its "
            "training run's evaluation of the classes it had. Give another --output-dir (add the next batch of classes "
            "from there, with --keep-trained)."
        )
    _check_class_folders(data)
    try:
        examples = load_eval_data(data, split="train")  # of a folder with train/ and val/, the photos in train/
    except NoClassNamesError as error:
        raise DataError(
            f"{data.path} labels its photos with numbers and no names for them; visnet extend learns each new class "
            "from its name as well as its photos, so give a label column that holds the names (--label-column), a "
            "file whose label column is a ClassLabel with names, or a folder per class named as the class."
        ) from error
    if len(examples.class_names) == 1 and not keep_trained:
        raise ConfigError(
            f"{data.path} holds one class ({examples.class_names[0]!r}): a model of one class gives it to every image. "
            "Add --keep-trained to put it beside the classes the model knows, or give the classes it should tell apart."
        )
    model = load_model(model_dir)
    if not hasattr(model, "set_classes"):
        raise ConfigError(
            f"{model_dir} holds a {type(model).__name__}; new classes from their names and photos need a VSENet "
            "(one that embeds class names), e.g. one trained with visnet train --model vsenet_<backbone>."
        )
    settings = model.config.zero_shot_config
    fitted_at = settings.photo_weight()  # the photo weight the model's offset beside photos was fitted with
    if example_weight is not None:
        settings.example_weight = float(example_weight)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        if keep_trained and settings.example_calibration is not None and settings.photo_weight() != fitted_at:
            warn_user(
                f"The offset on the trained classes beside names with photos (zero_shot_config.example_calibration, "
                f"{settings.example_calibration:g}) was fitted with the photos weighed {fitted_at:g}, not "
                f"{settings.photo_weight():g}: fit it again on held-out images of trained and new classes, visnet "
                "calibrate --model SAVED_FOLDER --data IMAGES_OF_BOTH."
            )
        if examples.unused_names:
            warn_user(unused_names_note(examples.unused_names, len(examples.class_names), "visnet extend learns"))
        model.set_classes(
            examples.class_names,
            synonyms=examples.synonyms,
            synsets=examples.synsets,
            examples=examples.dataset,
            keep_trained=keep_trained,
        )
    output = Path(output_dir)
    model.save_pretrained(output)
    trained_by = model_file(model_dir, TRAINING_CONFIG)  # the model was trained by it: the card says how
    if trained_by is not None:
        shutil.copyfile(trained_by, output / TRAINING_CONFIG)
    write_card(output)
    counts = dict(zip(model.config.class_names, model.config.class_example_counts or [], strict=False))
    trained = set(model.config.trained_class_names)
    new_classes = [name for name in examples.class_names if name not in trained]
    senses = _senses_note(model, examples, new_classes)
    return {
        "output_dir": str(output),
        "classes": len(model.config.class_names),
        "new_classes": new_classes,
        "already_trained": [name for name in examples.class_names if name in trained],  # scored as the trained classes
        "kept_trained": len(model.config.trained_class_names) if keep_trained else 0,
        "photos_from": examples.description,
        "photos": {name: counts[name] for name in examples.class_names if name in counts},
        "photo_weight": model.config.zero_shot_config.photo_weight(),
        "photo_weight_from": _photo_weight_source(model.config.zero_shot_config, example_weight),
        "notes": [  # what the library says to the user; a dependency's resource or deprecation warnings are no note
            str(warning.message).replace("SAVED_FOLDER", str(output))
            for warning in said
            if issubclass(warning.category, UserWarning)
        ]
        + ([senses] if senses else []),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _photo_weight_source(settings: Any, given: float | None) -> str:
    """Where the photos' weight came from, in words."""
    if given is not None:
        return "--example-weight"
    if settings.example_weight is not None:
        return "the model's zero_shot_config.example_weight"
    if settings.photo_weight() > settings.names_weight():
        return "the photos, each left out of its class's mean: under it the names and photos read them best"
    return "the names' own weight (the photos chose no more)"


def _senses_note(model: Any, examples: Any, names: list[str]) -> str | None:
    """Which WordNet sense each new name was given, as training says it of its classes: a guessed sense describes the
    class (``describe: wordnet``), and a wrong guess ("cannon" read as a horse's leg bone) describes another thing.
    None for a model that reads no sense (no WordNet descriptions, hierarchy or glosses, in the prototypes or the
    borrowed classifiers)."""
    from .wordnet import sense_records, sense_summary, senses_beside

    zero_shot = model.config.zero_shot_config
    in_prototypes = zero_shot.prototype_weight > 0 and (zero_shot.prototype_hierarchy > 0 or zero_shot.prototype_glosses > 0)
    in_borrowed = zero_shot.backbone_classifier_weight > 0 and zero_shot.backbone_classifier_hierarchy > 0
    if model.config.text_config.describe != "wordnet" and not in_prototypes and not in_borrowed:
        return None

    new = [examples.class_names.index(name) for name in names]
    synonyms, synsets = examples.synonyms, examples.synsets
    records = sense_records(
        names,
        [synonyms[i] for i in new] if synonyms else None,
        [synsets[i] for i in new] if synsets else None,
        model.config.text_config.describe,
        context=senses_beside(names, model.config.trained_class_names, model.config.trained_class_synsets),
    )
    if not records:
        return None
    summary = sense_summary(records, classes="new classes")
    if not any(record.how == "guessed" for record in records):
        return summary
    return (
        f"{summary}\nWhere a guessed sense is not the class's, give the right one and extend again: name the class "
        "folder by its WordNet id and name (n02950826-cannon), or give a labelled file's WordNet ids with "
        "--class-synset-column."
    )


def _check_class_folders(data: DataConfig) -> None:
    """A class folder without a single image would silently be no class at all: refuse it, by name."""
    root = Path(str(data.path))
    if data.source != "imagefolder" or not root.is_dir():
        return
    roots = [folder for _, folder in split_folders(root)] or [root]
    empty = [str(folder) for split in roots for folder in class_folders(split) if not has_images(folder)]
    if empty:
        raise ConfigError(
            f"{', '.join(empty)}: no images in this class folder; add a few photos of the class, or remove the folder."
        )
