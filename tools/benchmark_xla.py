"""What XLA-compiled training steps cost and gain on this machine (issue 23): ``model.fit`` of the
three families with the paper's optimizer (SGD + AGC + weight decay) and EMA, ``jit_compile=False``
against ``True``, in float32 and ``mixed_bfloat16``; the median step and the first step (trace +
compile) of each.

    python tools/benchmark_xla.py [--models NFResNet26,NFRegNetB0,NFNetF0] [--batch-size 16]
                                  [--image-size 128] [--steps 8]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def measure(name, jit_compile, precision, batch_size, image_size, steps):
    """(first step seconds, median step seconds) of ``fit`` for builder ``name``."""
    import keras
    import numpy as np

    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.training import SGDAGC, ExponentialMovingAverage, set_precision

    set_precision(precision)
    try:
        keras.utils.set_random_seed(0)
        model = BUILDERS[name](input_shape=(image_size, image_size, 3), classifier_activation=None)
        model.compile(SGDAGC(0.1, momentum=0.9, clip_factor=0.01, weight_decay=2e-5),
                      keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch_size * (steps + 1), image_size, image_size, 3)).astype("float32")
        y = keras.utils.to_categorical(rng.integers(0, 1000, len(x)), 1000)
        from timing import step_timer

        times = []
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                  callbacks=[ExponentialMovingAverage(0.999), step_timer(times)])
        assert model.jit_compile is jit_compile
        timed = sorted(times[1:])
        return times[0], timed[len(timed) // 2]
    finally:
        set_precision("float32")
        keras.backend.clear_session()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="NFResNet26,NFRegNetB0,NFNetF0")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU threads, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}; batch {args.batch_size}, {args.image_size} px, "
          f"median of {args.steps} steps after the first")
    print(f"{'model':12} {'precision':15} {'first step (s)':>22} {'median step (ms)':>24} {'XLA / plain':>12}")
    print(f"{'':12} {'':15} {'plain':>10} {'XLA':>11} {'plain':>11} {'XLA':>12}")
    for name in args.models.split(","):
        for precision in args.precisions.split(","):
            plain = measure(name, False, precision, args.batch_size, args.image_size, args.steps)
            xla = measure(name, True, precision, args.batch_size, args.image_size, args.steps)
            print(f"{name:12} {precision:15} {plain[0]:10.1f} {xla[0]:11.1f} {plain[1] * 1e3:11.0f} "
                  f"{xla[1] * 1e3:12.0f} {plain[1] / xla[1]:11.2f}x", flush=True)


if __name__ == "__main__":
    main()
