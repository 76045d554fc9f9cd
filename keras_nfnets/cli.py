"""The ``nfnets`` command line."""

import argparse
import os
import sys


def models_table(names=None, out=None, markdown=False):
    """Print every variant (or ``names``): parameters, FLOPs at its test size (multiply-adds, as the
    papers count them), image sizes and the ImageNet checkpoint; ``markdown`` prints the README's table.
    Builders come from the stored counts (no TensorFlow); timm names are built (shapes only)."""
    out = out or sys.stdout
    from keras_nfnets.models.counts import COUNTS
    from keras_nfnets.models.timm_configs import TIMM_CONFIGS, TIMM_SIZES
    from keras_nfnets.models.variants import VARIANTS
    from keras_nfnets.weights.presets import checkpoint_for, variant

    names = list(VARIANTS) if not names else names
    unknown = [n for n in names if n not in VARIANTS and n.split(".")[0] not in TIMM_CONFIGS]
    if unknown:
        raise ValueError(f"Unknown model(s): {', '.join(unknown)}. Available: {', '.join(VARIANTS)}, or any timm NF "
                         f"name ({', '.join(sorted(TIMM_CONFIGS))})")
    if markdown:
        print("| model | params (M) | FLOPs (B) | train px | test px | `weights=\"imagenet\"` checkpoint (top-1) |",
              file=out)
        print("|---|---:|---:|---:|---:|---|", file=out)
    else:
        width = max(13, *(len(n) for n in names))
        header = (f"{'model':<{width}} {'params (M)':>11} {'FLOPs (B)':>10} {'train px':>9} {'test px':>8}  "
                  "imagenet checkpoint (top-1)")
        print(header, file=out)
        print("-" * len(header), file=out)
    for name in names:
        checkpoint = checkpoint_for(name)
        if name in VARIANTS:
            (params, flops), row = COUNTS[name], variant(name)
            train_size, size = row.train_size, row.test_size
        else:
            params, flops, size = _timm_counts(name)
            train_size = checkpoint.train_size if checkpoint else TIMM_SIZES[name.split(".")[0]][0]
        tag = checkpoint.tag if checkpoint else None
        if markdown:
            weights = f"`{tag}` {checkpoint.top1:.2f}%" if tag else "—"
            print(f"| {name} | {params / 1e6:.3f} | {flops / 1e9:.3f} | {train_size} | {size} | {weights} |",
                  file=out, flush=True)
        else:
            weights = f"{tag} ({checkpoint.top1:.2f}%)" if tag else "-"
            print(f"{name:<{width}} {params / 1e6:>11.3f} {flops / 1e9:>10.3f} {train_size:>9} {size:>8}  {weights}",
                  file=out, flush=True)


def _timm_counts(name):
    """``(parameters, FLOPs, test size)`` of timm's ``name`` with its checkpoint's sizes, from a
    shapes-only build (variables created in a StatelessScope are never initialised)."""
    import keras

    from keras_nfnets.models.summary import count_flops, count_params
    from keras_nfnets.weights.hub import from_timm

    with keras.StatelessScope(initialize_variables=False):
        model = from_timm(name, pretrained=False)
        counts = count_params(model), count_flops(model), model.input.shape[1]
    keras.backend.clear_session()
    return counts


def _probabilities(model, batch):
    import numpy as np

    outputs = np.asarray(model.predict(batch, verbose=0), "float64")
    activation = getattr(model.layers[-1], "activation", None)
    if getattr(activation, "__name__", "") != "softmax":  # trained models end in logits
        outputs = np.exp(outputs - outputs.max(-1, keepdims=True))
        outputs /= outputs.sum(-1, keepdims=True)
    return outputs


