"""The ``nfnets`` sub-commands: each parses nothing and calls the library (``*_command(args)``
is the parser's handler of one sub-command)."""

import sys


def models_table(names=None, out=None, markdown=False):
    """Print every variant (or ``names``): parameters, FLOPs at its test size (multiply-adds, as the
    papers count them), image sizes and the ImageNet checkpoint; ``markdown`` prints the README's table.
    Builders come from the stored counts (no TensorFlow); timm names are built (shapes only)."""
    out = out or sys.stdout
    from keras_nfnets.models.counts import COUNTS
    from keras_nfnets.registry import builders, checkpoint_for, image_sizes, resolve

    names = list(builders()) if not names else names
    for name in names:
        resolve(name)  # an unknown name: the error lists the close ones
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
        train_size, size = image_sizes(name)
        params, flops = COUNTS[name] if name in COUNTS else _built_counts(name)
        tag = checkpoint.tag if checkpoint else None
        if markdown:
            weights = f"`{tag}` {checkpoint.top1:.2f}%" if tag else "—"
            print(f"| {name} | {params / 1e6:.3f} | {flops / 1e9:.3f} | {train_size} | {size} | {weights} |",
                  file=out, flush=True)
        else:
            weights = f"{tag} ({checkpoint.top1:.2f}%)" if tag else "-"
            print(f"{name:<{width}} {params / 1e6:>11.3f} {flops / 1e9:>10.3f} {train_size:>9} {size:>8}  {weights}",
                  file=out, flush=True)


def _built_counts(name):
    """``(parameters, FLOPs)`` of ``name`` (a timm name, or a builder without a stored row) at its
    test size, from a shapes-only build (variables created in a StatelessScope are never initialised)."""
    import keras

    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.models.summary import count_flops, count_params
    from keras_nfnets.weights.hub import from_timm

    with keras.StatelessScope(initialize_variables=False):
        model = BUILDERS[name](weights=None) if name in BUILDERS else from_timm(name, pretrained=False)
        counts = count_params(model), count_flops(model)
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


VERIFICATION_IMAGES = 512  # at most, of a run's held-out split


def verification_images(model, transform, settings, count=VERIFICATION_IMAGES, out=None):
    """``(images, labels or None, description)`` to check an export on: a trained run's own
    held-out images (its evaluation split, prepared as it evaluates them), else synthetic
    ImageNet-normalised images, which suit a model with ImageNet weights (not a digits model)."""
    import numpy as np

    from keras_nfnets import data
    from keras_nfnets.export import sample_images

    if settings and settings.get("dataset"):
        split = settings.get("eval_split") or "test"
        try:
            pairs = list(data.load_source(settings["dataset"], split).dataset.take(count))
        except Exception as error:  # e.g. ImageNet, whose files the run's machine had
            print(f"note: the run's {split} split of {settings['dataset']} cannot be read here ({error}); "
                  "checking on synthetic images instead.", file=out or sys.stdout)
        else:
            images = np.stack([transform(image).numpy() for image, _ in pairs])
            labels = np.array([int(label) for _, label in pairs])
            return images, labels, f"the run's {len(images)} held-out images ({settings['dataset']}, {split} split)"
    return sample_images(16, model.input.shape[1], seed=1), None, "16 synthetic ImageNet-normalised images"


class ExportCheckError(RuntimeError):
    """An exported file disagrees with its Keras model (nothing was written)."""


def export(model_name, output, fmt, weights=None, quantization=None, image_size=None, calibration=None, out=None,
           verify=True):
    """Fold and export ``model_name`` to a hidden file beside ``output``, check it against the
    Keras model on :func:`verification_images` and move it into place only if it agrees (top-1
    agreement at least ``export.AGREEMENT_BOUNDS[quantization]``); otherwise remove it and raise
    :class:`ExportCheckError` with what to try. ``verify=False`` (``--no-verify``) skips the check.
    A full-int8 TFLite export says which images calibrated it (see :func:`calibration_batches`)."""
    import os
    import shutil

    from keras_nfnets import export as exporting

    out = out or sys.stdout
    if quantization is not None and fmt != "tflite":
        raise ValueError("`quantization` applies only to `format` tflite")
    if calibration is not None and quantization != "int8":
        raise ValueError("`calibration` images calibrate a full-int8 model: use it with `quantization` int8")
    exporting.check_export_target(output, fmt)  # missing packages or a bad path fail before any work
    from keras_nfnets.model_sources import resolve_model

    model, _, transform, settings = resolve_model(model_name, weights, image_size=image_size)
    folder, name = os.path.split(os.path.abspath(output))
    partial = os.path.join(folder, f".{name}.unverified-{os.getpid()}" + os.path.splitext(name)[1])
    try:
        if fmt == "saved_model":
            exporting.export_saved_model(model, partial)
        elif fmt == "tflite":
            batches = None
            if quantization == "int8":
                batches, used = calibration_batches(model, transform, calibration, settings)
                print(f"int8 calibration: {used}", file=out)
            ops = exporting.export_tflite(model, partial, quantization=quantization, representative_data=batches)
            print(f"TFLite ops (all built-in): {', '.join(sorted(ops))}", file=out)
        else:
            exporting.export_onnx(model, partial)
        check = _check_export(model, model_name, output, partial, fmt, quantization, transform, settings, out) \
            if verify else {"verified": False}
        os.rename(partial, output)
    finally:
        if os.path.isdir(partial):
            shutil.rmtree(partial)
        elif os.path.lexists(partial):
            os.remove(partial)
    if not verify:
        print(f"{model_name} -> {output} ({fmt}{', ' + quantization if quantization else ''}), not verified "
              "(--no-verify)", file=out)
    return check


