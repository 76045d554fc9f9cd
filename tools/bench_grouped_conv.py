"""Forward+backward time of keras_nfnets' grouped convolution against peers, in one run.

Compares, per shape: our grouped conv (the path ScaledWSConv2D takes, and the per-group split
fallback), a dense conv of the same shape, Keras 3's own grouped ``keras.ops.conv``, and
PyTorch's grouped ``nn.functional.conv2d`` when torch is installed (run in a subprocess:
torch and TensorFlow compete for threads, and importing timm/torch after TensorFlow can crash).
Prints milliseconds and ratios. Usage: python tools/bench_grouped_conv.py [--threads 2] [--repeats 10]
[--cpu native|avx2] [--onednn default|on|off] (``tools/benchmark_train.py`` explains the last two).
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from timing import add_cpu_arguments, describe_cpu, enter_cpu_kind, median_seconds  # noqa: E402

# (batch, height, width, channels, groups, kernel, stride): the shape, NF-RegNet and NFNet convs.
SHAPES = [
    (16, 24, 24, 184, 23, 3, 1),  # NF-RegNet-B1 stage 2 (timm widths), group width 8
    (16, 48, 48, 80, 10, 3, 1),   # NF-RegNet stage 1, group width 8
    (16, 12, 12, 736, 92, 3, 1),  # NF-RegNet stage 4, group width 8
    (8, 16, 16, 768, 6, 3, 1),    # NFNet stage 3, group width 128
    (16, 24, 24, 184, 23, 3, 2),  # strided transition conv
]


def time_torch(shape, threads, repeats):
    import torch

    torch.set_num_threads(threads)
    batch, height, width, channels, groups, kernel, stride = shape
    x = torch.randn(batch, channels, height, width, requires_grad=True)
    w = torch.randn(channels, channels // groups, kernel, kernel, requires_grad=True)

    def step():
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=kernel // 2, groups=groups)
        (y * y).sum().backward()

    return median_seconds(step, repeats)


def time_tensorflow(shape, repeats, keras_reference):
    import tensorflow as tf
    from keras import ops

    from keras_nfnets.layers import conv2d

    batch, height, width, channels, groups, kernel, stride = shape
    x = tf.random.normal((batch, height, width, channels))
    w = tf.Variable(tf.random.normal((kernel, kernel, channels // groups, channels)))
    w_dense = tf.Variable(tf.random.normal((kernel, kernel, channels, channels)))

    def make_step(conv, weights):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = conv(x, weights)
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, [x, weights])

        return lambda: [g.numpy() for g in step()]

    strides = (stride, stride)
    candidates = {
        "ours": (lambda a, b: conv2d(a, b, strides, "same", groups=groups), w),
        "ours_split": (lambda a, b: conv2d(a, b, strides, "same", groups=groups, implementation="split"), w),
        "dense": (lambda a, b: conv2d(a, b, strides, "same"), w_dense),
    }
    if keras_reference:
        candidates["keras_ops_conv"] = (lambda a, b: ops.conv(a, b, strides, "same"), w)
    return {
        name: median_seconds(make_step(conv, weights), repeats if name != "keras_ops_conv" else 3, warmup=1)
        for name, (conv, weights) in candidates.items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-keras", action="store_true", help="skip keras.ops.conv (seconds per step on CPU)")
    parser.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    add_cpu_arguments(parser)
    args = parser.parse_args()
    if not args.torch_only:
        enter_cpu_kind(args)

    if args.torch_only:
        print(json.dumps([time_torch(shape, args.threads, args.repeats) for shape in SHAPES]))
        return

    command = [sys.executable, __file__, "--torch-only", "--threads", str(args.threads), "--repeats", str(args.repeats)]
    result = subprocess.run(command, capture_output=True, text=True)
    torch_times = json.loads(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else None
    if torch_times is None:
        print("(torch not installed or failed: no PyTorch column)")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from keras_nfnets.layers import native_grouped_conv_supported

    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    path = "native TF Conv2D" if native_grouped_conv_supported(device) else "one conv per group"
    print(f"Grouped conv forward+backward, {args.threads} threads, {device}; our path here: {path}\nCPU: {describe_cpu()}")
    print(
        f"{'B,H,W,C,groups,k,stride':<26} {'ours ms':>8} {'split ms':>9} {'dense ms':>9} {'keras ms':>9} "
        f"{'torch ms':>9} {'ours/torch':>10} {'ours/dense':>10} {'keras/ours':>10}"
    )
    for i, shape in enumerate(SHAPES):
        t = time_tensorflow(shape, args.repeats, keras_reference=not args.skip_keras)
        torch_ms = torch_times[i] * 1000 if torch_times else float("nan")
        keras_ms = t.get("keras_ops_conv", float("nan")) * 1000
        print(
            f"{','.join(map(str, shape)):<26} {t['ours'] * 1000:>8.1f} {t['ours_split'] * 1000:>9.1f} "
            f"{t['dense'] * 1000:>9.1f} {keras_ms:>9.1f} {torch_ms:>9.1f} {t['ours'] * 1000 / torch_ms:>10.2f} "
            f"{t['ours'] / t['dense']:>10.2f} {keras_ms / (t['ours'] * 1000):>10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
