"""One NFRegNetB0 training step (SGD + Nesterov + AGC, batch 16, 192 px) on each Keras backend
— TensorFlow, JAX, PyTorch — next to timm's ``nf_regnet_b0`` (the same step, ``tools/benchmark_train.py``'s), all on the
same machine and thread count, each in its own process, printed as throughput ratios to timm.

On JAX Keras compiles the whole step (``train_on_batch`` is jitted); on PyTorch it runs eagerly;
on TensorFlow it is a ``tf.function`` with the package's fused kernels.

``--eager``: inference by calling the model, ``model(x, training=False)``, as a notebook does,
next to timm's ``model(x)`` under ``torch.no_grad()``: the model's build (``timm.create_model``
for timm), the first call (a fresh process; on JAX both compile) and the median of later ones.

    python tools/benchmark_backends.py [--eager] [--batch-size 16] [--image-size 192] [--threads 2]
                                       [--steps 10] [--warmup 3]
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax", "torch")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--eager", action="store_true", help="time eager inference calls instead of training steps")
    parser.add_argument("--only", choices=[*BACKENDS, "timm"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def thread_environment(threads):
    threads = str(threads)
    return dict(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads, OMP_NUM_THREADS=threads,
                MKL_NUM_THREADS=threads, TF_CPP_MIN_LOG_LEVEL="3",
                XLA_FLAGS=f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}")


def measure_keras(args):
    import time

    import keras
    import numpy as np

    from timing import median_seconds

    import keras_nfnets
    from keras_nfnets.training import SGDAGC

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = keras_nfnets.NFRegNetB0(input_shape=(args.image_size, args.image_size, 3), classifier_activation=None)
    built = time.perf_counter() - started
    if args.eager:
        x = np.random.default_rng(0).standard_normal((args.batch_size, args.image_size, args.image_size, 3))
        x = keras.ops.convert_to_tensor(x.astype("float32"))
        return f"{built} {first_and_median(lambda: keras.ops.convert_to_numpy(model(x, training=False)), args)}"
    model.compile(SGDAGC(0.01, momentum=0.9, clip_factor=0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, args.image_size, args.image_size, 3)).astype("float32")
    y = rng.integers(0, 1000, (args.batch_size,))
    return median_seconds(lambda: model.train_on_batch(x, y), args.steps, args.warmup)


def first_and_median(fn, args):
    """``"first later"``: the seconds of the first call and the median of the later ones."""
    import time

    from timing import median_seconds

    start = time.perf_counter()
    fn()
    return f"{time.perf_counter() - start} {median_seconds(fn, args.steps, args.warmup)}"


def time_timm_eager(args):
    import time

    import timm
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = timm.create_model("nf_regnet_b0", num_classes=1000).eval()
    built = time.perf_counter() - started
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)

    def forward():
        with torch.no_grad():
            return model(x).numpy()

    return f"{built} {first_and_median(forward, args)}"


def in_subprocess(args, which):
    command = [sys.executable, os.path.abspath(__file__), "--only", which, "--batch-size", str(args.batch_size),
               "--image-size", str(args.image_size), "--threads", str(args.threads), "--steps", str(args.steps),
               "--warmup", str(args.warmup)] + (["--eager"] if args.eager else [])
    path = os.pathsep.join(filter(None, [os.path.dirname(HERE), HERE, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, **thread_environment(args.threads))
    if which in BACKENDS:
        env["KERAS_BACKEND"] = which
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        print(f"{which}: failed\n{result.stderr[-2000:]}")
        return None
    return [float(value) for value in result.stdout.strip().splitlines()[-1].split()]


def report(args, seconds):
    """timm's line, then each backend's with its throughput ratio to timm's (the values' last
    entry: the training step's median, or the later eager calls' median)."""
    if args.eager:
        print(f"NFRegNetB0 eager inference, model(x), batch {args.batch_size}, {args.image_size} px, "
              f"{args.threads} threads: the build, the first call, then the median of {args.steps} after {args.warmup}")

        def line(value):
            return f"build {value[0]:6.2f} s, first call {value[1]:6.2f} s, then {value[2] * 1e3:8.1f} ms/call"
    else:
        print(f"NFRegNetB0 training step, batch {args.batch_size}, {args.image_size} px, {args.threads} threads, "
              f"median of {args.steps} after {args.warmup}")

        def line(value):
            return f"{value[0] * 1e3:8.1f} ms/step  {args.batch_size / value[0]:6.1f} img/s"
    timm = seconds.pop("timm")
    if timm:
        print(f"  timm nf_regnet_b0 (PyTorch)   {line(timm)}")
    for backend, value in seconds.items():
        if value is not None:
            ratio = f"  {timm[-1] / value[-1]:.2f}x timm's throughput" if timm else ""
            print(f"  keras_nfnets on {backend:<12} {line(value)}{ratio}")


def main():
    args = parse_args()
    if args.only:
        if args.only == "timm" and args.eager:
            print(time_timm_eager(args))
        elif args.only == "timm":
            from benchmark_train import timm_step  # the same timm step as the training benchmark
            from timing import median_seconds

            settings = argparse.Namespace(threads=args.threads, step="train", agc=0.01)
            step = timm_step("NFRegNetB0", "float32", args.batch_size, args.image_size, settings)
            print(median_seconds(step, args.steps, args.warmup))
        else:
            print(measure_keras(args))
        return
    report(args, {which: in_subprocess(args, which) for which in ("timm", *BACKENDS)})


if __name__ == "__main__":
    main()