def _check_export(model, model_name, output, partial, fmt, quantization, transform, settings, out):
    from keras_nfnets import export as exporting

    images, labels, described = verification_images(model, transform, settings, out=out)
    check = exporting.verify_export(model, partial, images, labels=labels, quantization=quantization)
    kind = f"{fmt}{', ' + quantization if quantization else ''}"
    line = (f"{model_name} -> {output} ({kind}) on {described}: "
            f"top-1 agreement with Keras {check.get('top1_agreement', float('nan')):.1%} "
            f"(at least {check['agreement_bound']:.0%} needed), largest difference {check['max_abs_diff']:.3g} "
            f"({check['relative_diff']:.3g} of the output scale)")
    if "keras_accuracy" in check:
        line += f"; accuracy {check['exported_accuracy']:.2%} exported, {check['keras_accuracy']:.2%} in Keras"
    print(line, file=out)
    if not check["informative"]:
        from keras_nfnets.weights.presets import checkpoint_for

        pretrained = "`--weights imagenet` or " if checkpoint_for(model_name) is not None else ""
        print("warning: the model's outputs do not depend on its input (random weights with a zero-initialised "
              f"classifier), so this check proves nothing; export with {pretrained}a trained .weights.h5 file or run "
              "directory (`--weights`) to check parity.", file=out)
    elif not check["passed"]:
        advice = {"int8": "try `--quantization dynamic` or `float16`, or calibrate on more of your own images "
                          "(`--calibration DIR`)",
                  "dynamic": "try `--quantization float16` or none"}.get(
            quantization, "this is a bug in keras_nfnets' export: please report it with the model")
        raise ExportCheckError(f"the exported {kind} file agrees with the Keras model on only "
                               f"{check['top1_agreement']:.1%} of {described} (at least "
                               f"{check['agreement_bound']:.0%} needed), so nothing was written to {output}: {advice}; "
                               "`--no-verify` writes it unchecked.")
    check["verified"] = True
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


def models_command(args):
    models_table(args.names, markdown=args.markdown)
    return 0


def predict_command(args):
    """Exit status 0, or 1 when some images could not be read (the others are printed)."""
    failed = predict(args.images, args.model, weights=args.weights, checkpoint=args.checkpoint, top=args.top)
    return 1 if failed else 0


def export_command(args):
    export(args.model, args.output, args.fmt, weights=args.weights, quantization=args.quantization,
           image_size=args.image_size, calibration=args.calibration, verify=not args.no_verify)
    return 0


def preset_command(args, out=None):
    """Write a keras-hub preset (:func:`keras_nfnets.save_preset`)."""
    from keras_nfnets.kerashub import save_preset

    weights = None if args.weights == "none" else args.weights
    directory = save_preset(args.model, args.directory, weights=weights, checkpoint=args.checkpoint,
                            overwrite=args.overwrite, write_model_card=not args.no_model_card)
    print(f"keras-hub preset of {args.model} written to {directory}; load it with "
          f"keras_hub.models.ImageClassifier.from_preset({directory!r}) after `import keras_nfnets`.",
          file=out or sys.stdout)
    return 0


def spp_command(args):
    spp_figure(args.figure, args.output, depth=args.depth, image_size=args.image_size, batch_size=args.batch_size)
    return 0


def train_command(args, out=None):
    """Run :func:`keras_nfnets.training.train` and print the test metrics and throughput."""
    from keras_nfnets.training import TrainConfig, run_training

    out = out or sys.stdout
    config = TrainConfig.from_arguments(args)  # one flag per field
    result = run_training(config, getattr(args, "distribution", None))  # the strategy the quiet start made, if any
    print(result.settings["recipe"], file=out)
    if result.stopped:
        print(result.stopped, file=out)
        return 1
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    speed = f"{result.images_per_second:.1f} images/s" if result.images_per_second else "n/a"
    if result.settings.get("compute"):
        speed += f" ({result.settings['compute']})"
    print(f"{config.model_name} on {config.dataset} ({result.settings['eval_split']} split): {metrics} (loss: cross-entropy "
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
