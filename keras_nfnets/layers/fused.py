"""XLA-fused elementwise kernels with fused gradients, for the TensorFlow backend.

TensorFlow executes each elementwise op of an activation, a squeeze-excite gate or their
gradients as a separate pass over memory. Compiling just these small functions with XLA, with
an explicitly compiled backward pass, fuses each into one loop. The convolutions around them
are never compiled (XLA's grouped convolution is slow on CPU). Set the environment variable
``KERAS_NFNETS_FUSED_KERNELS=0`` to run plain TensorFlow ops instead (identical maths).
"""

import os

import keras


def fused_kernels_enabled():
    return keras.backend.backend() == "tensorflow" and os.environ.get("KERAS_NFNETS_FUSED_KERNELS", "1") != "0"


def xla_fused(fn):
    """``fn(*tensors) -> tensor`` as a custom-gradient op whose forward and backward are each one
    XLA-compiled function (the backward is the vector-Jacobian product of ``fn``)."""
    import tensorflow as tf

    # reduce_retracing: one trace with relaxed shapes serves every input size (XLA still compiles
    # one kernel per concrete shape), so eager calls at new sizes do not retrace (nor warn).
    forward = tf.function(fn, jit_compile=True, autograph=False, reduce_retracing=True)

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def backward(args, dy):
        with tf.GradientTape() as tape:
            tape.watch(args)
            y = fn(*args)
        return tape.gradient(y, args, output_gradients=dy)

    @tf.custom_gradient
    def fused(*args):
        return forward(*args), lambda dy: backward(args, dy)

    return fused
