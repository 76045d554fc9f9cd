"""Each RandAugment op's time per image, as the pipeline runs it (one XLA-compiled layer with that
op drawn), with XLA's code for this CPU and held to AVX2: which ops an AVX2 CPU pays for.

usage: python tools/benchmark_randaugment_ops.py [--size 192] [--magnitude 5] [--repeats 200]
                                                 [--isa native AVX2]

Each ISA runs in its own process (XLA reads ``XLA_FLAGS=--xla_cpu_max_isa=...`` once) on one
thread (the input pipeline's per-op threading: ``tf.data`` runs images in parallel, each op on
one thread). Prints µs per image for each op and ISA, their ratio, and each op's share of a
layer's expected time (a layer draws each of the 16 ops with probability 1/16).
"""

import argparse
import json
import os
import subprocess
import sys


def time_ops(size, magnitude, repeats):
    import time

    import numpy as np
    import tensorflow as tf

    from keras_nfnets.data.randaugment import OPS, RandAugment

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    layer = RandAugment(1, magnitude, compiled=False)
    rng = np.random.default_rng(0)
    images = [tf.constant(rng.integers(0, 256, (size, size, 3)).astype("uint8")) for _ in range(8)]
    seed = tf.constant([1, 2], tf.int64)
    results = {}
    for op in OPS:
        def one(image, seed, op=op):
            _, sign, where_seed = layer.choose(seed)
            return layer._branch(op, image, sign, where_seed)()

        compiled = tf.function(one, jit_compile=True, reduce_retracing=True)
        for image in images[:3]:
            compiled(image, seed).numpy()  # compile and warm up
        start = time.perf_counter()
        for i in range(repeats):
            compiled(images[i % len(images)], seed + i).numpy()
        results[op] = (time.perf_counter() - start) / repeats * 1e6
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--magnitude", type=float, default=5)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--isa", nargs="+", default=["native", "AVX2"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(time_ops(args.size, args.magnitude, args.repeats)))
        return 0

    columns = {}
    for isa in args.isa:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        if isa != "native":
            env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), f"--xla_cpu_max_isa={isa}"]))
            env["ONEDNN_MAX_CPU_ISA"] = isa
        command = [sys.executable, os.path.abspath(__file__), "--one", "--size", str(args.size), "--magnitude",
                   str(args.magnitude), "--repeats", str(args.repeats)]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-3000:])
        columns[isa] = json.loads(result.stdout.strip().splitlines()[-1])

    first, last = args.isa[0], args.isa[-1]
    print(f"RandAugment ops, one image {args.size} px, magnitude {args.magnitude:g}, one thread, µs per image "
          f"(mean of {args.repeats} calls after warm-up)")
    header = "".join(f"{isa:>10}" for isa in args.isa)
    print(f"{'op':<14}{header}{last + '/' + first:>14}{'share ' + last:>14}")
    total = sum(columns[last].values())
    for op in columns[first]:
        row = "".join(f"{columns[isa][op]:>10.0f}" for isa in args.isa)
        print(f"{op:<14}{row}{columns[last][op] / columns[first][op]:>14.2f}{columns[last][op] / total:>14.1%}")
    sums = "".join(f"{sum(columns[isa].values()) / len(columns[isa]):>10.0f}" for isa in args.isa)
    print(f"{'mean (a layer)':<14}{sums}{sum(columns[last].values()) / sum(columns[first].values()):>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
