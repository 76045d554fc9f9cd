"""Training throughput of ``model.fit`` (images/second), measured in one run:

1. ``nfnets train`` on the embedded digits (the default NFResNet14 run), and that input
   pipeline alone;
2. a synthetic ImageNet-shaped ``fit`` (batch 16, 192 px): NFRegNetB0 with the paper's recipe
   (SGD + AGC + EMA) against ``keras.applications.EfficientNetB0`` with plain Nesterov SGD, fed
   from memory; and the paper's ImageNet training pipeline alone (Inception crop, flip, bicubic
   resize, normalise; from decoded 320×256 images) on the same cores,
then says whether the input pipeline or the model is the bottleneck.

    python tools/benchmark_fit.py [--steps 20] [--batch-size 16] [--image-size 192]
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pipeline_rate(dataset, batches, batch_size):
    iterator = iter(dataset)
    next(iterator)  # tracing and buffers
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def fit_rate(model, optimizer, callbacks, batch_size, image_size, steps, warmup=3):
    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, image_size, image_size, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 1000, batch_size), 1000)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    from timing import step_timer

    times = []
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=list(callbacks) + [step_timer(times)],
              verbose=0)
    timed = sorted(times[warmup:])
    return batch_size / timed[len(timed) // 2]  # median step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--digits-epochs", type=int, default=3)
    args = parser.parse_args()
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_nfnets
    from keras_nfnets import data
    from keras_nfnets.training import recipe, train
    from keras_nfnets.training.run import DATASET_DEFAULTS

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU threads, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    # 1. digits
    with tempfile.TemporaryDirectory() as run_dir:
        run = train(epochs=args.digits_epochs, output_dir=run_dir, verbose=0, tensorboard=False)
    digits = DATASET_DEFAULTS["digits"]
    source = data.load_source("digits", "train")
    digits_pipeline = pipeline_rate(
        data.train_dataset(source, 32, 64, epochs=50, seed=0, flip=False, area_range=digits["area_range"],
                           mean=digits["mean"], std=digits["std"]), 60, 64)
    print(f"digits, nfnets train (NFResNet14, batch 64, 32 px): {run.images_per_second:8.1f} images/s; "
          f"input pipeline alone {digits_pipeline:8.1f} images/s -> "
          f"{'input pipeline' if digits_pipeline < 1.5 * run.images_per_second else 'model'} bound")

    # 2. synthetic ImageNet-shaped fit
    b, s = args.batch_size, args.image_size
    keras.utils.set_random_seed(0)
    nf = keras_nfnets.NFRegNetB0(input_shape=(s, s, 3), classifier_activation=None)
    plan = recipe("NFRegNetB0", b, 1, args.steps + 3, clip_factor=0.01)
    nf_rate = fit_rate(nf, plan.optimizer, plan.callbacks, b, s, args.steps)
    del nf
    keras.backend.clear_session()
    effnet = keras.applications.EfficientNetB0(weights=None, input_shape=(s, s, 3), classifier_activation=None)
    eff_rate = fit_rate(effnet, keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), [], b, s, args.steps)
    del effnet
    keras.backend.clear_session()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 256, 320, 3), dtype=np.uint8)
    fake = data.Source("synthetic", "train", tf.data.Dataset.from_tensor_slices((images, np.zeros(64, "int64"))),
                       64, 1000, ("x",) * 1000, lookup=lambda i: (tf.gather(images, i), tf.constant(0, tf.int64)))
    imagenet_pipeline = pipeline_rate(data.train_dataset(fake, s, b, epochs=100, seed=0), 30, b)
    print(f"synthetic ImageNet-shaped fit (batch {b}, {s} px, median step of {args.steps}):")
    print(f"  NFRegNetB0 (SGD + AGC + EMA) {nf_rate:8.1f} images/s")
    print(f"  EfficientNetB0 (SGD)          {eff_rate:8.1f} images/s")
    print(f"  ratio NFRegNetB0 / EfficientNetB0: {nf_rate / eff_rate:.2f}x")
    print(f"  ImageNet training pipeline alone: {imagenet_pipeline:8.1f} images/s -> "
          f"{'input pipeline' if imagenet_pipeline < 1.5 * nf_rate else 'model'} bound for NFRegNetB0 on this machine")


if __name__ == "__main__":
    main()
