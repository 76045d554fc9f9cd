"""One training (or inference) step of each NF family, ours against timm, in float32 and bfloat16,
all in the same run (each measurement in a fresh process, the frameworks never side by side).

Usage: python tools/benchmark_train.py [--models NFResNet26,NFRegNetB0,NFNetF0,ECANFNetL0]
[--precisions float32,bfloat16] [--step train|predict] [--agc 0.01] [--batch-size N] [--image-size N]
[--threads 2] [--steps 10] [--warmup 3] [--rounds 1] [--efficientnet] [--cpu native|avx2]
[--onednn default|on|off]

The step, as each framework's users run it:

- ``train``: ours ``model.train_on_batch`` with the package's optimizer (``SGDAGC``: Nesterov
  momentum 0.9, AGC λ ``--agc`` with the classifier unclipped; ``--agc 0``: plain SGD), timm's
  forward, backward, ``timm.utils.adaptive_clip_grad`` (the same λ and exclusion) and
  ``torch.optim.SGD(nesterov=True)``; cross-entropy on 1000 classes.
- ``predict``: ours ``model.predict_on_batch``, timm's ``model(x)`` under ``torch.inference_mode``.

bfloat16 is our ``mixed_bfloat16`` policy against timm under ``torch.autocast("cpu", torch.bfloat16)``.
Sizes default to batch 16 at 192 px for NF-ResNets and NF-RegNets, batch 8 at 192 px for NFNets
(the issue 43 settings). Printed: the median step of each (the median over ``--rounds`` of
medians over ``--steps``), our bfloat16 gain over float32 and timm's, and ours/timm throughput
at equal precision. ``--efficientnet`` adds keras.applications.EfficientNetB0 at NF-RegNet-B0's
settings (float32, Keras' SGD), the comparison of the package's first benchmark.

``--cpu avx2`` emulates a CPU without AVX-512 (TensorFlow's and PyTorch's oneDNN, XLA and ATen held
to AVX2 code, for timm too); ``--onednn`` sets ``TF_ENABLE_ONEDNN_OPTS`` (TensorFlow leaves oneDNN
off on such CPUs; keras_nfnets, imported first, turns it on).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from timing import TIMM_TWINS, add_cpu_arguments, describe_cpu, enter_cpu_kind, median_seconds  # noqa: E402

DEFAULT_MODELS = "NFResNet26,NFRegNetB0,NFNetF0,ECANFNetL0"


def default_settings(model):
    """(batch, image size) of the issue 43 comparison: NFNets at batch 8, the others at 16, 192 px."""
    return (8, 192) if model.startswith(("NFNet", "ECANFNet")) else (16, 192)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--step", choices=("train", "predict"), default="train")
    parser.add_argument("--agc", type=float, default=0.01, help="AGC's λ on both sides (0: plain SGD)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole comparison, report the median")
    parser.add_argument("--efficientnet", action="store_true")
    parser.add_argument("--worker", nargs=5, default=None, help=argparse.SUPPRESS)
    add_cpu_arguments(parser)
    return parser.parse_args()


def keras_step(model_name, precision, batch, size, args):
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, (batch,))
    if model_name == "EfficientNetB0":
        model = keras.applications.EfficientNetB0(weights=None, input_shape=(size, size, 3))
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    else:
        import keras_nfnets
        from keras_nfnets.optimizers import SGDAGC

        model = getattr(keras_nfnets, model_name)(input_shape=(size, size, 3), weights=None)
        optimizer = SGDAGC(0.01, momentum=0.9, nesterov=True, clip_factor=args.agc)
    if args.step == "predict":
        return lambda: model.predict_on_batch(x)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return lambda: model.train_on_batch(x, y)


def timm_step(model_name, precision, batch, size, args):
    import timm
    import torch
    from timm.utils import adaptive_clip_grad

    torch.set_num_threads(args.threads)
    model = timm.create_model(TIMM_TWINS[model_name], num_classes=1000)
    x = torch.randn(batch, 3, size, size)
    autocast = torch.autocast("cpu", torch.bfloat16, enabled=precision == "bfloat16")
    if args.step == "predict":
        model.eval()

        def predict():
            with torch.inference_mode(), autocast:
                model(x)

        return predict
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    clipped = [p for name, p in model.named_parameters() if not name.startswith(("head.fc", "fc."))]
    y = torch.randint(0, 1000, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(model(x), y)
        loss.backward()
        if args.agc:
            adaptive_clip_grad(clipped, clip_factor=args.agc)
        optimizer.step()

    return step


def worker(args):
    framework, model_name, precision, batch, size = args.worker
    make = timm_step if framework == "timm" else keras_step
    step = make(model_name, precision, int(batch), int(size), args)
    print(json.dumps({"seconds": median_seconds(step, args.steps, args.warmup)}))


def measure(framework, model_name, precision, batch, size, args):
    """Median seconds of one step in a fresh process (timm apart from TensorFlow: importing it after
    TensorFlow crashes on this stack, and the two runtimes' thread pools would compete), or an error."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework, model_name, precision, str(batch),
               str(size), "--step", args.step, "--agc", str(args.agc), "--threads", str(args.threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return {"error": (lines or [f"exit {result.returncode}"])[-1][:200]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    enter_cpu_kind(args)
    models, precisions = args.models.split(","), args.precisions.split(",")
    runs = [(framework, model, precision) for model in models for precision in precisions
            for framework in ("ours", "timm")]
    if args.efficientnet:
        runs.append(("ours", "EfficientNetB0", "float32"))
    samples = {run: [] for run in runs}
    for _ in range(args.rounds):
        for framework, model, precision in runs:
            batch, size = default_settings("NFRegNetB0" if model == "EfficientNetB0" else model)
            batch, size = args.batch_size or batch, args.image_size or size
            result = measure(framework, model, precision, batch, size, args)
            if "error" in result:
                print(f"  {framework} {model} {precision}: failed: {result['error']}", flush=True)
                continue
            samples[framework, model, precision].append(result["seconds"])
    seconds = {run: statistics.median(values) for run, values in samples.items() if values}

    from keras_nfnets import backend

    what = "training step (SGD + Nesterov" + (f", AGC {args.agc:g})" if args.agc else ")") \
        if args.step == "train" else "inference step (predict)"
    print(f"\nOne {what}, {args.threads} threads, median of {args.steps} steps"
          + (f" over {args.rounds} rounds" if args.rounds > 1 else ""))
    print(f"  CPU: {describe_cpu()}\n  ours: {backend.current().compute_description()}")
    header = "".join(f"{f'{fw} {p}':>16}" for p in precisions for fw in ("ours", "timm"))
    print(f"  {'model':14} {'batch@px':>9}{header}   (ms/step)")
    for model in models:
        batch, size = default_settings(model)
        cells = "".join(f"{seconds[fw, model, p] * 1000:16.0f}" if (fw, model, p) in seconds else f"{'-':>16}"
                        for p in precisions for fw in ("ours", "timm"))
        print(f"  {model:14} {f'{args.batch_size or batch}@{args.image_size or size}':>9}{cells}")
    print("  ratios (throughput):")
    for model in models:
        parts = []
        for p in precisions:
            ours, timm = seconds.get(("ours", model, p)), seconds.get(("timm", model, p))
            if ours and timm:
                parts.append(f"ours/timm {p} {timm / ours:.2f}x")
        if "float32" in precisions and "bfloat16" in precisions:
            for fw in ("ours", "timm"):
                fp32, bf16 = seconds.get((fw, model, "float32")), seconds.get((fw, model, "bfloat16"))
                if fp32 and bf16:
                    parts.append(f"{fw} bf16/fp32 {fp32 / bf16:.2f}x")
        print(f"    {model:14} " + ", ".join(parts))
    effnet = seconds.get(("ours", "EfficientNetB0", "float32"))
    ours = seconds.get(("ours", "NFRegNetB0", "float32"))
    if effnet and ours:
        print(f"    NFRegNetB0 / keras EfficientNetB0 (float32): {effnet / ours:.2f}x")


if __name__ == "__main__":
    main()
