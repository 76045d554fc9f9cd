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

    from keras_nfnets.models import BUILDERS, count_flops, count_params

    names = list(BUILDERS) if not names else names
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise SystemExit(f"Unknown model(s): {', '.join(unknown)}. Available: {', '.join(BUILDERS)}")
    header = f"{'model':<13} {'params (M)':>11} {'FLOPs (B)':>10} {'train px':>9} {'test px':>8}"
    print(header, file=out)
    print("-" * len(header), file=out)
    for name in names:
        builder = BUILDERS[name]
        config = builder.config
        # Shapes only: variables created in a StatelessScope are never initialised.
        with keras.StatelessScope(initialize_variables=False):
            model = builder()  # built at its test size
            params, flops = count_params(model), count_flops(model)
        print(
            f"{name:<13} {params / 1e6:>11.3f} {flops / 1e9:>10.3f} {config.train_size:>9} {config.test_size:>8}",
            file=out,
            flush=True,
        )
        del model
        keras.backend.clear_session()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="nfnets", description="Normalizer-Free networks for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser(
        "models", help="list every variant with its parameters, FLOPs (multiply-adds at test size) and image sizes"
    )
    models.add_argument("names", nargs="*", help="variants to list (default: all)")
    args = parser.parse_args(argv)
    _quiet_tensorflow()
    if args.command == "models":
        models_table(args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
