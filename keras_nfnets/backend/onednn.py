"""oneDNN for TensorFlow on every x86-64 CPU, decided before TensorFlow loads.

TensorFlow's x86-64 Linux wheels carry oneDNN but turn it on by default only on CPUs with AVX-512
VNNI/BF16, AVX-VNNI or AMX. On the others (AVX2 laptops, older cloud machines, AMD before Zen 4)
its convolutions run on Eigen, which has no gradient for grouped convolutions (NF-RegNets and
NFNets then train one convolution per group) and trains the digits job 6× slower (docs/layers.md,
"Every x86 CPU"). TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, while it loads, so the choice
can only be made before: :func:`prefer_onednn` sets it to ``1`` where the user has not set it and
TensorFlow is not loaded yet. ``import keras_nfnets`` and the ``nfnets`` program call it; this
module imports nothing heavy.
"""

import os
import platform
import sys

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
SET_BY_US = "KERAS_NFNETS_SET_ONEDNN"  # the value keras_nfnets gave VARIABLE (child processes inherit both)
X86_64 = ("x86_64", "amd64", "x64")

# How this process's TF_ENABLE_ONEDNN_OPTS came about (what `nfnets train` reports):
# "keras_nfnets" (set here), "user" (set before), "tensorflow" (TensorFlow loaded first: its own
# default), "platform" (not an x86-64 CPU: TensorFlow's default), or None (prefer_onednn not called).
decided_by = None


def decide(environ, loaded_modules, machine):
    """Who decides oneDNN's state (see :data:`decided_by`); sets ``TF_ENABLE_ONEDNN_OPTS=1`` in
    ``environ`` where keras_nfnets may: an x86-64 ``machine``, the variable unset, and TensorFlow
    not among ``loaded_modules``."""
    if VARIABLE in environ:
        return "keras_nfnets" if environ.get(SET_BY_US) == environ[VARIABLE] else "user"
    if "tensorflow" in loaded_modules:
        return "tensorflow"
    if machine.lower() not in X86_64:
        return "platform"
    environ[VARIABLE] = environ[SET_BY_US] = "1"
    return "keras_nfnets"


def prefer_onednn():
    """:func:`decide` for this process (``os.environ``, inherited by its child processes), once."""
    global decided_by
    if decided_by is None:
        decided_by = decide(os.environ, sys.modules, platform.machine())
    return decided_by
