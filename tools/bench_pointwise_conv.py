"""A 1×1 convolution as TensorFlow's ``Conv2D`` against the same as one ``MatMul`` over the pixels,
forward + both gradients and the weight gradient alone, at NF-RegNet-B0 and NFNet-F0 shapes, in
float32 and bfloat16, in one run. This is the measurement behind keras_nfnets' choice of the
matrix product for 1×1 convolutions in 16 bits on a CPU (``backend/tf_conv.py``).

Usage: python tools/bench_pointwise_conv.py [--threads 2] [--repeats 15] [--cpu native|avx2]
[--onednn default|on|off]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from timing import add_cpu_arguments, describe_cpu, enter_cpu_kind, median_seconds  # noqa: E402

# (batch, height = width, in, out): NF-RegNet-B0 at batch 16 and NFNet-F0 at batch 8, 192 px
SHAPES = [(16, 96, 36, 32), (16, 12, 156, 344), (16, 6, 736, 330), (8, 48, 256, 128), (8, 24, 512, 1536),
          (8, 12, 1536, 768), (8, 6, 1536, 1536)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    add_cpu_arguments(parser)
    args = parser.parse_args()
    enter_cpu_kind(args)
    import tensorflow as tf

    import keras_nfnets  # noqa: F401  (oneDNN as the package runs it)

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    print(f"1×1 convolution, Conv2D vs MatMul, {args.threads} threads; {describe_cpu()}")
    print(f"{'dtype':9} {'shape (n, hw, in, out)':24} {'fwd+bwd conv':>13} {'matmul':>8} {'weight grad conv':>17} "
          f"{'matmul':>8}  (ms; TFLOP/s of the weight gradient)")
    for dtype in ("float32", "bfloat16"):
        totals = [0.0, 0.0]
        for n, hw, cin, cout in SHAPES:
            x = tf.cast(tf.random.normal((n, hw, hw, cin)), dtype)
            w = tf.cast(tf.random.normal((1, 1, cin, cout)), dtype)
            dy = tf.cast(tf.random.normal((n, hw, hw, cout)), dtype)

            def both(product):
                @tf.function
                def step(x, w):
                    with tf.GradientTape() as tape:
                        tape.watch([x, w])
                        y = product(x, w)
                    return tape.gradient(y, [x, w], output_gradients=dy)
                return step

            conv = both(lambda x, w: tf.nn.conv2d(x, w, 1, "VALID"))
            matmul = both(lambda x, w: tf.reshape(tf.matmul(tf.reshape(x, (-1, cin)), tf.reshape(w, (cin, cout))),
                                                  (n, hw, hw, cout)))
            conv_w = tf.function(lambda x: tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=[1, 1, cin, cout], out_backprop=dy, strides=[1, 1, 1, 1], padding="VALID"))
            matmul_w = tf.function(lambda x: tf.matmul(tf.reshape(x, (-1, cin)), tf.reshape(dy, (-1, cout)),
                                                       transpose_a=True))
            times = [median_seconds(lambda f=f: [t.numpy() for t in f(x, w)], args.repeats) for f in (conv, matmul)]
            times += [median_seconds(lambda f=f: f(x).numpy(), args.repeats) for f in (conv_w, matmul_w)]
            totals[0] += times[0]
            totals[1] += times[1]
            flops = 2 * n * hw * hw * cin * cout
            print(f"{dtype:9} {str((n, hw, cin, cout)):24} {times[0] * 1e3:13.2f} {times[1] * 1e3:8.2f} "
                  f"{times[2] * 1e3:8.2f} ({flops / times[2] / 1e12:.2f}) {times[3] * 1e3:8.2f} ({flops / times[3] / 1e12:.2f})")
        print(f"{dtype:9} all shapes, forward + both gradients: matmul {totals[0] / totals[1]:.2f}x faster than Conv2D")


if __name__ == "__main__":
    main()
