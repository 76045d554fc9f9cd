"""Small-batch experiment (NF paper §5.1, Table 2) on the embedded digits.

Trains an NF-ResNet and the BatchNorm ResNetV2 baseline of the same depth at batch sizes 4, 8
and 64 with equal budgets (the same number of epochs, so more steps at smaller batches), the
paper's learning rates for those batches (0.01 at 4, 0.025 at 8; 0.1 per 256 at 64), no
stochastic depth or dropout (as Table 2), and prints the test accuracies.

    python tools/small_batch.py --epochs 6 --seeds 1
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PAPER_LR = {4: 0.01, 8: 0.025}


def run(family, batch_size, epochs, seed, depths, image_size=32):
    import keras

    from keras_nfnets import data
    from keras_nfnets.applications import BNResNetV2
    from keras_nfnets.models import build_nf_model, nf_resnet_config
    from keras_nfnets.training import recipe
    from keras_nfnets.training.run import DATASET_DEFAULTS

    keras.utils.set_random_seed(seed)
    digits = DATASET_DEFAULTS["digits"]
    train_source, test_source = data.load_source("digits", "train"), data.load_source("digits", "test")
    shape = (image_size, image_size, 3)
    if family == "nf":
        model = build_nf_model(nf_resnet_config(depths, drop_rate=0.0, stochastic_depth_rate=0.0), input_shape=shape,
                               classes=10, classifier_activation=None)
    else:
        model = BNResNetV2(depths, input_shape=shape, classes=10, classifier_activation=None)
    steps = train_source.num_examples // batch_size
    lr = PAPER_LR.get(batch_size, 0.1 * batch_size / 256)
    plan = recipe("nf_resnet" if family == "nf" else "bn_resnet", batch_size, epochs, steps, 10, learning_rate=lr)
    model.compile(optimizer=plan.optimizer, loss=plan.loss, metrics=plan.metrics)
    train_ds = data.train_dataset(train_source, image_size, batch_size, epochs=epochs, seed=seed, flip=False,
                                  area_range=digits["area_range"], mean=digits["mean"], std=digits["std"])
    test_ds = data.eval_dataset(test_source, data.EvalTransform(image_size, crop="resize", pil_resize=False,
                                                                mean=digits["mean"], std=digits["std"]), 64)
    model.fit(train_ds, epochs=epochs, steps_per_epoch=steps, callbacks=plan.callbacks, verbose=0)
    return model.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=1, help="runs per cell (median reported)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 64])
    parser.add_argument("--depths", type=int, nargs=4, default=[1, 1, 1, 1], help="blocks per stage (NF-ResNet-14)")
    args = parser.parse_args()
    import numpy as np

    print(f"digits (1,437 train / 360 test), {args.epochs} epochs per run, depths {args.depths}, "
          f"median of {args.seeds} seed(s); test top-1 (%)")
    print(f"{'batch':>6} {'lr':>8} {'NF-ResNet':>10} {'BN-ResNetV2':>12} {'seconds':>8}")
    for batch in args.batch_sizes:
        start = time.perf_counter()
        cells = {}
        for family in ("nf", "bn"):
            accuracies = [run(family, batch, args.epochs, seed, tuple(args.depths)) for seed in range(args.seeds)]
            cells[family] = 100 * float(np.median(accuracies))
        lr = PAPER_LR.get(batch, 0.1 * batch / 256)
        print(f"{batch:>6} {lr:>8.4g} {cells['nf']:>10.1f} {cells['bn']:>12.1f} {time.perf_counter() - start:>8.0f}",
              flush=True)


if __name__ == "__main__":
    main()