def predict(images, model_name, weights="imagenet", checkpoint=None, top=5, out=None, errors=None):
    """Print the ``top`` classes with probabilities for each image: ImageNet's for pretrained
    builders and timm names, the run's own for a run directory or ``.keras`` file (as ``--model``
    or ``--weights``). An image that cannot be read is reported on ``errors`` (standard error) and
    the others are still classified. Returns the images that failed."""
    import numpy as np

    import keras_nfnets
    from keras_nfnets.preprocessing import preprocess_image

    out, errors = out or sys.stdout, errors or sys.stderr
    from keras_nfnets.model_sources import resolve_model

    model, names, transform, _ = resolve_model(model_name, weights, checkpoint)

    def prepare(path):
        return preprocess_image(path, transform=transform)

    prepared, failed = [], []
    for path in images:
        try:
            prepared.append((path, prepare(path)))
        except (OSError, ValueError) as error:
            failed.append((path, error))
    if prepared:
        batch = np.stack([image for _, image in prepared])
        if names is not None:  # a trained run: its own classes
            probabilities = _probabilities(model, batch)
            rows = [[(None, names[i], float(row[i])) for i in np.argsort(row)[::-1][:top]] for row in probabilities]
        else:
            rows = keras_nfnets.decode_predictions(np.asarray(model.predict(batch, verbose=0)), top=top)
        for (path, _), row in zip(prepared, rows):
            print(f"{path}:", file=out)
            for rank, (wnid, name, score) in enumerate(row, start=1):
                print(f"  {rank}. {name:<28} {score:7.2%}" + (f"  ({wnid})" if wnid else ""), file=out)
    for path, error in failed:
        print(f"nfnets predict: skipped {path}: {error}", file=errors)
    return [path for path, _ in failed]


CALIBRATION_IMAGES = 64  # images that calibrate a full-int8 TFLite model


def calibration_batches(model, transform, calibration=None, settings=None, count=CALIBRATION_IMAGES):
    """``(batches, description)`` for int8 calibration: the images of the folder ``calibration``
    (any depth), else a trained run's own training images (``settings`` from its run.json), else
    synthetic ImageNet-normalised images; each prepared by ``transform`` (the model's evaluation)."""
    import os

    import numpy as np

    from keras_nfnets import data
    from keras_nfnets.export import sample_images
    from keras_nfnets.preprocessing import preprocess_image

    if calibration is not None:
        if not os.path.isdir(calibration):
            raise NotADirectoryError(f"`calibration` {calibration!r} is not a folder of images.")
        files = sorted(os.path.join(root, f) for root, _, names in os.walk(calibration) for f in names
                       if f.lower().endswith(data.sources.IMAGE_EXTENSIONS))[:count]
        if not files:
            raise ValueError(f"`calibration` {calibration!r} holds no {'/'.join(data.sources.IMAGE_EXTENSIONS)} files.")
        images = np.stack([preprocess_image(f, transform=transform) for f in files])
        return [images], f"{len(files)} images from {calibration}"
    if settings and settings.get("dataset"):
        source = data.load_source(settings["dataset"], "train")
        images = np.stack([transform(image).numpy() for image, _ in source.dataset.take(count)])
        return [images], f"{len(images)} images of the run's training data ({settings['dataset']}, train split)"
    size = model.input.shape[1]
    return [sample_images(8, size, seed=2)], ("8 synthetic ImageNet-normalised images (pass --calibration DIR to "
                                               "calibrate on real images)")


def export(model_name, output, fmt, weights=None, quantization=None, image_size=None, calibration=None, out=None):
    """Fold and export ``model_name``, then print the artifact's parity with the Keras model. A
    full-int8 TFLite export says which images calibrated it (see :func:`calibration_batches`)."""
    from keras_nfnets import export as exporting

    out = out or sys.stdout
    if quantization is not None and fmt != "tflite":
        raise ValueError("`quantization` applies only to `format` tflite")
    if calibration is not None and quantization != "int8":
        raise ValueError("`calibration` images calibrate a full-int8 model: use it with `quantization` int8")
    exporting.check_export_target(output, fmt)  # missing packages or a bad path fail before any work
    from keras_nfnets.model_sources import resolve_model

    model, _, transform, settings = resolve_model(model_name, weights, image_size=image_size)
    size = model.input.shape[1]
    samples = exporting.sample_images(8, size, seed=1)
    if fmt == "saved_model":
        exporting.export_saved_model(model, output)
    elif fmt == "tflite":
        batches = None
        if quantization == "int8":
            batches, used = calibration_batches(model, transform, calibration, settings)
            print(f"int8 calibration: {used}", file=out)
        ops = exporting.export_tflite(model, output, quantization=quantization, representative_data=batches)
        print(f"TFLite ops (all built-in): {', '.join(sorted(ops))}", file=out)
    else:
        exporting.export_onnx(model, output)
    check = exporting.verify_export(model, output, samples)
    print(
        f"{model_name} -> {output} ({fmt}{', ' + quantization if quantization else ''}): "
        f"max |diff| {check['max_abs_diff']:.3g} ({check['relative_diff']:.3g} of the output scale), "
        f"top-1 agreement {check.get('top1_agreement', float('nan')):.0%} on {len(samples)} sample images",
        file=out,
    )
    if not check["informative"]:
        from keras_nfnets.weights.presets import checkpoint_for

        pretrained = "`--weights imagenet` or " if checkpoint_for(model_name) is not None else ""
        print("warning: the model's outputs do not depend on its input (random weights with a zero-initialised "
              f"classifier), so this check proves nothing; export with {pretrained}a trained .weights.h5 file or run "
              "directory (`--weights`) to check parity.", file=out)
    return check


