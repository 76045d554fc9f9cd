"""One check for a lent GPU machine (issue 23): the JAX and PyTorch backends on the GPU, against
the CPU and against timm on the same GPU. At most ~8 minutes of GPU time.

What it measures, each part in its own process (the Keras backend is fixed at import, and each
process's peak GPU memory is its own):

1. ``reference``: the three families (NF-ResNet-26, NF-RegNet-B0, NFNet-F0) built on the JAX
   backend *on the CPU*, every constant-initialised tensor randomised (gains, SkipInit gains, the
   zero classifier) so that every layer shows in the logits; weights saved as ``.weights.h5``.
2. ``logits`` on JAX and on PyTorch *on the GPU*: the same weights and images, float32 at full
   precision (no TF32) and at the framework's default precision; max difference to the CPU
   logits relative to the logit scale.
3. ``train``: training throughput (images/s) of every family (NF-ResNet-26, NF-RegNet-B0, NFNet-F0,
   ECA-NFNet-L0) at 192 px with the paper's optimizer (SGD + Nesterov + AGC λ=0.01 + weight
   decay), ``mixed_bfloat16`` and ``mixed_float16``, on the JAX backend (the whole step
   XLA-compiled), the PyTorch backend and, where the machine has TensorFlow, the TensorFlow
   backend; first step (compile) time and peak GPU memory.
5. ``memory``: NFNet-F0 to F3 at their train sizes, ``mixed_bfloat16``, SGD + AGC, with and without
   remat (ours: ``model.remat``; timm: ``set_grad_checkpointing``): the peak GPU memory of a
   training step at batch 32 (JAX's ``memory_stats``, ``torch.cuda.max_memory_allocated``) and the
   largest batch that fits, doubling from 32 until the device runs out (within the part's time).
4. ``timm``: timm's twin of each family on the same GPU, same batch, same optimizer
   (``timm.utils.adaptive_clip_grad`` without the head, as timm's train.py), under AMP bf16 and
   AMP fp16 (with timm's loss scaling), + channels_last, + ``torch.compile``, each where it
   works; the best of each precision is the peer.

It prints a markdown table and writes ``device_check.json`` and ``device_check.md`` to ``--out``.
``--smoke`` runs the same parts on the CPU with tiny sizes (CI runs it so, to keep it from rotting).

The GPU machine has PyTorch, JAX, timm, numpy, h5py and safetensors but no TensorFlow and no
network; keras and the two wheels it needs that the image lacks travel with the code::

    python tools/device_check.py --download-wheels .device_wheels   # here: ~3 MB, git-ignored
    # there (the folder carried along):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .device_wheels/*.whl
    PYTHONPATH=/tmp/site python3 tools/device_check.py --out "$OUT"
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ("NFResNet26", "NFRegNetB0", "NFNetF0")
TRAINED = {"NFNetF0": "dm_nfnet_f0", "NFRegNetB0": "nf_regnet_b0", "NFResNet26": "nf_resnet26",
           "ECANFNetL0": "eca_nfnet_l0"}  # ours -> timm's peer, the most telling first
PRECISIONS = ("bfloat16", "float16")  # each training part's mixed policy; timm's AMP dtype
MEMORY_MODELS = {"NFNetF0": "dm_nfnet_f0", "NFNetF1": "dm_nfnet_f1", "NFNetF2": "dm_nfnet_f2",
                 "NFNetF3": "dm_nfnet_f3"}  # the memory table's models, ours -> timm's
WHEELS = ("keras==3.15.1", "namex", "optree")  # what the GPU image lacks of keras' requirements
PAPER_F0_MS_PER_32 = 56.7  # NFNet paper, Table 3: F0 training step, 32 images on a V100


def families(smoke):
    """The families whose logits are compared: all three on the GPU; NFNet-F0 in a smoke run (its
    code path is the same; the families' numerics across backends are tests/backend/test_backends.py's)."""
    return ("NFNetF0",) if smoke else FAMILIES


def trained_model(name, precision):
    """A training part's model argument: ``"NFNetF0-bfloat16"``."""
    return f"{name}-{precision}"


