"""The README's main job (``nfnets train``: NF-ResNet-14 on the embedded digits) over seeds, with
TensorFlow's oneDNN on and off: its test accuracy's spread, and each run's time.

usage: python tools/digits_seeds.py [--seeds 0 1 2 3 4] [--onednn on off] [--cpu native|avx2]
                                    [-- TRAIN FLAGS...]

Each run is ``nfnets train --seed S`` in a fresh process (``TF_ENABLE_ONEDNN_OPTS=1`` or ``0``);
``--cpu avx2`` holds oneDNN's and XLA's code to AVX2 (``ONEDNN_MAX_CPU_ISA``, ``XLA_FLAGS``), the
vector extensions of CPUs where TensorFlow leaves oneDNN off. Flags after ``--`` go to every
``nfnets train`` (e.g. ``-- --epochs 20 --learning-rate 0.2`` to try a recipe). Prints one line per
run, then the minimum, median and maximum accuracy per oneDNN setting, and scikit-learn's
LogisticRegression and SVC (their defaults) on the same split for scale.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from timing import cpu_kind_environment, describe_cpu


def run(seed, onednn, cpu, flags, root):
    env = cpu_kind_environment(cpu, onednn)
    output = os.path.join(root, f"seed{seed}_onednn_{onednn}")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "keras_nfnets.cli", "train", "--seed", str(seed), "--output-dir",
                             output, "--progress", "0", *flags], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"seed {seed}, oneDNN {onednn} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    record = json.load(open(os.path.join(output, "run.json")))
    accuracy = float(re.search(r"split\): accuracy ([0-9.]+)", result.stdout).group(1))  # the final evaluation
    return accuracy, seconds, record.get("compute", "")


def sklearn_baselines():
    """LogisticRegression (run to convergence) and SVC with scikit-learn's defaults on the same split,
    on scikit-learn's own features (0-16 ink per pixel)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    from keras_nfnets.data.sources import _digits_split

    x_train, x_test, y_train, y_test = _digits_split()  # 0-255 images: ink * 255 / 16, rounded
    x_train, x_test = (np.round(x.reshape(len(x), -1) * 16.0 / 255.0) for x in (x_train, x_test))
    return {name: model.fit(x_train, y_train).score(x_test, y_test)
            for name, model in (("LogisticRegression", LogisticRegression(max_iter=5000)), ("SVC", SVC()))}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--onednn", nargs="+", choices=("on", "off"), default=["on", "off"])
    parser.add_argument("--cpu", choices=("native", "avx2"), default="native",
                        help="avx2: emulate a CPU without AVX-512 (oneDNN and XLA held to AVX2 code)")
    args = parser.parse_args(argv)

    rows = {}
    with tempfile.TemporaryDirectory(prefix="nfnets-seeds-") as root:
        for onednn in args.onednn:
            for seed in args.seeds:
                accuracy, seconds, compute = run(seed, onednn, args.cpu, flags, root)
                rows.setdefault(onednn, []).append((accuracy, seconds))
                print(f"oneDNN {onednn:<3} seed {seed}: test accuracy {accuracy:.4f} in {seconds:5.0f} s ({compute})",
                      flush=True)
    cpu = describe_cpu(cpu_kind_environment(args.cpu, "default")).rsplit(";", 1)[0]  # oneDNN: per row
    print(f"\nnfnets train {' '.join(flags)}\nCPU: {cpu}")
    for onednn, values in rows.items():
        accuracies = [a for a, _ in values]
        seconds = [s for _, s in values]
        print(f"oneDNN {onednn:<3}: accuracy min {min(accuracies):.4f} median {statistics.median(accuracies):.4f} "
              f"max {max(accuracies):.4f}; seconds {min(seconds):.0f}-{max(seconds):.0f}")
    for name, score in sklearn_baselines().items():
        print(f"scikit-learn {name} (defaults, same split): {score:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