def spp_figure(number, output, depth=None, image_size=None, batch_size=None, out=None):
    """Regenerate the paper's SPP figure ``number`` into ``output`` and print its summary."""
    from keras_nfnets._files import check_new_path
    from keras_nfnets.spp import figure

    out = out or sys.stdout
    check_new_path(output)  # before minutes of statistics, not after
    given = {k: v for k, v in dict(depth=depth, image_size=image_size, batch_size=batch_size).items() if v is not None}
    results = figure(number, output, **given)  # the others: spp.FIGURE_DEFAULTS
    for result in results:
        print(
            f"{result.name}: {len(result.block_names)} blocks; last block avg sq mean {result.avg_sq_mean[-1]:.3g}, "
            f"avg var {result.avg_var[-1]:.3g}; mean residual var {result.residual_avg_var.mean():.3g}",
            file=out,
        )
    print(f"wrote {output}", file=out)


def _number_or_off(text):
    """argparse type: ``0``/``off``/``none`` → ``None`` (off), ``paper`` → keep the recipe's, else a
    positive number."""
    if text == "paper":
        return "paper"
    if text.lower() in ("0", "off", "none"):
        return None
    try:
        return _positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive number, 'off' or 'paper', got {text!r}") from None


def _randaugment(text):
    """argparse type: ``paper``, ``off`` or ``LAYERS,MAGNITUDE`` (layers >= 1, magnitude >= 0)."""
    if text in ("paper", "off"):
        return None if text == "off" else text
    try:
        layers, magnitude = text.split(",")
        layers, magnitude = int(layers), float(magnitude)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAYERS,MAGNITUDE (e.g. 4,5), 'paper' or 'off', got {text!r}") \
            from None
    if layers < 1 or not magnitude >= 0:
        raise argparse.ArgumentTypeError(f"needs LAYERS >= 1 and MAGNITUDE >= 0, got {text!r}")
    return layers, magnitude