def split_trained(model):
    """``(builder, precision)`` of :func:`trained_model`'s string (bfloat16 where none is named)."""
    name, _, precision = model.rpartition("-")
    return (name, precision) if precision in PRECISIONS else (model, "bfloat16")


def run_plan(smoke, backends=("jax", "torch")):
    """``(part, backend, model)`` in order, the most telling first (a run cut short by its time
    budget keeps them): bfloat16 before float16, F0 on JAX and timm's F0 before the other
    families. A smoke run trains NFNet-F0 in bfloat16 only: the other families and float16 run the
    same code with other arguments (CI's time), and the GPU run does all."""
    keras_backends = [b for b in backends if b != "torch"] + (["torch"] if "torch" in backends else [])
    plan = [("logits", "jax", None)]
    for precision in PRECISIONS:
        for name, twin in TRAINED.items():
            plan += [("train", backend, trained_model(name, precision)) for backend in keras_backends]
            if precision == PRECISIONS[0]:
                plan.append(("timm", "torch", twin))  # both precisions in one part
        if precision == PRECISIONS[0]:
            plan.append(("logits", "torch", None))
    plan += [("memory", "jax", "keras"), ("memory", "torch", "timm")]
    smoke_steps = (None, trained_model("NFNetF0", "bfloat16"), "dm_nfnet_f0", "keras", "timm")
    return [step for step in plan if not smoke or step[2] in smoke_steps]


def sizes(smoke):
    """A smoke run's models keep every layer type of their variant with one block per stage
    (``depths``; a smoke run on 2 CPU cores: 81 -> 62 s, 106 -> 82 CPU-s)."""
    if smoke:
        return dict(logit_size=32, logit_batch=2, train_size=32, batch=2, warmup=1, steps=1, depths=(1, 1, 1, 1),
                    memory_batch=2, memory_largest=2, memory_models=("NFNetF0",))
    return dict(logit_size=64, logit_batch=2, train_size=192, batch=128, warmup=2, steps=10, depths=None,
                memory_batch=32, memory_largest=1024, memory_models=tuple(MEMORY_MODELS))


def _build(name, size, **kwargs):
    """Builder ``name``'s model (in a smoke run with ``size["depths"]``)."""
    import dataclasses

    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.models import build_nf_model

    config = BUILDERS[name].config
    if size["depths"]:
        config = dataclasses.replace(config, depths=size["depths"])
    return build_nf_model(config, **kwargs)


