"""Shared timing helper of the benchmarks in tools/ (run them as scripts: this folder is on sys.path)."""

import statistics
import time

# Our builders and timm's architectures of the same layout (the peers of the benchmarks).
TIMM_TWINS = {
    "NFResNet26": "nf_resnet26", "NFResNet50": "nf_resnet50", "NFRegNetB0": "nf_regnet_b0",
    "NFRegNetB1": "nf_regnet_b1", "NFNetF0": "dm_nfnet_f0", "NFNetF1": "dm_nfnet_f1", "NFNetF2": "dm_nfnet_f2",
    "NFNetF3": "dm_nfnet_f3", "NFNetL0": "nfnet_l0", "ECANFNetL0": "eca_nfnet_l0", "ECANFNetL1": "eca_nfnet_l1",
}


def step_timer(times):
    """A Keras callback appending each training step's seconds to ``times``."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    return StepTimer()


def median_seconds(fn, repeats, warmup=3):
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- which kind of CPU a figure comes from -------------------------------------------------------------
# An AVX2 CPU (no AVX-512), emulated on any newer x86 CPU: oneDNN (TensorFlow's and PyTorch's), XLA
# and PyTorch's ATen kernels held to AVX2 code. TensorFlow's own default leaves oneDNN off on such a
# CPU; keras_nfnets turns it on when imported first (keras_nfnets/backend/onednn.py).
AVX2_CODE = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
# AVX-512 CPUs without AMX, emulated on one with it: oneDNN (TensorFlow's and PyTorch's) held to
# AVX512-BF16 code (as AMD Zen 4 and Intel Cooper Lake), or to AVX-512 without BF16 (as Intel
# Skylake-SP/Ice Lake: bfloat16 in software). XLA and ATen keep AVX-512 code.
CPU_KINDS = {"native": {}, "avx2": AVX2_CODE, "avx512_bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
             "avx512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}}
_MARK = "KERAS_NFNETS_BENCHMARK_CPU"


def add_cpu_arguments(parser):
    parser.add_argument("--cpu", choices=tuple(CPU_KINDS), default="native",
                        help="avx2: emulate a CPU without AVX-512 (oneDNN, XLA and ATen held to AVX2 code); "
                             "avx512_bf16: one with AVX512-BF16 but no AMX (oneDNN held to it, as AMD Zen 4); "
                             "avx512: one without bfloat16 arithmetic (oneDNN held to AVX-512 VNNI)")
    parser.add_argument("--onednn", choices=("default", "on", "off"), default="default",
                        help="TensorFlow's oneDNN: on, off, or default (TensorFlow's choice for this CPU, "
                             "or keras_nfnets' where it is imported before TensorFlow)")


def cpu_kind_environment(cpu, onednn, environ=None):
    """The environment of a process on ``cpu`` (a :data:`CPU_KINDS` name) with oneDNN ``onednn``."""
    import os

    env = dict(os.environ if environ is None else environ)
    if onednn != "default":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn == "on" else "0"
    env.update(CPU_KINDS[cpu])
    if cpu == "avx2":
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_cpu_max_isa=AVX2"]))
    return env


def enter_cpu_kind(args):
    """Re-run this script in the environment ``--cpu`` / ``--onednn`` ask for (it must be set before
    TensorFlow, PyTorch or XLA load); child processes inherit it. Returns in the re-run process."""
    import os
    import sys

    if (args.cpu, args.onednn) == ("native", "default") or os.environ.get(_MARK):
        return
    env = cpu_kind_environment(args.cpu, args.onednn)
    env[_MARK] = "1"
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def describe_cpu(environ=None):
    """E.g. "AMD EPYC, 2 threads; AVX-512 (VNNI, BF16); bfloat16 hardware yes; code held to AVX2;
    TF_ENABLE_ONEDNN_OPTS=1" (for the process ``environ`` describes, default this one's)."""
    import os

    from keras_nfnets.backend import cpu

    environ = os.environ if environ is None else environ
    model, flags = cpu.cpu_info()
    flags = flags or set()
    if "avx512f" in flags:
        extras = [name for flag, name in (("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16"), ("amx_tile", "AMX"))
                  if flag in flags]
        vector = "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
    else:
        vector = "AVX2" if "avx2" in flags else "no AVX2"
    hardware = {True: "yes", False: "no", None: "unknown"}[cpu.bf16_hardware(environ)]
    parts = [f"{model}, {os.cpu_count()} threads", vector, f"bfloat16 hardware {hardware}"]
    if environ.get("ONEDNN_MAX_CPU_ISA") or "xla_cpu_max_isa" in environ.get("XLA_FLAGS", ""):
        parts.append(f"code held to {environ.get('ONEDNN_MAX_CPU_ISA', 'AVX2')}")
    parts.append(f"TF_ENABLE_ONEDNN_OPTS={environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}")
    return "; ".join(parts)
