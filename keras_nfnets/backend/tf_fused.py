"""TensorFlow's fused kernels (entries of the backend table, :mod:`keras_nfnets.backend.tf_backend`).

TensorFlow runs each elementwise op of an activation, of Scaled WS and of the optimizer as a
separate pass over memory, in bfloat16 through Eigen's scalar conversions. Here each of them is
one XLA program forward and one backward (the convolutions around them are never compiled:
XLA's grouped convolution is slow on CPU), computing in float32 whatever the compute dtype;
``KERAS_NFNETS_FUSED_KERNELS=0`` turns them off (identical maths, plain ops).
"""

import functools
import os

from keras_nfnets.backend.common import plain_standardized_kernel
from keras_nfnets.layer_options import ELEMENTWISE_ACTIVATIONS


def pointwise_as_matmul(inputs, kernel, strides):
    """A 1×1 convolution as one matrix product over the pixels (k = 1 pads nothing, "same" and
    "valid" alike: output pixel i reads input pixel s·i). oneDNN's bfloat16 matmul runs on AMX
    tiles 2-4× faster than its 1×1 convolution forward and backward (the weight gradient above
    all: 0.3 against 1.0 TFLOP/s at NFNet-F0's shapes on 2 Sapphire Rapids cores;
    ``tools/bench_pointwise_conv.py``); in float32 the two are even."""
    import tensorflow as tf

    if tuple(strides) != (1, 1):
        inputs = inputs[:, :: strides[0], :: strides[1], :]
    shape = tf.shape(inputs)
    outputs = tf.matmul(tf.reshape(inputs, [-1, kernel.shape[2]]), tf.reshape(kernel, kernel.shape[2:]))
    return tf.reshape(outputs, tf.concat([shape[:-1], [kernel.shape[3]]], axis=0))


def fused_kernels_enabled():
    return os.environ.get("KERAS_NFNETS_FUSED_KERNELS", "1") != "0"


@functools.lru_cache(maxsize=None)
def _fused_standardization(forward, vjp, dtype, static):
    import tensorflow as tf

    static = dict(static)
    # one trace (and XLA program) per kernel shape: the fan-in is read from the static shape
    forward_kernel = tf.function(lambda kernel, gain: tf.cast(forward(kernel, gain, **static), dtype),
                                 jit_compile=True, autograph=False)
    backward_kernel = tf.function(lambda kernel, gain, upstream: vjp(kernel, gain, tf.cast(upstream, tf.float32),
                                                                     **static), jit_compile=True, autograph=False)

    @tf.custom_gradient
    def standardized(kernel, gain):
        return forward_kernel(kernel, gain), lambda upstream: backward_kernel(kernel, gain, upstream)

    return standardized


def standardized_kernel(forward, vjp, kernel, gain, dtype, **static):
    """Scaled WS as one XLA program forward and one backward (``vjp``, from the kernel alone):
    TensorFlow's own ops would take a dozen weight-sized passes each way and keep their
    intermediates (the centred kernel, the standardized one in float32) from the forward pass to
    the backward; here only the kernel and gain are kept, and the kernel leaves in ``dtype``."""
    if not fused_kernels_enabled():
        return plain_standardized_kernel(forward, vjp, kernel, gain, dtype, **static)
    return _fused_standardization(forward, vjp, dtype, tuple(sorted(static.items())))(kernel, gain)


def xla_fused(fn):
    """``fn(*tensors) -> tensor`` as a custom-gradient op whose forward and backward are each one
    XLA-compiled function (the backward is the vector-Jacobian product of ``fn``): TensorFlow
    would run each elementwise op of an activation and of its gradient as a separate pass over
    memory. The convolutions around them are never compiled (XLA's grouped conv is slow on CPU)."""
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


@functools.lru_cache(maxsize=None)
def _fused_gamma_activation(fn, gamma):
    from keras import ops

    def scaled(x):  # in float32 whatever x's dtype: XLA:CPU's bfloat16 elementwise code is 2x slower
        return ops.cast(fn(ops.cast(x, "float32")) * gamma, x.dtype)

    return xla_fused(scaled)


def scaled_activation(name, fn, gamma, inputs):
    """One fused kernel forward and one backward per (activation, γ): SiLU/GELU training steps
    get about 1.5× cheaper on CPU; in bfloat16 the kernels compute in float32 and round once
    (2.3× faster than XLA:CPU's bfloat16 arithmetic, and closer to the float32 result)."""
    if name not in ELEMENTWISE_ACTIVATIONS or not fused_kernels_enabled():
        return None
    return _fused_gamma_activation(fn, gamma)(inputs)


@functools.lru_cache(maxsize=None)
def _compiled(fn, static):
    import tensorflow as tf

    return tf.function(lambda *arrays: fn(*arrays, **dict(static)), jit_compile=True, autograph=False)


def fused(fn, *arrays, **static):
    """``fn(*arrays, **static)`` as one XLA program per shape (nothing differentiates it: the
    optimizer's AGC and weight decay, two weight-sized passes instead of about ten)."""
    if not fused_kernels_enabled():
        return fn(*arrays, **static)
    return _compiled(fn, tuple(sorted(static.items())))(*arrays)


def sgd_variable_update(variable, momentum_buffer, gradient, learning_rate, momentum, nesterov):
    """Keras' SGD step of one variable as TensorFlow's fused training op, in place:
    ``m = momentum·m − lr·g``, then ``w += momentum·m − lr·g`` (Nesterov) or ``w += m`` (Keras'
    own formula; ``ResourceApplyKerasMomentum``), one pass instead of six."""
    import keras
    import tensorflow as tf

    def handle(v):  # a keras.Variable holds a tf.Variable (a replica's own inside strategy.extended.update)
        return (v.value if isinstance(v, keras.Variable) else v).handle

    dtype = keras.backend.standardize_dtype(variable.dtype)
    learning_rate = tf.cast(learning_rate, dtype)
    gradient = tf.cast(gradient, dtype)
    if momentum_buffer is None:
        tf.raw_ops.ResourceApplyGradientDescent(var=handle(variable), alpha=learning_rate, delta=gradient)
    else:
        tf.raw_ops.ResourceApplyKerasMomentum(var=handle(variable), accum=handle(momentum_buffer), lr=learning_rate,
                                              grad=gradient, momentum=tf.cast(momentum, dtype),
                                              use_nesterov=bool(nesterov))
    return True
