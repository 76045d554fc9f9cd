"""One SGD training step of NFRegNetB0 vs keras.applications.EfficientNetB0 (and timm's nf_regnet_b0).

All models are measured in the same run, on the same machine and thread count, and printed as
throughput ratios. Usage: python tools/benchmark_train.py [--batch-size 16] [--image-size 192]
[--threads 2] [--steps 10] [--warmup 3] [--cpu native|avx2] [--onednn default|on|off]

``--cpu avx2`` emulates a CPU without AVX-512 (TensorFlow's and PyTorch's oneDNN, XLA and ATen held
to AVX2 code, for timm too); ``--onednn`` sets ``TF_ENABLE_ONEDNN_OPTS`` (TensorFlow leaves oneDNN
off on such CPUs; keras_nfnets, imported first, turns it on).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from timing import add_cpu_arguments, describe_cpu, enter_cpu_kind, median_seconds  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timm-only", action="store_true", help=argparse.SUPPRESS)
    add_cpu_arguments(parser)
    return parser.parse_args()


def time_keras(model, args):
    import keras
    import numpy as np

    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, args.image_size, args.image_size, 3)).astype("float32")
    y = rng.integers(0, 1000, (args.batch_size,))
    return median_seconds(lambda: model.train_on_batch(x, y), args.steps, args.warmup)


def time_timm(args):
    import timm
    import torch

    torch.set_num_threads(args.threads)
    model = timm.create_model("nf_regnet_b0", num_classes=1000)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.randint(0, 1000, (args.batch_size,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return median_seconds(step, args.steps, args.warmup)


def time_timm_in_subprocess(args):
    """timm in its own interpreter: importing it after TensorFlow crashes (triton), and the two
    frameworks' thread pools would compete."""
    import subprocess
    import sys

    command = [sys.executable, __file__, "--timm-only", "--batch-size", str(args.batch_size),
               "--image-size", str(args.image_size), "--threads", str(args.threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return float(result.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.timm_only:
        print(time_timm(args))
        return
    enter_cpu_kind(args)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    import keras_nfnets

    shape = (args.image_size, args.image_size, 3)
    results = {}
    results["keras_nfnets NFRegNetB0"] = time_keras(keras_nfnets.NFRegNetB0(input_shape=shape), args)
    keras.backend.clear_session()
    results["keras EfficientNetB0"] = time_keras(
        keras.applications.EfficientNetB0(weights=None, input_shape=shape), args
    )
    keras.backend.clear_session()
    timm_seconds = time_timm_in_subprocess(args)
    if timm_seconds is None:
        print("(timm/torch not installed or failed: skipping the timm comparison)")
    else:
        results["timm nf_regnet_b0"] = timm_seconds

    from keras_nfnets import backend

    print(f"\nTraining step, batch {args.batch_size}, {args.image_size}px, {args.threads} threads, SGD+momentum")
    print(f"  CPU: {describe_cpu()}\n  ours: {backend.current().compute_description()}")
    ours = results["keras_nfnets NFRegNetB0"]
    for name, seconds in results.items():
        print(f"  {name:<26} {seconds * 1000:8.1f} ms/step  {args.batch_size / seconds:7.1f} img/s (median step)")
    for name, seconds in results.items():
        if name != "keras_nfnets NFRegNetB0":
            print(f"  NFRegNetB0 throughput / {name}: {seconds / ours:.2f}x")


if __name__ == "__main__":
    main()
