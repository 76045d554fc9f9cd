"""The ``nfnets`` argument parser and ``main``: which sub-command, with which flags; the work is
in :mod:`keras_nfnets.cli.commands`."""

import argparse
import os
import sys

from keras_nfnets.cli.commands import (evaluate_command, export_command, models_command, predict_command,
                                       preset_command, spp_command, train_command)


# --- argument types: a value argparse refuses with a clear message (train's are its options') -----
from keras_nfnets.training.config import positive_float as _positive_float  # noqa: E402
from keras_nfnets.training.config import positive_int as _positive_int  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """argparse that answers a bad argument with one line and where the options are listed,
    instead of the whole usage (16 lines for ``nfnets train``) before it."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists every option)\n")


def build_parser():
    """The ``nfnets`` argument parser: one sub-command per task, each with its handler as ``func``."""
    from keras_nfnets.export.formats import FORMATS, QUANTIZATIONS
    from keras_nfnets.spp import FIGURE_DEFAULTS, FIGURES
    from keras_nfnets.training.config import add_arguments as add_train_options

    common = _Parser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines (hidden by default)")
    from keras_nfnets import __version__

    parser = _Parser(prog="nfnets", description="Normalizer-Free networks for Keras 3.")
    parser.add_argument("--version", action="version", version=f"nfnets (keras_nfnets) {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser(
        "models", parents=[common],
        help="list every variant: parameters, FLOPs (multiply-adds at test size), image sizes, ImageNet checkpoint",
    )
    models.add_argument("names", nargs="*", help="builder or timm NF names to list (default: all builders)")
    models.add_argument("--markdown", action="store_true", help="print a Markdown table (as in the README)")
    models.set_defaults(func=models_command)

    pred = commands.add_parser("predict", parents=[common],
                               help="classify images with a pretrained model (top-5 ImageNet classes)")
    pred.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    pred.add_argument("--model", default="NFRegNetB1",
                      help="builder (NFRegNetB1, NFNetF0, ...), timm name, or a trained run directory / .keras file "
                           "(then the run's class names)")
    pred.add_argument("--weights", default="imagenet",
                      help="for builders: imagenet (default), a .weights.h5 file, none (random weights), or a "
                           "trained run directory / .keras file")
    pred.add_argument("--checkpoint", default=None, help="for timm names: a .safetensors/.pth file (default: the Hub)")
    pred.add_argument("--top", type=_positive_int, default=5, help="how many classes to print per image (default 5)")
    pred.set_defaults(func=predict_command)

    exp = commands.add_parser("export", parents=[common],
                              help="fold weight standardization and export to SavedModel, TFLite or ONNX")
    exp.add_argument("output", help="output path: a directory (saved_model), .tflite or .onnx file")
    exp.add_argument("--model", required=True,
                     help="builder name, e.g. NFRegNetB0, or a trained run directory / .keras file")
    exp.add_argument("--weights", default=None,
                     help="imagenet, a .weights.h5 file, or a trained run directory / .keras file (default: random)")
    exp.add_argument("--format", dest="fmt", choices=FORMATS, required=True,
                     help="artifact format")
    exp.add_argument("--quantization", choices=[q for q in QUANTIZATIONS if q], default=None,
                     help="TFLite only: fp16 weights, int8 weights (dynamic range) or full int8 (default: float32)")
    exp.add_argument("--image-size", type=_positive_int, default=None, help="static input size (default: the model's)")
    exp.add_argument("--no-verify", action="store_true",
                     help="write the file without checking it against the Keras model (by default it is checked on a "
                          "run's held-out images, or synthetic ones, and written only if it agrees)")
    exp.add_argument("--calibration", default=None, metavar="DIR",
                     help="--quantization int8: calibrate on the images in DIR (default: a trained run's own "
                          "training images, else synthetic images; the command says which)")
    exp.set_defaults(func=export_command)

    pre = commands.add_parser("preset", parents=[common],
                              help="write a keras-hub preset (ImageClassifier.from_preset loads it)")
    pre.add_argument("model", help="builder name (NFNetF0), timm name (dm_nfnet_f0), run directory or .keras file")
    pre.add_argument("directory", help="the preset directory to write (new, or holding only your own files such as a "
                                       "README.md, which stay; see --overwrite)")
    pre.add_argument("--weights", default="imagenet",
                     help="builders: imagenet (default), none or a .weights.h5 file")
    pre.add_argument("--checkpoint", default=None, help="for timm names: a .safetensors/.pth file (default: the Hub)")
    pre.add_argument("--overwrite", action="store_true",
                     help="replace the NF preset already in DIRECTORY (files that are not part of it are kept)")
    pre.add_argument("--no-model-card", action="store_true",
                     help="do not write a README.md model card (one is written where DIRECTORY has none of yours)")
    pre.set_defaults(func=preset_command)

    spp = commands.add_parser("spp", parents=[common], help="regenerate one of the paper's Signal Propagation Plots")
    spp.add_argument("output", help="image file (.png, .pdf, .svg)")
    spp.add_argument("--figure", type=int, choices=FIGURES, required=True,
                     help="the paper's figure number (1, 2: BN vs NF; 6, 7: He init / linear; 8: γ; 9: SE)")
    spp.add_argument("--depth", type=_positive_int, default=FIGURE_DEFAULTS["depth"],
                     help="conv layers of the ResNetV2 (default %(default)s)")
    spp.add_argument("--image-size", type=_positive_int, default=FIGURE_DEFAULTS["image_size"],
                     help="input side in pixels (default %(default)s, the paper's)")
    spp.add_argument("--batch-size", type=_positive_int, default=FIGURE_DEFAULTS["batch_size"],
                     help="Gaussian inputs per measurement (default %(default)s)")
    spp.set_defaults(func=spp_command)

    tr = commands.add_parser("train", parents=[common],
                             help="train or fine-tune with the paper's recipe (default: NFResNet14 on the embedded "
                                  "digits, ~1.5 min on 2 CPU cores)")
    add_train_options(tr)  # one flag per TrainConfig field
    tr.set_defaults(func=train_command)

    ev = commands.add_parser("evaluate", parents=[common],
                             help="accuracy of a trained run (or .keras file) on a dataset split")
    ev.add_argument("model", help="run directory written by nfnets train, or a .keras file")
    ev.add_argument("--dataset", default=None, help="default: the run's dataset")
    ev.add_argument("--split", default=None, help="default: the run's evaluation split")
    ev.add_argument("--data-dir", default=None, help="TFDS data directory")
    ev.add_argument("--image-size", type=_positive_int, default=None, help="evaluation resolution (default: the run's)")
    ev.add_argument("--batch-size", type=_positive_int, default=64, help="evaluation batch size (default 64)")
    ev.set_defaults(func=evaluate_command)

    from keras_nfnets.cli import launch

    la = commands.add_parser("launch", parents=[common],
                             help="run a multi-worker cluster on this machine: nfnets launch --workers 2 -- train ...")
    launch.add_arguments(la)
    la.set_defaults(func=launch.run_from_arguments)
    parser.subcommands = dict(models=models, predict=pred, export=exp, preset=pre, spp=spp, train=tr, evaluate=ev, launch=la)
    return parser


# Python arguments whose command-line form is not ``--name value``.
_CALL_FLAGS = {"resume=False": "--restart", "weights=None": "--weights none", "model_name": "--model",
               "randaugment=None": "--randaugment off", "jit_compile=True": "--jit-compile true",
               "jit_compile=False": "--jit-compile false", "remat=True": "--remat", 'jit_compile="auto"': "--jit-compile auto",
               "overwrite=True": "--overwrite"}


def as_flags(message, subparser):
    """``message`` with the library's arguments in backticks written as the command's flags, where
    the command has that flag: `` `output_dir` `` → `` `--output-dir` ``, `` `learning_rate=0.05` ``
    → `` `--learning-rate 0.05` ``, `` `resume=False` `` → `` `--restart` ``,
    `` `randaugment=(2, 5)` `` → `` `--randaugment 2,5` ``."""
    import re

    flags = set(re.findall(r"--[a-z0-9][a-z0-9-]*", subparser.format_help()))

    def flag(match):
        argument = match.group(1)
        if argument in _CALL_FLAGS:
            special = _CALL_FLAGS[argument]
            return f"`{special}`" if special.split()[0] in flags else match.group(0)
        name, assigned, value = argument.partition("=")
        option = "--" + name.replace("_", "-")
        if option not in flags:
            return match.group(0)
        if not assigned:
            return f"`{option}`"
        value = value.strip().strip("'\"")
        if value.startswith("(") and value.endswith(")"):  # a tuple: comma-separated
            value = ",".join(part.strip() for part in value[1:-1].split(","))
        return f"`{option} {value}`"

    return re.sub(r"`([a-z][a-z0-9_]*(?:=[^`]*)?)`", flag, message)


# Commands that load TensorFlow (models only for timm names, which it builds).
_TENSORFLOW_COMMANDS = ("predict", "export", "preset", "spp", "train", "evaluate")


def _needs_tensorflow(args):
    if args.command == "models":
        from keras_nfnets.models.counts import COUNTS

        return any(name not in COUNTS for name in args.names)  # the others are built (shapes only)
    return args.command in _TENSORFLOW_COMMANDS


def main(argv=None):
    """Run one sub-command. Errors end in one line naming the fix (``--verbose`` shows the
    traceback); Ctrl-C ends quietly after the command's own message (exit 130; 143 after a SIGTERM).

    ``argv=None`` means this process is the ``nfnets`` program (the console script or ``python -m
    keras_nfnets.cli``): TensorFlow then starts quietly unless ``--verbose`` or
    ``TF_CPP_MIN_LOG_LEVEL`` asks for its logs. A list of arguments (a call from Python) runs the
    command in this process as it is, leaving standard error and the environment alone."""
    from keras_nfnets import _startup, messages

    is_program = argv is None
    _startup.forget_stop_signal()
    if is_program:
        _startup.mark_program()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if is_program:
        from keras_nfnets.cli import supervise

        if supervise.wanted(args):  # the worker runs as a child, so that a SIGTERM is answered while it waits
            return supervise.run(argv)
        _startup.report_fatal_errors()
    try:
        if is_program and _needs_tensorflow(args) and not _startup.wants_tensorflow_logs(argv):
            # a multi-worker strategy is made here, before TensorFlow's first op, and passed to the run
            args.distribution = _startup.quiet_tensorflow_start(strategy=getattr(args, "strategy", None),
                                                                cluster_timeout=getattr(args, "cluster_timeout", None))
        with messages.translated(lambda message: as_flags(message, parser.subcommands[args.command])):
            return args.func(args)
    except KeyboardInterrupt:
        if args.verbose:
            raise
        if is_program:  # what the command saves on Ctrl-C is written; TensorFlow's teardown took up to 18 s
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(_startup.interrupted_exit_status())
        return _startup.interrupted_exit_status()
    except Exception as error:
        if args.verbose or not _is_user_error(error):
            raise
        print(f"nfnets {args.command}: error: {as_flags(str(error), parser.subcommands[args.command])}",
              file=sys.stderr)
        return 2


def _is_user_error(error):
    """Errors that a user's input caused and whose message names the fix (a CheckpointError is a
    ValueError): printed as one line."""
    return isinstance(error, (ValueError, TypeError, OSError, ImportError, RuntimeError))
