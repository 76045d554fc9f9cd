"""The ``nfnets`` command line."""

import argparse
import os
import sys


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def models_table(names=None, out=None):
    """Print every variant (or ``names``) with parameters, FLOPs at its test size, and image sizes."""
    out = out or sys.stdout
    import keras

    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.models import count_flops, count_params

    names = list(BUILDERS) if not names else names
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise SystemExit(f"Unknown model(s): {', '.join(unknown)}. Available: {', '.join(BUILDERS)}")
    from keras_nfnets.weights.presets import CHECKPOINTS, IMAGENET_PRESETS

    header = f"{'model':<13} {'params (M)':>11} {'FLOPs (B)':>10} {'train px':>9} {'test px':>8}  imagenet checkpoint (top-1)"
    print(header, file=out)
    print("-" * len(header), file=out)
    for name in names:
        builder = BUILDERS[name]
        config = builder.config
        # Shapes only: variables created in a StatelessScope are never initialised.
        with keras.StatelessScope(initialize_variables=False):
            model = builder()  # built at its test size
            params, flops = count_params(model), count_flops(model)
        tag = IMAGENET_PRESETS.get(name)
        weights = f"{tag} ({CHECKPOINTS[tag].top1:.2f}%)" if tag else "-"
        print(
            f"{name:<13} {params / 1e6:>11.3f} {flops / 1e9:>10.3f} {config.train_size:>9} {config.test_size:>8}  {weights}",
            file=out,
            flush=True,
        )
        del model
        keras.backend.clear_session()


def predict(images, model_name, weights="imagenet", checkpoint=None, top=5, out=None):
    """Print the top-``top`` ImageNet classes with probabilities for each image."""
    import numpy as np

    import keras_nfnets
    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.preprocessing import preprocess_image

    out = out or sys.stdout
    if model_name in BUILDERS:
        if checkpoint is not None:
            raise SystemExit("--checkpoint is for timm model names; builders take --weights imagenet|FILE.weights.h5")
        model = BUILDERS[model_name](weights=None if weights == "none" else weights)
    elif model_name.split(".")[0] in keras_nfnets.TIMM_CONFIGS:
        model = keras_nfnets.from_timm(model_name, checkpoint=checkpoint)
    else:
        raise SystemExit(f"Unknown model {model_name!r}. Builders: {', '.join(BUILDERS)}; or a timm NF model name.")
    size = model.input.shape[1]
    batch = np.stack([preprocess_image(path, model_name, size=size) for path in images])
    probabilities = np.asarray(model.predict(batch, verbose=0))
    for path, row in zip(images, keras_nfnets.decode_predictions(probabilities, top=top)):
        print(f"{path}:", file=out)
        for rank, (wnid, name, score) in enumerate(row, start=1):
            print(f"  {rank}. {name:<28} {score:7.2%}  ({wnid})", file=out)


def export(model_name, output, fmt, weights=None, quantization=None, image_size=None, out=None):
    """Fold and export ``model_name``, then print the artifact's parity with the Keras model."""
    from keras_nfnets import export as exporting
    from keras_nfnets.applications import BUILDERS

    out = out or sys.stdout
    if model_name not in BUILDERS:
        raise SystemExit(f"Unknown model {model_name!r}. Available: {', '.join(BUILDERS)}")
    if quantization is not None and fmt != "tflite":
        raise SystemExit("--quantization applies only to --format tflite")
    kwargs = {} if image_size is None else {"input_shape": (image_size, image_size, 3)}
    model = BUILDERS[model_name](weights=weights, **kwargs)
    size = model.input.shape[1]
    samples = exporting.sample_images(8, size, seed=1)
    if fmt == "saved_model":
        exporting.export_saved_model(model, output)
    elif fmt == "tflite":
        calibration = [exporting.sample_images(8, size, seed=2)] if quantization == "int8" else None
        ops = exporting.export_tflite(model, output, quantization=quantization, representative_data=calibration)
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
    return check


def spp_figure(number, output, depth=600, image_size=512, batch_size=8, out=None):
    """Regenerate the paper's SPP figure ``number`` into ``output`` and print its summary."""
    from keras_nfnets.spp import figure

    out = out or sys.stdout
    results = figure(number, output, depth=depth, image_size=image_size, batch_size=batch_size)
    for result in results:
        print(
            f"{result.name}: {len(result.block_names)} blocks; last block avg sq mean {result.avg_sq_mean[-1]:.3g}, "
            f"avg var {result.avg_var[-1]:.3g}; mean residual var {result.residual_avg_var.mean():.3g}",
            file=out,
        )
    print(f"wrote {output}", file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="nfnets", description="Normalizer-Free networks for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser(
        "models",
        help="list every variant: parameters, FLOPs (multiply-adds at test size), image sizes, ImageNet checkpoint",
    )
    models.add_argument("names", nargs="*", help="variants to list (default: all)")
    pred = commands.add_parser("predict", help="classify images with a pretrained model (top-5 ImageNet classes)")
    pred.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    pred.add_argument("--model", default="NFRegNetB1", help="builder (NFRegNetB1, NFNetF0, ...) or timm name")
    pred.add_argument("--weights", default="imagenet", help="for builders: imagenet (default) or a .weights.h5 file")
    pred.add_argument("--checkpoint", default=None, help="for timm names: a .safetensors/.pth file (default: the Hub)")
    pred.add_argument("--top", type=int, default=5)
    exp = commands.add_parser("export", help="fold weight standardization and export to SavedModel, TFLite or ONNX")
    exp.add_argument("output", help="output path: a directory (saved_model), .tflite or .onnx file")
    exp.add_argument("--model", required=True, help="builder name, e.g. NFRegNetB0")
    exp.add_argument("--weights", default=None, help="imagenet or a .weights.h5 file (default: random init)")
    exp.add_argument("--format", dest="fmt", choices=["saved_model", "tflite", "onnx"], required=True)
    exp.add_argument("--quantization", choices=["float16", "dynamic", "int8"], default=None)
    exp.add_argument("--image-size", type=int, default=None, help="static input size (default: the model's)")
    spp = commands.add_parser("spp", help="regenerate one of the paper's Signal Propagation Plots")
    spp.add_argument("output", help="image file (.png, .pdf, .svg)")
    spp.add_argument("--figure", type=int, choices=[1, 2, 6, 7, 8, 9], required=True)
    spp.add_argument("--depth", type=int, default=600, help="conv layers of the ResNetV2 (default 600)")
    spp.add_argument("--image-size", type=int, default=512)
    spp.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    _quiet_tensorflow()
    if args.command == "models":
        models_table(args.names)
    elif args.command == "predict":
        predict(args.images, args.model, weights=args.weights, checkpoint=args.checkpoint, top=args.top)
    elif args.command == "spp":
        spp_figure(args.figure, args.output, depth=args.depth, image_size=args.image_size, batch_size=args.batch_size)
    elif args.command == "export":
        export(args.model, args.output, args.fmt, weights=args.weights, quantization=args.quantization,
               image_size=args.image_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
