"""What this machine's CPU computes in hardware (``/proc/cpuinfo``), for advice before any work.

bfloat16 pays on a CPU only where it has bfloat16 arithmetic: x86's AVX512-BF16 (dot products)
or AMX-BF16 (tiles), Arm's BF16 extension. Elsewhere oneDNN converts every value in software
and a bfloat16 step is slower than a float32 one (docs/verification.md has the figures). A
``ONEDNN_MAX_CPU_ISA`` below those extensions holds oneDNN's code to the older instructions, as
on a CPU without them. This module imports nothing heavy.
"""

import functools
import os

# oneDNN ISA limits (ONEDNN_MAX_CPU_ISA) below which bfloat16 has no hardware path
_ISA_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


@functools.lru_cache(maxsize=None)
def cpu_info():
    """``(model name, set of feature flags)`` of the first CPU in ``/proc/cpuinfo``, or
    ``("unknown CPU", None)`` where the file does not exist (not Linux)."""
    model, flags = "unknown CPU", None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("flags", "Features") and flags is None:
                    flags = set(value.split())
                elif key in ("model name", "CPU part") and model == "unknown CPU":
                    model = value.strip()
    except OSError:
        pass
    return model, flags


def bf16_hardware(environ=None):
    """True where the CPU computes bfloat16 in hardware (and oneDNN may use it), False where it
    does not, None where the flags cannot be read."""
    environ = os.environ if environ is None else environ
    _, flags = cpu_info()
    if flags is None:
        return None
    if environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ISA_WITHOUT_BF16:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


# CPU features with which TensorFlow's x86-64 wheels turn oneDNN on by themselves
_ONEDNN_BY_DEFAULT = {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile"}


def onednn_on_by_default():
    """Whether TensorFlow would turn oneDNN on by itself on this CPU (AVX-512 VNNI/BF16, AVX-VNNI
    or AMX), so that keras_nfnets setting ``TF_ENABLE_ONEDNN_OPTS=1`` changed nothing."""
    _, flags = cpu_info()
    return bool(flags and flags & _ONEDNN_BY_DEFAULT)


_POLICY_NAMES = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
_advised = set()


def slow_precision_advice(compute_dtype, device_type):
    """Why computing in ``compute_dtype`` (``"bfloat16"``, ``"float16"``; a policy name such as
    ``"mixed_bfloat16"`` also does) will be slower than float32 on this ``device_type`` and what to
    use instead, or None: float16 on any CPU (computed in software there), bfloat16 on a CPU
    without bfloat16 arithmetic."""
    dtype = compute_dtype.split("_")[-1]
    if device_type != "CPU" or dtype not in _POLICY_NAMES:
        return None
    model, _ = cpu_info()
    policy = _POLICY_NAMES[dtype]
    if dtype == "float16":
        return (f"precision='{policy}' is slower than float32 on a CPU ({model}): CPUs compute float16 in software "
                "here. Use precision='float32', or 'mixed_bfloat16' on a CPU with AVX512-BF16/AMX.")
    if bf16_hardware() is False:
        return (f"precision='{policy}' is slower than float32 on this CPU ({model}): it has no bfloat16 arithmetic "
                "(AVX512-BF16, AMX-BF16 or Arm BF16), so every value is converted in software. Use "
                "precision='float32' here; bfloat16 pays on CPUs with those extensions (Intel Xeon from Sapphire "
                "Rapids, AMD from Zen 4) and on GPUs.")
    return None


def advise_precision(compute_dtype, device_type):
    """Warn once per process and dtype where :func:`slow_precision_advice` has advice."""
    import warnings

    advice = slow_precision_advice(compute_dtype, device_type)
    if advice and advice not in _advised:
        _advised.add(advice)
        warnings.warn(advice, stacklevel=3)
    return advice