# --------------------------------------------------------------------------------------------
# Children: one process per part, backend and device.
def _child_env(backend, device, work):
    """The child's environment. JAX children share one persistent compilation cache in ``work``
    (unless one is set): they build the same models, whose eager initialisers and ops JAX compiles
    one by one, so only the first child pays (smoke run on 2 CPU cores: 81 -> 63 s of JAX children). The train
    step itself is compiled once either way, so its first-step time is unchanged."""
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH")) if p), XLA_PYTHON_CLIENT_PREALLOCATE="false",
        TF_CPP_MIN_LOG_LEVEL="3")
    if backend == "jax" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        env.update(JAX_COMPILATION_CACHE_DIR=os.path.join(work, "jax_cache"),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    if device == "cpu":
        env.update(JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    return env


def _run_child(part, backend, device, work, args, timeout):
    out = os.path.join(work, f"{part}_{backend}_{device}{'_' + args.model if args.model else ''}.json")
    command = [sys.executable, os.path.abspath(__file__), "--child", part, "--backend", backend, "--device", device,
               "--work", work] + (["--smoke"] if args.smoke else []) + (["--model", args.model] if args.model else [])
    started = time.perf_counter()
    try:
        result = subprocess.run(command, env=_child_env(backend, device, work), capture_output=True, text=True,
                                timeout=timeout)
        failure = None if result.returncode == 0 else (result.stderr or result.stdout)[-2500:]
    except subprocess.TimeoutExpired:
        failure = f"timed out after {timeout} s"
    seconds = round(time.perf_counter() - started, 1)
    if failure is not None or not os.path.exists(out):
        print(f"  {part} {backend} {device} {args.model or ''}: FAILED ({seconds} s)\n{failure}", flush=True)
        return {"part": part, "backend": backend, "device": device, "model": args.model, "error": failure,
                "seconds": seconds}
    print(f"  {part} {backend} {device} {args.model or ''}: {seconds} s", flush=True)
    return dict(json.load(open(out)), seconds=seconds)


def _child_main(args):
    if args.smoke:  # as on the GPU machine: no TensorFlow there, and grouped convolutions run natively (on
        sys.meta_path.insert(0, _NoTensorFlow())  # the CPU JAX splits them per group: minutes more to compile)
        from keras_nfnets.backend import jax_backend

        jax_backend.native_grouped_conv_supported = lambda device_type, dtype="float32": True
    size = sizes(args.smoke)
    result = {"part": args.child, "backend": args.backend, "device": args.device, "model": args.model}
    if args.child == "timm":
        result.update(_timm_part(args, size))
    elif args.child == "memory":
        result.update(_memory_part(args, size))
    else:
        import keras

        assert keras.backend.backend() == args.backend, keras.backend.backend()
        _require_device(args)
        result.update({"reference": _reference_part, "logits": _logits_part, "train": _train_part}[args.child](args, size))
    result["peak_memory_gb"] = _peak_memory_gb(args)
    name = f"{args.child}_{args.backend}_{args.device}{'_' + args.model if args.model else ''}.json"
    json.dump(result, open(os.path.join(args.work, name), "w"))


class _NoTensorFlow:
    """An import hook that makes TensorFlow absent, as on the GPU machine (``sys.modules`` stays
    without it, so Keras' checks of whether TensorFlow was imported answer as there)."""

    def find_spec(self, name, path=None, target=None):
        # an import statement fails; a probe (importlib.util.find_spec, as torch._dynamo makes) is answered
        if (name == "tensorflow" or name.startswith("tensorflow.")) and \
                sys._getframe(2).f_code.co_name == "_find_and_load_unlocked":
            raise ModuleNotFoundError(f"No module named {name!r} (the device check runs without TensorFlow)")
        return None


def _require_device(args):
    if args.device != "gpu":
        return
    if args.backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            raise SystemExit("TensorFlow sees no GPU; on a CPU use --smoke")
    elif args.backend == "jax":
        import jax

        if jax.default_backend() != "gpu":
            raise SystemExit(f"JAX sees no GPU (default backend {jax.default_backend()!r}); on a CPU use --smoke")
    else:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("PyTorch sees no CUDA device; on a CPU use --smoke")


def _peak_memory_gb(args):
    if args.device != "gpu":
        return None
    if args.backend == "tensorflow":
        import tensorflow as tf

        return round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30, 2)
    if args.backend == "jax":
        import jax

        stats = jax.local_devices()[0].memory_stats() or {}
        return round(stats.get("peak_bytes_in_use", 0) / 2**30, 2)
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _synchronize(backend):
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def _randomised_family(name, size, seed=0):
    import keras

    from keras_nfnets.export.verification import randomise_weights

    keras.utils.set_random_seed(seed)
    image_size = size["logit_size"]
    model = _build(name, size, input_shape=(image_size, image_size, 3), classes=10, classifier_activation=None)
    return randomise_weights(model, seed)


def _forward(model, x):
    """Inference logits through ``predict``: one compiled program on JAX (an op-by-op forward
    compiles each op on first use: minutes for three models on a GPU), eager on PyTorch."""
    return model.predict(x, batch_size=len(x), verbose=0)


def _reference_part(args, size):
    """The CPU reference: randomised weights and their logits (JAX backend, float32, CPU)."""
    import keras
    import numpy as np

    x = np.random.default_rng(1).standard_normal((size["logit_batch"], size["logit_size"], size["logit_size"], 3))
    np.save(os.path.join(args.work, "x.npy"), x.astype("float32"))
    for name in families(args.smoke):
        model = _randomised_family(name, size)
        model.save_weights(os.path.join(args.work, f"{name}.weights.h5"))
        np.save(os.path.join(args.work, f"{name}_cpu.npy"), _forward(model, x.astype("float32")))
    return {"models": list(families(args.smoke))}


def _logits_part(args, size):
    """The three families' logits on this backend and device, at full float32 precision and at the
    default one (TF32 on NVIDIA GPUs), against the CPU reference."""
    import contextlib

    import numpy as np

    x = np.load(os.path.join(args.work, "x.npy"))

    def full_precision():
        if args.backend == "jax":
            import jax

            return jax.default_matmul_precision("highest")
        import torch

        @contextlib.contextmanager
        def no_tf32():
            saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

        return no_tf32()

    rows = []
    for name in families(args.smoke):
        model = _build(name, size, input_shape=x.shape[1:], classes=10, classifier_activation=None)
        model.load_weights(os.path.join(args.work, f"{name}.weights.h5"))
        reference = np.load(os.path.join(args.work, f"{name}_cpu.npy"))
        scale = float(np.abs(reference).max())
        with full_precision():
            full = _forward(model, x)
        default = _forward(model, x)
        rows.append({"model": name, "full_precision": float(np.abs(full - reference).max() / scale),
                     "default_precision": float(np.abs(default - reference).max() / scale)})
    return {"rows": rows}


def _train_part(args, size):
    """Training throughput of one of :data:`TRAINED` on this backend in one of :data:`PRECISIONS`
    (``mixed_float16``: Keras' loss scaling), SGD + AGC, synthetic device-resident batches; the
    first step (trace + compile) timed apart; the peak memory is the part's."""
    import keras
    import numpy as np

    from keras_nfnets.training import SGDAGC

    name, precision = split_trained(args.model)
    keras.config.set_dtype_policy(f"mixed_{precision}")
    keras.utils.set_random_seed(0)
    # dropout and stochastic depth as the variant has them: the paper's training step
    model = _build(name, size, input_shape=(size["train_size"], size["train_size"], 3), classes=1000,
                   classifier_activation=None)
    model.compile(optimizer=SGDAGC(0.1, momentum=0.9, weight_decay=2e-5, clip_factor=0.01),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(rng.standard_normal((size["batch"], size["train_size"], size["train_size"], 3))
                                    .astype("float32"))
    y = keras.ops.convert_to_tensor(np.eye(1000, dtype="float32")[rng.integers(0, 1000, size["batch"])])
    started = time.perf_counter()
    losses = [float(model.train_on_batch(x, y))]
    first = time.perf_counter() - started
    for _ in range(size["warmup"] - 1):
        losses.append(float(model.train_on_batch(x, y)))
    _synchronize(args.backend)
    started = time.perf_counter()
    for _ in range(size["steps"]):
        losses.append(float(model.train_on_batch(x, y)))  # float(): waits for the step
    _synchronize(args.backend)
    seconds = time.perf_counter() - started
    return {"builder": name, "precision": precision, "image_size": size["train_size"], "batch": size["batch"],
            "first_step_s": round(first, 2),
            "images_per_s": round(size["batch"] * size["steps"] / seconds, 1),
            "ms_per_32": round(1000 * seconds / size["steps"] / size["batch"] * 32, 2),
            "losses_finite": bool(np.all(np.isfinite(losses))), "parameters": int(model.count_params())}


def _timm_part(args, size):
    """timm's peer under AMP bf16, + channels_last, + torch.compile (each where it works)."""
    import timm
    import torch
    device = "cuda" if args.device == "gpu" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("PyTorch sees no CUDA device; on a CPU use --smoke")
    torch.manual_seed(0)
    x = torch.randn(size["batch"], 3, size["train_size"], size["train_size"], device=device)
    y = torch.randint(0, 1000, (size["batch"],), device=device)
    rows, best = [], {}
    for precision in PRECISIONS[:1] if args.smoke else PRECISIONS:
        amp = {"bfloat16": "amp_bf16", "float16": "amp_fp16"}[precision]
        configs = [(amp, False, False), (f"{amp}+channels_last", True, False), (f"{amp}+channels_last+compile", True, True)]
        for label, channels_last, compiled in configs:
            if compiled and args.smoke:
                rows.append({"config": label, "precision": precision,
                             "skipped": "smoke run (torch.compile needs minutes and a C compiler)"})
                continue
            try:
                rows.append(dict(_timm_config(timm, torch, args.model, x, y, device, size, channels_last, compiled,
                                              precision), config=label, precision=precision))
            except Exception as error:  # noqa: BLE001 - a config that does not work is reported, not fatal
                rows.append({"config": label, "precision": precision,
                             "error": f"{type(error).__name__}: {str(error)[:300]}"})
        working = [r for r in rows if "images_per_s" in r and r["precision"] == precision]
        if working:
            best[precision] = max(working, key=lambda r: r["images_per_s"])["config"]
    return {"timm_model": args.model, "timm_version": timm.__version__, "configs": rows, "best": best}


def _timm_config(timm, torch, name, x, y, device, size, channels_last,
                 compiled, precision="bfloat16"):
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = timm.create_model(name, num_classes=1000).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-5)
    forward = torch.compile(model) if compiled else model
    scaler = torch.amp.GradScaler(device) if precision == "float16" else None  # timm's train.py: NativeScaler

    def step():
        return _timm_train_step(model, forward, optimizer, x, y, device, precision, scaler)

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    started = time.perf_counter()
    step().item()
    first = time.perf_counter() - started
    for _ in range(size["warmup"] - 1):
        step()
    sync()
    started = time.perf_counter()
    for _ in range(size["steps"]):
        loss = step()
    loss.item()
    sync()
    seconds = time.perf_counter() - started
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None
    return {"first_step_s": round(first, 2), "images_per_s": round(size["batch"] * size["steps"] / seconds, 1),
            "ms_per_32": round(1000 * seconds / size["steps"] / size["batch"] * 32, 2), "peak_memory_gb": peak}


# --------------------------------------------------------------------------------------------
# The parent: runs the parts, writes the JSON and the table.
def _memory_part(args, size):
    """Peak memory of a bf16 training step at ``memory_batch``, and the largest batch that fits
    (doubling), with and without remat, for ours (``args.model == "keras"``) or timm's."""
    from keras_nfnets.training.memory import is_out_of_memory
    from keras_nfnets.weights.presets import image_sizes

    deadline = time.perf_counter() + 240
    rows = []
    for name in size["memory_models"]:
        image = size["train_size"] if args.smoke else image_sizes(name)[0]
        for remat in (False, True):
            row = {"model": name, "image_size": image, "remat": remat, "peak_gb": None, "largest_batch": None}
            step_for = _memory_step_timm(args, name, image, remat) if args.model == "timm" else \
                _memory_step_keras(args, name, image, remat, size)
            batch = size["memory_batch"]
            while batch <= size["memory_largest"] and time.perf_counter() < deadline:
                try:
                    peak = step_for(batch)
                except Exception as error:  # noqa: BLE001 - running out is the answer sought
                    if not is_out_of_memory(error):
                        row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
                    break
                if batch == size["memory_batch"]:
                    row["peak_gb"] = peak
                row["largest_batch"] = batch
                batch *= 2
            rows.append(row)
    return {"implementation": args.model, "batch": size["memory_batch"], "rows": rows}


def _memory_step_keras(args, name, image, remat, size):
    import keras
    import numpy as np

    from keras_nfnets.training import SGDAGC

    keras.config.set_dtype_policy("mixed_bfloat16")
    model = _build(name, size, input_shape=(image, image, 3), classes=1000, classifier_activation=None)
    model.remat = remat
    model.compile(optimizer=SGDAGC(0.1, momentum=0.9, weight_decay=2e-5, clip_factor=0.01),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))

    def step(batch):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, image, image, 3)).astype("float32")
        y = np.eye(1000, dtype="float32")[rng.integers(0, 1000, batch)]
        if args.backend == "torch" and args.device == "gpu":
            import torch

            torch.cuda.reset_peak_memory_stats()
        float(model.train_on_batch(x, y))
        return _peak_memory_gb(args)

    return step


