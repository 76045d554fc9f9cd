"""Training throughput of one worker × 2 threads vs a 2-worker MultiWorkerMirroredStrategy cluster
× 1 thread each (nfnets launch, 127.0.0.1), on the same global batch, plus the all-reduce share.

Both configurations run ``model.fit`` on synthetic images with the paper's optimizer (SGD + AGC)
and use the same number of CPU threads in all. The cluster's all-reduce is timed alone (the
gradients' shapes, summed across the workers) and reported as a share of its step time, with
the bytes each step sends so that a reader can project to real clusters (a ring all-reduce sends
``2 (N − 1) / N`` × the gradient bytes per worker and step).

On ``--backends jax`` the same pair runs as JAX processes (``keras.distribution``, gloo), one
XLA:CPU thread per process.

Usage: python tools/benchmark_multiworker.py [--model NFRegNetB0] [--batch-size 16]
[--image-size 128] [--steps 10] [--warmup 3] [--backends tensorflow,jax]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="NFRegNetB0")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--backends", default="tensorflow,jax", help="Keras backends to measure (tensorflow, jax)")
    parser.add_argument("--worker", choices=["single", "multi_worker"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def worker(args):
    """One process of a measurement: fit, time each step, time the all-reduce alone (a
    TensorFlow cluster; a JAX cluster's reduction is inside its compiled step)."""
    import tensorflow as tf

    from keras_nfnets.training import make_strategy

    on_jax = os.environ.get("KERAS_BACKEND") == "jax"
    if args.worker == "multi_worker":
        strategy = make_strategy("multi_worker")  # before any other TensorFlow op / JAX computation
    else:
        strategy = make_strategy("one_device") if on_jax else tf.distribute.get_strategy()

    import keras
    import numpy as np

    from keras_nfnets import backend
    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.training import SGDAGC
    from keras_nfnets.training.distribute import worker_role

    role = worker_role(strategy)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = BUILDERS[args.model](input_shape=(args.image_size, args.image_size, 3), classes=1000)
        model.compile(SGDAGC(0.1, momentum=0.9, clip_factor=0.01), keras.losses.SparseCategoricalCrossentropy())
    if role.count > 1:
        backend.current().prepare_multi_worker_model(model)

    def make(context):
        replicas = context.num_replicas_in_sync if context else 1
        batch = args.batch_size // replicas
        x = tf.random.stateless_normal((batch, args.image_size, args.image_size, 3), (0, 0 if not context else
                                                                                    context.input_pipeline_id))
        y = tf.zeros((batch,), tf.int64)
        return tf.data.Dataset.from_tensors((x, y)).repeat()

    dataset = strategy.distribute_datasets_from_function(make) if role.count > 1 else make(None)
    ends = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    steps = args.warmup + args.steps
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[Clock()])
    step_seconds = statistics.median(np.diff(ends[args.warmup - 1:]))
    result = dict(step_seconds=step_seconds, images_per_second=args.batch_size / step_seconds,
                  gradient_bytes=int(sum(np.prod(w.shape) * 4 for w in model.trainable_weights)),
                  trainable_tensors=len(model.trainable_weights), workers=role.count)
    if role.count > 1 and not on_jax:
        shapes = [w.shape for w in model.trainable_weights]

        @tf.function
        def all_reduce():
            def replica():
                grads = [tf.ones(s) for s in shapes]
                return tf.distribute.get_replica_context().all_reduce("sum", grads)[0][..., :1]
            return strategy.run(replica)

        for _ in range(args.warmup):
            all_reduce()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            summed = all_reduce()
            strategy.experimental_local_results(summed)[0].numpy()  # wait for the result
            times.append(time.perf_counter() - start)
        result["all_reduce_seconds"] = statistics.median(times)
    if role.is_chief:
        with open(args.result, "w") as f:
            json.dump(result, f)


def measure(args, configuration, backend_name="tensorflow"):
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "result.json")
        own = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--batch-size", str(args.batch_size),
               "--image-size", str(args.image_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--result", path]
        path_entries = filter(None, [REPO, os.environ.get("PYTHONPATH")])
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(path_entries),
                   KERAS_BACKEND=backend_name)
        if backend_name == "jax":  # XLA:CPU's threads: one per worker process, as TensorFlow's below
            env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads="
                       + ("2" if configuration == "single" else "1"))
        if configuration == "single":
            env.update(TF_NUM_INTRAOP_THREADS="2", TF_NUM_INTEROP_THREADS="2", OMP_NUM_THREADS="2")
            command = [*own, "--worker", "single"]
        else:
            command = [sys.executable, "-m", "keras_nfnets.cli.launch", "--workers", "2", "--threads-per-worker", "1",
                       "--log-dir", os.path.join(scratch, "logs"), "--", *own, "--worker", "multi_worker"]
        subprocess.run(command, check=True, env=env, timeout=1800, stdout=subprocess.DEVNULL)
        with open(path) as f:
            return json.load(f)


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    print(f"{args.model}, global batch {args.batch_size}, {args.image_size} px, SGD + AGC, median of {args.steps} "
          f"steps after {args.warmup}")
    if "jax" in args.backends.split(","):  # the same pair on JAX (keras.distribution over gloo)
        single, cluster = measure(args, "single", "jax"), measure(args, "multi_worker", "jax")
        print(f"JAX: 1 process : {single['step_seconds'] * 1e3:7.1f} ms/step  {single['images_per_second']:6.1f} "
              f"images/s; 2 processes: {cluster['step_seconds'] * 1e3:7.1f} ms/step  "
              f"{cluster['images_per_second']:6.1f} images/s ({cluster['images_per_second'] / single['images_per_second']:.2f}x)")
    if "tensorflow" not in args.backends.split(","):
        return
    single = measure(args, "single")
    cluster = measure(args, "multi_worker")
    megabytes = cluster["gradient_bytes"] / 1e6
    print(f"1 worker x 2 threads : {single['step_seconds'] * 1e3:7.1f} ms/step  "
          f"{single['images_per_second']:6.1f} images/s")
    print(f"2 workers x 1 thread : {cluster['step_seconds'] * 1e3:7.1f} ms/step  {cluster['images_per_second']:6.1f} "
          f"images/s  ({cluster['images_per_second'] / single['images_per_second']:.2f}x the single worker)")
    share = cluster["all_reduce_seconds"] / cluster["step_seconds"]
    print(f"all-reduce of the gradients alone: {cluster['all_reduce_seconds'] * 1e3:.1f} ms = {share:.0%} of the "
          f"2-worker step")
    print(f"communication: {cluster['trainable_tensors']} gradient tensors, {megabytes:.1f} MB (float32) all-reduced "
          f"per step; a ring sends 2(N-1)/N x that per worker: {megabytes:.1f} MB at N=2, "
          f"{2 * 7 / 8 * megabytes:.1f} MB at N=8")


if __name__ == "__main__":
    main()