def _positive_int(text):
    """argparse type: an integer >= 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def models_command(args):
    models_table(args.names, markdown=args.markdown)
    return 0


def predict_command(args):
    """Exit status 0, or 1 when some images could not be read (the others are printed)."""
    failed = predict(args.images, args.model, weights=args.weights, checkpoint=args.checkpoint, top=args.top)
    return 1 if failed else 0


def export_command(args):
    export(args.model, args.output, args.fmt, weights=args.weights, quantization=args.quantization,
           image_size=args.image_size, calibration=args.calibration)
    return 0


def preset_command(args, out=None):
    """Write a keras-hub preset (:func:`keras_nfnets.save_preset`)."""
    from keras_nfnets.kerashub import save_preset

    weights = None if args.weights == "none" else args.weights
    directory = save_preset(args.model, args.directory, weights=weights, checkpoint=args.checkpoint,
                            overwrite=args.overwrite)
    print(f"keras-hub preset of {args.model} written to {directory}; load it with "
          f"keras_hub.models.ImageClassifier.from_preset({directory!r}) after `import keras_nfnets`.",
          file=out or sys.stdout)
    return 0


def spp_command(args):
    spp_figure(args.figure, args.output, depth=args.depth, image_size=args.image_size, batch_size=args.batch_size)
    return 0


def train_command(args, out=None):
    """Run :func:`keras_nfnets.training.train` and print the test metrics and throughput."""
    from keras_nfnets.training import train

    out = out or sys.stdout
    result = train(
        args.model, args.dataset, epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size,
        weights=args.weights, strategy=args.strategy, precision=args.precision, output_dir=args.output_dir,
        seed=args.seed, learning_rate=args.learning_rate, clip_factor=args.clip_factor, ema=args.ema,
        augment=args.augment, randaugment=args.randaugment, steps_per_epoch=args.steps_per_epoch, data_dir=args.data_dir,
        manual_dir=args.manual_dir, tpu=args.tpu, resume=not args.restart,
        jit_compile={"true": True, "false": False}.get(args.jit_compile, args.jit_compile),
        verbose=args.progress if args.progress == "auto" else int(args.progress),
    )
    print(result.settings["recipe"], file=out)
    if result.stopped:
        print(result.stopped, file=out)
        return 1
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    speed = f"{result.images_per_second:.1f} images/s" if result.images_per_second else "n/a"
    if result.settings.get("compute"):
        speed += f" ({result.settings['compute']})"
    print(f"{args.model} on {args.dataset} ({result.settings['eval_split']} split): {metrics} (loss: cross-entropy "
          f"with label smoothing {result.settings.get('label_smoothing', 0):g}); "
          f"training throughput {speed}; saved to {result.output_dir}/model.keras", file=out)
    return 0


def evaluate_command(args):
    from keras_nfnets.training import evaluate

    result = evaluate(args.model, args.dataset, split=args.split, image_size=args.image_size,
                      batch_size=args.batch_size, data_dir=args.data_dir)
    print(f"{result['dataset']} {result['split']} ({result['examples']} images, {result['image_size']} px): "
          + ", ".join(f"{k} {result[k]:.4f}" for k in ("accuracy", "top5", "loss") if k in result)
          + f" (loss: cross-entropy with label smoothing {result['label_smoothing']:g}, as in training)")
    return 0


def build_parser():
    """The ``nfnets`` argument parser: one sub-command per task, each with its handler as ``func``."""
    from keras_nfnets.export.formats import FORMATS, QUANTIZATIONS
    from keras_nfnets.spp import FIGURE_DEFAULTS, FIGURES
    from keras_nfnets.training.options import (AUGMENT_CHOICES, DEFAULT_DATASET, DEFAULT_MODEL, JIT_COMPILE,
                                               PRECISIONS, STRATEGIES)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines (hidden by default)")
    parser = argparse.ArgumentParser(prog="nfnets", description="Normalizer-Free networks for Keras 3.")
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
    exp.add_argument("--calibration", default=None, metavar="DIR",
                     help="--quantization int8: calibrate on the images in DIR (default: a trained run's own "
                          "training images, else synthetic images; the command says which)")
    exp.set_defaults(func=export_command)

    pre = commands.add_parser("preset", parents=[common],
                              help="write a keras-hub preset (ImageClassifier.from_preset loads it)")
    pre.add_argument("model", help="builder name (NFNetF0), timm name (dm_nfnet_f0), run directory or .keras file")
    pre.add_argument("directory", help="the preset directory to write (new or empty; see --overwrite)")
    pre.add_argument("--weights", default="imagenet",
                     help="builders: imagenet (default), none or a .weights.h5 file")
    pre.add_argument("--checkpoint", default=None, help="for timm names: a .safetensors/.pth file (default: the Hub)")
    pre.add_argument("--overwrite", action="store_true", help="replace the NF preset already in DIRECTORY")
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
    tr.add_argument("--model", default=DEFAULT_MODEL, help="builder name (default %(default)s)")
    tr.add_argument("--dataset", default=DEFAULT_DATASET,
                    help="digits (embedded), an image folder (class sub-folders), or a TFDS name, e.g. imagenet2012")
    tr.add_argument("--data-dir", default=None, help="TFDS data directory")
    tr.add_argument("--manual-dir", default=None, help="folder holding ILSVRC2012_img_{train,val}.tar for imagenet2012")
    tr.add_argument("--epochs", type=_positive_int, default=None, help="default: digits 15, else the paper's")
    tr.add_argument("--batch-size", type=_positive_int, default=None, help="global batch (default: digits 48, else the paper's)")
    tr.add_argument("--image-size", type=_positive_int, default=None, help="training resolution (default: the model's)")
    tr.add_argument("--weights", default=None, help="imagenet (fine-tune) or a .weights.h5 file (default: random)")
    tr.add_argument("--strategy", choices=STRATEGIES, default="auto", help="tf.distribute strategy (default auto)")
    tr.add_argument("--tpu", default=None, help="TPU name or address for --strategy tpu")
    tr.add_argument("--cluster-timeout", type=_positive_float, default=None, metavar="SECONDS",
                    help="--strategy multi_worker: how long to wait for every worker of TF_CONFIG to join (default 300; "
                         "KERAS_NFNETS_CLUSTER_TIMEOUT)")
    tr.add_argument("--precision", choices=PRECISIONS, default="float32", help="Keras dtype policy (default float32)")
    tr.add_argument("--jit-compile", choices=[str(c).lower() for c in JIT_COMPILE], default="auto",
                    help="compile each training step with XLA (default auto: Keras' rule, always on a TPU)")
    tr.add_argument("--learning-rate", type=_positive_float, default=None, help="peak LR (default: paper's, scaled by batch)")
    tr.add_argument("--clip-factor", type=_number_or_off, default="paper", help="AGC λ, 'off', or 'paper' (default)")
    tr.add_argument("--ema", type=_number_or_off, default="paper", help="EMA decay, 'off', or 'paper' (default)")
    tr.add_argument("--augment", choices=AUGMENT_CHOICES, default=AUGMENT_CHOICES[0],
                    help="CutMix/MixUp/RandAugment: the recipe's (default; none on digits), paper, none")
    tr.add_argument("--randaugment", type=_randaugment, default="paper", metavar="LAYERS,MAGNITUDE",
                    help="RandAugment when augmenting: 'paper' (the recipe's, e.g. 4,5 for NFNetF0), 'off', or "
                         "LAYERS,MAGNITUDE (DeepMind's 0-10 scale; above 10 extrapolates)")
    tr.add_argument("--steps-per-epoch", type=_positive_int, default=None, help="cap steps per epoch (quick runs)")
    tr.add_argument("--output-dir", default=None, help="default runs/<model>_<dataset>")
    tr.add_argument("--seed", type=int, default=0, help="seed of data order, crops and initialisation (default 0)")
    tr.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    tr.add_argument("--progress", choices=["auto", "0", "1", "2"], default="auto",
                    help="Keras progress output: 1 a bar, 2 a line per epoch, 0 none; auto (default): a bar on a "
                         "terminal, a line per epoch when the output goes to a file or pipe")
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

    from keras_nfnets import launch

    la = commands.add_parser("launch", parents=[common],
                             help="run a multi-worker cluster on this machine: nfnets launch --workers 2 -- train ...")
    launch.add_arguments(la)
    la.set_defaults(func=launch.run_from_arguments)
    parser.subcommands = dict(models=models, predict=pred, export=exp, preset=pre, spp=spp, train=tr, evaluate=ev, launch=la)
    return parser


# Python arguments whose command-line form is not ``--name value``.
_CALL_FLAGS = {"resume=False": "--restart", "weights=None": "--weights none", "model_name": "--model",
               "randaugment=None": "--randaugment off", "jit_compile=True": "--jit-compile true",
               "jit_compile=False": "--jit-compile false", 'jit_compile="auto"': "--jit-compile auto",
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
        from keras_nfnets.models.variants import VARIANTS

        return any(name not in VARIANTS for name in args.names)
    return args.command in _TENSORFLOW_COMMANDS


def main(argv=None):
    """Run one sub-command. Errors end in one line naming the fix (``--verbose`` shows the
    traceback); Ctrl-C ends quietly after the command's own message (exit 130).

    ``argv=None`` means this process is the ``nfnets`` program (the console script or ``python -m
    keras_nfnets.cli``): TensorFlow then starts quietly unless ``--verbose`` or
    ``TF_CPP_MIN_LOG_LEVEL`` asks for its logs. A list of arguments (a call from Python) runs the
    command in this process as it is, leaving standard error and the environment alone."""
    from keras_nfnets import _startup, messages

    is_program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if is_program:
        _startup.report_fatal_errors()
    if getattr(args, "cluster_timeout", None) is not None:  # read where the strategy is made (the quiet start)
        from keras_nfnets.backend.cluster import TIMEOUT_VARIABLE

        os.environ[TIMEOUT_VARIABLE] = repr(args.cluster_timeout)
    try:
        if is_program and _needs_tensorflow(args) and not _startup.wants_tensorflow_logs(argv):
            _startup.quiet_tensorflow_start(strategy=getattr(args, "strategy", None))
        with messages.translated(lambda message: as_flags(message, parser.subcommands[args.command])):
            return args.func(args)
    except KeyboardInterrupt:
        if args.verbose:
            raise
        return 130
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


if __name__ == "__main__":
    sys.exit(main())