def _timm_train_step(model, forward, optimizer, x, y, device, precision="bfloat16", scaler=None):
    """One step of timm's train.py: autocast (bf16, or fp16 with its loss scaler, which unscales
    before clipping), backward, AGC without the head, SGD."""
    import torch
    import torch.nn.functional as F
    from timm.models import model_parameters
    from timm.utils import dispatch_clip_grad

    with torch.autocast(device, dtype=torch.bfloat16 if precision == "bfloat16" else torch.float16):
        loss = F.cross_entropy(forward(x), y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        dispatch_clip_grad(model_parameters(model, exclude_head=True), value=0.01, mode="agc")
        optimizer.step()
        return loss
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    dispatch_clip_grad(model_parameters(model, exclude_head=True), value=0.01, mode="agc")
    scaler.step(optimizer)
    scaler.update()
    return loss


def _memory_step_timm(args, name, image, remat):
    import timm
    import torch

    device = "cuda" if args.device == "gpu" else "cpu"
    model = timm.create_model(MEMORY_MODELS[name], num_classes=1000).to(device).train()
    model.set_grad_checkpointing(remat)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-5)

    def step(batch):
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        x = torch.randn(batch, 3, image, image, device=device)
        y = torch.randint(0, 1000, (batch,), device=device)
        _timm_train_step(model, model, optimizer, x, y, device).item()
        return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None

    return step


