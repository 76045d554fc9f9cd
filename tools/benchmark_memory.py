"""Peak memory and time of one training step: NFNets on TensorFlow and JAX against timm, each with
and without rematerialisation, all in the same run (each measurement in a fresh process).

Usage: python tools/benchmark_memory.py [--models NFNetF0,NFNetF1,NFNetF3] [--batch-sizes 4]
[--frameworks tensorflow,jax,timm] [--precisions float32,bfloat16] [--remat off,on] [--steps 2]
[--cpu native|avx2] [--onednn default|on|off]

Each model trains at its train size (F0 192, F1 224, F3 320 px) with SGD + Nesterov momentum and
AGC (λ 0.01; timm: ``adaptive_clip_grad``), cross-entropy on 1000 classes. Ours: ``model.remat =
True`` (each residual block under ``keras.remat``); timm: ``set_grad_checkpointing(True)``
(``checkpoint_seq`` over each stage's blocks). After a warm-up step (tracing, compilation), a
thread samples the process's resident memory (``/proc/self/statm``) every millisecond during the
measured steps. Printed per setting:

- ``peak``: the most resident memory during a measured step (the whole process: weights,
  gradients, optimizer state, activations, the framework's runtime): what must fit in RAM;
- ``training``: ``peak`` minus the resident memory once the framework is imported, before
  anything is built: what training the model takes (weights, gradients, optimizer state,
  activations, allocator pools), without the runtime's fixed cost;
- ``s/step``: the median step time.

glibc returns freed buffers of 64 KiB and more to the system at once (``MALLOC_MMAP_THRESHOLD_``),
so the resident memory follows what is allocated; TensorFlow's CPU allocator keeps its pool at
its high-water mark, which is then the step's need.

With two batch sizes (``--batch-sizes 2,6``) it also prints the memory per image: the growth of
``training`` from one to the other over the images added, the activations a step keeps per
image, without what does not grow with the batch (weights, gradients, optimizer state, graphs).

The remat ratios compare each framework with itself; ``ours/timm`` compares equal settings.
On a GPU, tools/device_check.py measures the allocator's peak instead.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from timing import TIMM_TWINS, add_cpu_arguments, describe_cpu, enter_cpu_kind  # noqa: E402
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakSampler:
    """The highest resident memory while the block runs (sampled every millisecond)."""

    def __enter__(self):
        self.before = resident_bytes()
        self.peak, self._running = self.before, True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, resident_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())


def measure(step, steps, baseline):
    """``(peak bytes, peak bytes above ``baseline``, median seconds)`` of ``steps`` calls of
    ``step`` after one warm-up call."""
    step()
    peaks, times = [], []
    for _ in range(steps):
        start = time.perf_counter()
        with PeakSampler() as sampler:
            step()
        times.append(time.perf_counter() - start)
        peaks.append(sampler.peak)
    times.sort()
    return max(peaks), max(peaks) - baseline, times[len(times) // 2]


def keras_step(model_name, size, batch, remat, precision):
    import keras
    import numpy as np

    import keras_nfnets
    from keras_nfnets.training import SGDAGC

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    model = getattr(keras_nfnets, model_name)(input_shape=(size, size, 3), weights=None, classifier_activation=None)
    model.remat = remat
    model.compile(SGDAGC(0.1, momentum=0.9, clip_factor=0.01, weight_decay=2e-5),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, size, size, 3)).astype("float32")
    y = np.eye(1000, dtype="float32")[rng.integers(0, 1000, batch)]
    return lambda: model.train_on_batch(x, y)


def timm_step(model_name, size, batch, remat, precision):
    import timm
    import torch
    from timm.utils import adaptive_clip_grad

    torch.set_num_threads(os.cpu_count())
    model = timm.create_model(TIMM_TWINS[model_name], num_classes=1000)
    model.set_grad_checkpointing(remat)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-5)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()
    clipped = [p for name, p in model.named_parameters() if not name.startswith("head.fc")]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bfloat16"):
            logits = model(x)
        loss_fn(logits.float(), y).backward()
        adaptive_clip_grad(clipped, clip_factor=0.01)
        optimizer.step()

    return step


def worker(framework, model_name, size, batch, remat, precision, steps):
    if framework == "timm":
        import timm  # noqa: F401
        import torch  # noqa: F401
    else:
        import keras  # noqa: F401

        import keras_nfnets  # noqa: F401
    baseline = resident_bytes()  # the framework loaded, nothing built
    step = timm_step(model_name, size, batch, remat, precision) if framework == "timm" else \
        keras_step(model_name, size, batch, remat, precision)
    peak, training, seconds = measure(step, steps, baseline)
    print(json.dumps({"peak": peak, "step": training, "seconds": seconds}))


def run_worker(framework, model_name, size, batch, remat, precision, steps):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
               MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")  # freed buffers leave the RSS
    if framework != "timm":
        env["KERAS_BACKEND"] = framework
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework, model_name, str(size), str(batch),
               str(int(remat)), precision, "--steps", str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode == -9:  # the kernel's OOM killer: the step did not fit in this machine's memory
        return {"error": "killed by the system: the step does not fit in this machine's memory"}
    if result.returncode:
        lines = [line for line in result.stderr.strip().splitlines() if "Error" in line or "error" in line]
        return {"error": (lines or ["exit %d" % result.returncode])[-1][:200]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="NFNetF0,NFNetF1,NFNetF3")
    parser.add_argument("--batch-sizes", default="4", help="one batch size, or two (the memory per image)")
    parser.add_argument("--frameworks", default="tensorflow,jax,timm")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--precisions", default="float32", help="float32, bfloat16 (ours mixed_bfloat16, timm "
                                                                 "torch.autocast), or both: float32,bfloat16")
    parser.add_argument("--remat", default="off,on", help="off, on, or off,on (default)")
    parser.add_argument("--worker", nargs=6, default=None, help=argparse.SUPPRESS)
    add_cpu_arguments(parser)
    args = parser.parse_args()
    if args.worker:
        framework, model_name, size, batch, remat, precision = args.worker
        return worker(framework, model_name, int(size), int(batch), remat == "1", precision, args.steps)
    enter_cpu_kind(args)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    batches = [int(b) for b in args.batch_sizes.split(",")]
    models, frameworks = args.models.split(","), args.frameworks.split(",")
    remats = [{"off": False, "on": True}[r] for r in args.remat.split(",")]
    print(f"Peak memory of one training step, batch {' and '.join(map(str, batches))}; {describe_cpu()}")
    for precision in args.precisions.split(","):
        report(precision, models, batches, frameworks, remats, args.steps)


def report(precision, models, batches, frameworks, remats, steps):
    from keras_nfnets.weights.presets import image_sizes

    print(f"\n{precision}:")
    print(f"{'model':8} {'px':>4} {'batch':>5} {'framework':10} {'remat':5} {'peak GiB':>9} {'train GiB':>9} "
          f"{'s/step':>7}")
    results = {}
    for model_name in models:
        size = image_sizes(model_name)[0]
        for batch in batches:
            for framework in frameworks:
                for remat in remats:
                    r = run_worker(framework, model_name, size, batch, remat, precision, steps)
                    results[model_name, batch, framework, remat] = r
                    head = f"{model_name:8} {size:4} {batch:5} {framework:10} {'on' if remat else 'off':5}"
                    if "error" in r:
                        print(f"{head} failed: {r['error']}", flush=True)
                        continue
                    print(f"{head} {r['peak'] / 2**30:9.2f} {r['step'] / 2**30:9.2f} {r['seconds']:7.2f}", flush=True)
    print(f"\nRatios, {precision} (remat: off/on memory, on/off time; ours/timm at equal settings):")
    for model_name in models:
        for batch in batches:
            for framework in frameworks:
                off, on = (results.get((model_name, batch, framework, remat), {}) for remat in (False, True))
                if "peak" in off and "peak" in on:
                    print(f"  {model_name} batch {batch} {framework}: remat cuts the training memory "
                          f"{off['step'] / max(on['step'], 1):.2f}x (the process's peak {off['peak'] / on['peak']:.2f}x) "
                          f"at {on['seconds'] / off['seconds']:.2f}x the step time")
            for framework in [f for f in frameworks if f != "timm"]:
                for remat in remats:
                    ours, timm = (results.get((model_name, batch, f, remat), {}) for f in (framework, "timm"))
                    if "peak" in ours and "peak" in timm:
                        print(f"  {model_name} batch {batch} {framework}/timm, remat {'on' if remat else 'off'}: "
                              f"training memory {ours['step'] / max(timm['step'], 1):.2f}x, peak "
                              f"{ours['peak'] / timm['peak']:.2f}x, time {ours['seconds'] / timm['seconds']:.2f}x")
    if len(batches) == 2:
        low, high = batches
        print(f"\nMemory per image and the part that does not grow with the batch, {precision} (training memory "
              f"at batch {high} minus batch {low}, over {high - low} images; fixed = batch {low}'s minus {low} images'):")
        for model_name in models:
            parts = {}
            for framework in frameworks:
                for remat in remats:
                    a, b = (results.get((model_name, n, framework, remat), {}) for n in (low, high))
                    if "step" in a and "step" in b:
                        per_image = (b["step"] - a["step"]) / (high - low)
                        parts[framework, remat] = per_image, a["step"] - low * per_image
            cells = [f"{fw} remat {'on' if r else 'off'} {v / 2**20:.0f} MiB per image, fixed {f / 2**30:.2f} GiB"
                     for (fw, r), (v, f) in parts.items()]
            print(f"  {model_name}: " + "; ".join(cells))
            for framework in frameworks:
                off, on = parts.get((framework, False)), parts.get((framework, True))
                if off and on and on[0] > 0:
                    print(f"    {framework}: remat cuts the memory per image {off[0] / on[0]:.2f}x")
            for framework in [f for f in frameworks if f != "timm"]:
                ours, timm = parts.get((framework, False)), parts.get(("timm", False))
                if ours and timm:
                    print(f"    {framework}/timm without remat: per image {ours[0] / timm[0]:.2f}x, "
                          f"fixed part {ours[1] / timm[1]:.2f}x")

if __name__ == "__main__":
    main()
