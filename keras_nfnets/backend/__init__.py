"""Everything that differs between the Keras backends, behind one table.

One module per backend (:mod:`.tf_backend`, :mod:`.jax_backend`, :mod:`.torch_backend`) defines
each entry of :data:`TABLE`; the layers, the optimizer, the EMA and the strategy code call these
functions and never ask which backend runs (``tests/backend/test_backend_table.py`` fails if a module
outside this package does). Importing this package imports no backend.
"""

import functools
import importlib
import os

TABLE = {
    "conv2d": "convolution of NHWC inputs with an HWIO kernel; padding 'same' or 'valid'",
    "native_grouped_conv_supported": "whether the backend's own grouped convolution is fast (and has gradients) "
                                     "on a device type, in a dtype",
    "unsupported_precision": "None, or why convolutions cannot train in a compute dtype where the backend computes",
    "kernel_moments": "per-output-channel mean and variance of an HWIO kernel over its fan-in (Scaled WS)",
    "standardized_kernel": "standardize(kernel, gain, **static) cast to a compute dtype, by the backend's fastest "
                           "path (TensorFlow: one XLA kernel each way, keeping only the kernel for the backward)",
    "standardized_conv2d": "conv2d of the standardized kernel (arguments as standardized_kernel's and conv2d's), "
                           "differentiated by the backend's least-memory path (TensorFlow: the backward recomputes "
                           "the kernel instead of keeping it)",
    "compiled_when_eager": "fn(*arrays, **static) as one compiled program per shape when called eagerly where the "
                           "backend would otherwise compile op by op (JAX), else fn itself",
    "variable_initialization": "a context manager under which models are built: Keras' random initialisers drawn "
                               "as the backend draws them fastest, with the same values",
    "scaled_activation": "γ · g(x) by a faster backend path, or None for the portable ops",
    "scaled_product": "x · factor · scale in x's dtype (a SkipInit gain and α, an SE gate and its ×2) by the "
                      "backend's fastest path",
    "fused": "fn(*arrays, **static) as one compiled program per shape where the backend would run it op by op "
             "(TensorFlow: XLA), for code nothing differentiates (the optimizer's AGC and weight decay)",
    "sgd_variable_update": "fn(variable, momentum buffer or None, gradient, learning rate, momentum, nesterov) -> "
                           "bool: one variable's SGD step in place by a fused op; False where Keras' own step runs",
    "sgd_momentum_step": "a multi-tensor SGD momentum update of prepared gradients, or None (Keras' per-variable path)",
    "ema_updater": "the per-step EMA update as the backend runs it fastest",
    "accumulate_on_replicas": "fn(optimizer, grads, variables) -> bool: one micro-batch of gradient accumulation "
                              "where Keras' own fails (a tf.distribute replica context); False where Keras' runs",
    "device_type": "'GPU', 'TPU' or 'CPU': where the backend computes by default",
    "compute_description": "a few words on what computes (the device; on a CPU, the kernels and the grouped-conv path)",
    "compute_devices": "(kind, compute capability or None) of each device a strategy computes on (mixed-precision check)",
    "make_strategy": "what train() needs of a distribution strategy, by name",
    "is_multi_worker": "whether a strategy spans several worker processes",
    "all_workers": "an int from every worker process of a strategy, in worker order (a collective: a barrier)",
    "cluster_environment": "the variables that make process `index` a worker of a cluster at 127.0.0.1:ports",
    "prepare_multi_worker_model": "what a compiled model needs before fit/evaluate in a multi-worker cluster",
    "jit_compile": "what model.compile gets for train(jit_compile='auto'|True|False) under a strategy "
                   "(a ValueError where the backend cannot compile the step)",
    "start_tensorflow": "TensorFlow's devices at the command line's quiet start (JAX/PyTorch: tf.data only)",
}
MODULES = {"tensorflow": "tf_backend", "jax": "jax_backend", "torch": "torch_backend"}


def selected():
    """The backend Keras will load (``KERAS_BACKEND``, else TensorFlow), read without importing
    Keras: the command line's quiet start needs it before Keras is imported."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def loads_tensorflow_next():
    """Whether the next import of Keras will load TensorFlow for the first time, with its logs left
    to TensorFlow's default (the TensorFlow backend selected, TensorFlow not loaded yet, the user
    has not set ``TF_CPP_MIN_LOG_LEVEL``): the library then holds its start-up lines."""
    import sys

    return selected() == "tensorflow" and "tensorflow" not in sys.modules and "TF_CPP_MIN_LOG_LEVEL" not in os.environ


@functools.lru_cache(maxsize=None)
def for_backend(name):
    """The table module of backend ``name``."""
    if name not in MODULES:
        raise ValueError(f"Unknown Keras backend {name!r}; keras_nfnets runs on {', '.join(MODULES)}.")
    module = importlib.import_module(f"{__name__}.{MODULES[name]}")
    missing = [entry for entry in TABLE if not hasattr(module, entry)]
    if missing:
        raise NotImplementedError(f"keras_nfnets.backend.{MODULES[name]} lacks {missing}")
    return module


def current():
    """The table module of the backend Keras runs on."""
    import keras

    return for_backend(keras.backend.backend())


def __getattr__(entry):  # keras_nfnets.backend.conv2d(...) is the current backend's
    if entry in TABLE:
        return getattr(current(), entry)
    raise AttributeError(f"module {__name__!r} has no attribute {entry!r}")