def _versions():
    """Installed versions, read without importing anything (keras would import TensorFlow)."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("keras", "jax", "jaxlib", "torch", "timm", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def _machine(device):
    machine = {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "device": device}
    if device == "gpu":
        try:
            query = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=30)
            machine["gpu"] = query.stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as error:
            machine["gpu"] = f"nvidia-smi failed: {error}"
    return machine


def markdown(report):
    m, v = report["machine"], report["versions"]
    where = "smoke run on the CPU, our models with one block per stage" if report["smoke"] else m.get("gpu", "GPU")
    lines = [f"Device check {report['date']} ({where}); "
             f"keras {v['keras']}, jax {v['jax']}, torch {v['torch']}, timm {v['timm']}, python {v['python']}.", "",
             "| logits vs CPU (relative to the logit scale) | backend | full float32 | default precision |",
             "|---|---|---|---|"]
    for part in report["logits"]:
        for row in part.get("rows", []):
            lines.append(f"| {row['model']} | {part['backend']} | {row['full_precision']:.1e} | "
                         f"{row['default_precision']:.1e} |")
        if "error" in part:
            lines.append(f"| (failed) | {part['backend']} | {part['error'].splitlines()[-1][:80]} | |")
    lines += ["", "| training | precision | implementation | img/s | ms / 32 img | first step s | peak GB |",
              "|---|---|---|---|---|---|---|"]
    for part in report["train"] + report["timm"]:
        if "error" in part:
            lines.append(f"| {part['model']} | | {part['part']} {part['backend']}: failed | | | | |")
            continue
        if part["part"] == "train":
            lines.append(f"| {part['builder']} {part['image_size']} px, batch {part['batch']} | {part['precision']} | "
                         f"keras_nfnets, {part['backend']} backend | {part['images_per_s']} | {part['ms_per_32']} | "
                         f"{part['first_step_s']} | {part['peak_memory_gb']} |")
        else:
            for row in part["configs"]:
                precision = row.get("precision", "bfloat16")
                if "images_per_s" in row:
                    best = " (best)" if row["config"] == _best(part).get(precision) else ""
                    lines.append(f"| {part['timm_model']} | {precision} | timm {row['config']}{best} | "
                                 f"{row['images_per_s']} | {row['ms_per_32']} | {row['first_step_s']} | "
                                 f"{row['peak_memory_gb']} |")
                else:
                    lines.append(f"| {part['timm_model']} | {precision} | timm {row['config']} | "
                                 f"{row.get('skipped') or row.get('error')} | | | |")
    if report.get("memory"):
        lines += ["", "| memory, bf16 training step | implementation | remat | peak GB at batch "
                  f"{report['memory'][0].get('batch', '')} | largest batch (doubling) |", "|---|---|---|---|---|"]
        for part in report["memory"]:
            if "error" in part and "rows" not in part:
                lines.append(f"| | {part.get('model')}: failed | | | |")
                continue
            for row in part["rows"]:
                lines.append(f"| {row['model']} {row['image_size']} px | {part['implementation']} | "
                             f"{'on' if row['remat'] else 'off'} | {row['peak_gb']} | "
                             f"{row.get('error') or row['largest_batch']} |")
    lines += ["", *(f"- {line}" for line in report["summary"])]
    return "\n".join(lines) + "\n"


def _best(part):
    """``{precision: config}`` of a timm part (reports before float16 held one config for bfloat16)."""
    best = part.get("best") or {}
    return best if isinstance(best, dict) else {"bfloat16": best}


def summarise(report):
    lines = []
    peers = {}
    for part in report["timm"]:
        for precision, config in _best(part).items() if "configs" in part else ():
            peers[part["timm_model"], precision] = next(r for r in part["configs"] if r["config"] == config)
    for part in report["train"]:
        if "error" in part:
            continue
        name, precision = part.get("builder", part["model"]), part.get("precision", "bfloat16")
        peer = peers.get((TRAINED.get(name), precision))
        if peer:
            lines.append(f"{name} {precision} on {part['backend']}: {part['images_per_s'] / peer['images_per_s']:.2f}x "
                         f"timm's best ({TRAINED[name]}, {peer['config']}); peak memory {part['peak_memory_gb']} "
                         f"against {peer['peak_memory_gb']} GB")
    f0 = [p for p in report["train"] if p.get("builder") == "NFNetF0" and p.get("precision") == "bfloat16"
          and "ms_per_32" in p]
    for part in f0:
        lines.append(f"NFNet-F0 on {part['backend']}: {part['ms_per_32']} ms per 32 images "
                     f"(paper, V100 at 192 px: {PAPER_F0_MS_PER_32} ms)")
    worst = [r["full_precision"] for p in report["logits"] for r in p.get("rows", [])]
    if worst:
        lines.append(f"worst full-precision logit difference GPU vs CPU: {max(worst):.1e} of the logit scale")
    failed = [f"{p['part']} {p['backend']} {p.get('model') or ''}".strip()
              for p in report["logits"] + report["train"] + report["timm"] if "error" in p]
    if failed:
        lines.append("failed: " + ", ".join(failed))
    return lines


def _merge(paths, out):
    """One report from several runs on the same machine: each part's latest successful result."""
    reports = [json.load(open(path)) for path in paths]
    merged = dict(reports[0], logits=[], train=[], timm=[], memory=[])
    for section in ("logits", "train", "timm", "memory"):
        latest = {}
        for report in reports:
            for part in report.get(section, []):
                key = (part["backend"], part.get("model"))
                if "error" not in part or key not in latest:
                    latest[key] = part
        merged[section] = list(latest.values())
    merged["merged_from"] = [os.path.basename(os.path.dirname(os.path.abspath(p))) + "/" + os.path.basename(p)
                             for p in paths]
    merged["summary"] = summarise(merged)
    os.makedirs(out, exist_ok=True)
    json.dump(merged, open(os.path.join(out, "device_check.json"), "w"), indent=1)
    table = markdown(merged)
    open(os.path.join(out, "device_check.md"), "w").write(table)
    print(table)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the same parts on the CPU with tiny sizes")
    parser.add_argument("--out", default="device_check", help="folder for device_check.json / .md")
    parser.add_argument("--backends", default=None, help="Keras backends to check (default jax,torch, and tensorflow "
                        "where the machine has it)")
    parser.add_argument("--parts", default="", help="only these parts, as PART:BACKEND[:MODEL] (e.g. "
                        "train:jax:NFRegNetB0,timm:torch:nf_regnet_b0)")
    parser.add_argument("--budget", type=int, default=540, help="seconds for the whole check: no part starts "
                        "after them, and each part stops by then (default 540)")
    parser.add_argument("--download-wheels", metavar="DIR", help="download keras and the wheels the GPU image "
                        "lacks (Python 3.12, manylinux x86-64) into DIR, then stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="combine the device_check.json of several "
                        "runs (a --parts rerun's results replace what an earlier run lacked) into --out, then stop")
    args = parser.parse_args(argv)
    if args.child:
        return _child_main(args)
    if args.merge:
        return _merge(args.merge, args.out)
    if args.download_wheels:
        platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                                 "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
        return subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--python-version", "3.12", "--implementation", "cp", *platforms, "-d",
                               args.download_wheels, *WHEELS], check=False).returncode
    if args.backends is None:
        import importlib.util

        has_tensorflow = importlib.util.find_spec("tensorflow") is not None and not args.smoke
        args.backends = "jax,torch" + (",tensorflow" if has_tensorflow else "")
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - {"jax", "torch", "tensorflow"})
    if unknown:
        parser.error(f"--backends takes jax, torch and/or tensorflow; received {unknown}")
    device = "cpu" if args.smoke else "gpu"
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="device_check_")  # weights and logits passed between the parts
    limit = 300  # seconds per process (the GPU run: ~8 minutes in all)
    report = {"date": datetime.date.today().isoformat(), "smoke": args.smoke, "machine": _machine(device),
              "versions": _versions(), "sizes": sizes(args.smoke), "logits": [], "train": [], "timm": [],
              "memory": []}
    print(f"device check ({'smoke, CPU' if args.smoke else 'GPU'}), work in {work}", flush=True)
    def write():  # after every part: a run stopped at its time limit still leaves what it measured
        report["summary"] = summarise(report)
        json.dump(report, open(os.path.join(args.out, "device_check.json"), "w"), indent=1)
        table = markdown(report)
        open(os.path.join(args.out, "device_check.md"), "w").write(table)
        return table

    def part(name, backend, where, model=None, limit=limit):
        return _run_child(name, backend, where, work, argparse.Namespace(smoke=args.smoke, model=model), int(limit))

    plan = run_plan(args.smoke, backends)
    plan = [step for step in plan if step[1] in backends and (step[0] != "timm" or "torch" in backends)]
    if args.parts:  # e.g. train:jax:NFRegNetB0,timm:torch:nf_regnet_b0 (a rerun of what a budget cut off)
        wanted = {tuple(p.split(":")) for p in args.parts.split(",")}
        plan = [step for step in plan if (step[0], step[1], step[2] or "") in {w + ("",) * (3 - len(w)) for w in wanted}]
    deadline = time.perf_counter() + args.budget
    reference = part("reference", "jax", "cpu", limit=min(limit, args.budget)) if any(
        step[0] == "logits" for step in plan) else {}
    for name, backend, model in plan:
        left = deadline - time.perf_counter()
        if (name == "logits" and "error" in reference) or left < 30:
            why = "the CPU reference failed" if left >= 30 else f"--budget {args.budget} s spent"
            result = {"part": name, "backend": backend, "device": device, "model": model, "error": f"skipped: {why}"}
        else:
            result = part(name, backend, device, model, limit=min(limit, left))
        report[name].append(result)
        write()
    print(write(), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    failures = [p for p in [reference] + report["logits"] + report["train"] + report["timm"] + report["memory"]
                if "error" in p]
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
