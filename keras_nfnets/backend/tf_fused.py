"""TensorFlow's fused kernels (entries of the backend table, :mod:`keras_nfnets.backend.tf_backend`).

TensorFlow runs each elementwise op of an activation, of Scaled WS and of the optimizer as a
separate pass over memory, in bfloat16 through Eigen's scalar conversions. Here each of them is
one XLA program forward and one backward (the convolutions around them are never compiled:
XLA's grouped convolution is slow on CPU), computing in float32 whatever the compute dtype;
``KERAS_NFNETS_FUSED_KERNELS=0`` turns them off (identical maths, plain ops).
"""

import functools
import logging
import os

from keras_nfnets.backend.common import plain_scaled_product, plain_standardized_kernel
from keras_nfnets.layer_options import ELEMENTWISE_ACTIVATIONS


def fused_kernels_enabled():
    return os.environ.get("KERAS_NFNETS_FUSED_KERNELS", "1") != "0"


class _OneProgramPerShape(logging.Filter):
    """TensorFlow counts the traces of every ``tf.function`` made from one Python function as
    retracing and warns after five; the programs here are made once per shape on purpose."""

    PROGRAMS = ("_standardization_programs.<locals>", "xla_fused.<locals>", "_compiled.<locals>")

    def filter(self, record):
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and any(p in message for p in self.PROGRAMS))


@functools.lru_cache(maxsize=None)
def _quiet_retracing_warnings():
    import tensorflow as tf

    tf.get_logger().addFilter(_OneProgramPerShape())


@functools.lru_cache(maxsize=None)
def _standardization_programs(forward, vjp, dtype, static, shape):
    """The XLA programs of Scaled WS for one kernel shape (the fan-in is read from it; one
    function per shape traces once, where one shared by every layer would retrace, and warn, at
    each layer of an eager call): ``(kernel, gain) -> standardized kernel in dtype`` and
    ``(kernel, gain, ∂L/∂Ŵ) -> (∂L/∂kernel, ∂L/∂gain)``."""
    import tensorflow as tf

    _quiet_retracing_warnings()
    static = dict(static)

    def as_matrix(kernel):  # (1, 1, fan-in, out): XLA:CPU reduces a matrix's rows 30% faster than three axes
        return tf.reshape(kernel, [1, 1, -1, kernel.shape[-1]])

    def forward_kernel(kernel, gain):
        return tf.reshape(rounded(forward(as_matrix(kernel), gain, **static), dtype), kernel.shape)

    def backward_kernel(kernel, gain, upstream):
        kernel_grad, gain_grad = vjp(as_matrix(kernel), gain, as_matrix(tf.cast(upstream, tf.float32)), **static)
        return tf.reshape(kernel_grad, kernel.shape), gain_grad

    forward_program = tf.function(forward_kernel, jit_compile=True, autograph=False)
    backward_program = tf.function(backward_kernel, jit_compile=True, autograph=False)
    return forward_program, backward_program


def standardized_kernel(forward, vjp, kernel, gain, dtype, **static):
    """Scaled WS as one XLA program forward and one backward (``vjp``, from the kernel alone):
    TensorFlow's own ops would take a dozen weight-sized passes each way and keep their
    intermediates (the centred kernel, the standardized one in float32) from the forward pass to
    the backward; here only the kernel and gain are kept, and the kernel leaves in ``dtype``."""
    import tensorflow as tf

    if not fused_kernels_enabled():
        return plain_standardized_kernel(forward, vjp, kernel, gain, dtype, **static)
    forward_program, backward_program = _standardization_programs(forward, vjp, dtype, tuple(sorted(static.items())), tuple(kernel.shape))

    @tf.custom_gradient
    def standardized(kernel, gain):
        return forward_program(kernel, gain), lambda upstream: backward_program(kernel, gain, upstream)

    return standardized(kernel, gain)


def standardized_conv(conv, conv_gradients, forward, vjp, inputs, kernel, gain, bias, dtype, recompute, **static):
    """``conv(inputs, Ŵ, bias)`` with ``Ŵ`` the Scaled-WS kernel, its gradients taken by
    ``conv_gradients(inputs, Ŵ, ∂L/∂y) -> (∂L/∂inputs, ∂L/∂Ŵ)`` (TensorFlow's own gradient ops,
    nothing of the forward pass recomputed) and the WS ``vjp``. Each standardization waits for the
    convolution's input (forward) or gradient (backward): TensorFlow would otherwise compute every
    layer's ``Ŵ`` at the start of the step, a copy of the weights alive at once. ``recompute``:
    the backward computes ``Ŵ`` again (one XLA program) instead of keeping it from the forward
    pass, where holding every layer's would cost a float32 copy of the weights at the peak
    (0.17 GiB of NFNet-F0's step at batch 2; in bfloat16 the copy is half and the time, 2-3% of
    the step, is kept instead)."""
    import tensorflow as tf

    forward_program, backward_program = _standardization_programs(forward, vjp, dtype, tuple(sorted(static.items())), tuple(kernel.shape))

    def standardized_when(ready, kernel, gain):
        # only once ``ready`` is: TensorFlow runs an op as soon as its inputs are, and every layer's
        # kernel is computable at the start of the step (all of them alive at once: a weights' copy)
        with tf.control_dependencies([ready]):
            return forward_program(kernel, gain)

    @tf.custom_gradient
    def convolved(x, kernel, gain, *bias):
        standardized = standardized_when(x, kernel, gain)
        outputs = conv(x, standardized, *bias)

        def gradients(upstream):
            kept = standardized_when(upstream, kernel, gain) if recompute else standardized
            input_grad, standardized_grad = conv_gradients(x, kept, upstream)
            kernel_grad, gain_grad = backward_program(kernel, gain, standardized_grad)
            bias_grad = [tf.raw_ops.BiasAddGrad(out_backprop=upstream)] if bias else []
            return [input_grad, kernel_grad, gain_grad, *bias_grad]

        return outputs, gradients

    return convolved(inputs, kernel, gain, *([] if bias is None else [bias]))


def rounded(values, dtype):
    """float32 ``values`` in ``dtype``. To bfloat16 by integer round-to-nearest-even on the bits,
    NaN kept NaN: the same numbers as a cast, but XLA:CPU's own conversion beside a
    transcendental stops the loop from vectorising (a bfloat16 SiLU kernel: 6.5 -> 3.3 ms)."""
    import tensorflow as tf

    if tf.as_dtype(dtype) != tf.bfloat16:
        return tf.cast(values, dtype)
    bits = tf.bitcast(values, tf.uint32)
    lsb = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 16), 1)
    upper = tf.bitwise.right_shift(bits + (0x7FFF + lsb), 16)
    upper = tf.where(tf.math.is_nan(values), tf.constant(0x7FC0, tf.uint32), upper)
    return tf.bitcast(tf.cast(upper, tf.uint16), tf.bfloat16)


def xla_fused(fn):
    """``fn(*float32 tensors) -> float32 tensor`` as a custom-gradient op whose forward and backward
    are each one XLA-compiled function (the backward is the vector-Jacobian product of ``fn``).
    The arguments may be of any float dtype: ``fn`` computes in float32 and the result (each
    gradient) leaves in the first argument's (its argument's) dtype, rounded once. TensorFlow
    would run each elementwise op of an activation and of its gradient as a separate pass over
    memory (in bfloat16 through Eigen's scalar conversions)."""
    import tensorflow as tf

    _quiet_retracing_warnings()

    def float32(args):
        return [tf.cast(a, tf.float32) for a in args]

    # reduce_retracing: one trace with relaxed shapes serves every input size (XLA still compiles
    # one kernel per concrete shape), so eager calls at new sizes do not retrace (nor warn).
    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def forward(*args):
        return rounded(fn(*float32(args)), args[0].dtype)

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def backward(args, dy):
        values = float32(args)
        with tf.GradientTape() as tape:
            tape.watch(values)
            y = fn(*values)
        grads = tape.gradient(y, values, output_gradients=tf.cast(dy, tf.float32))
        return [rounded(g, a.dtype) for g, a in zip(grads, args)]

    @tf.custom_gradient
    def fused(*args):
        return forward(*args), lambda dy: backward(args, dy)

    return fused


@functools.lru_cache(maxsize=None)
def _fused_gamma_activation(fn, gamma):
    return xla_fused(lambda x: fn(x) * gamma)


def scaled_activation(name, fn, gamma, inputs):
    """One fused kernel forward and one backward per (activation, γ): SiLU/GELU training steps
    get about 1.5× cheaper on CPU; in bfloat16 the kernels compute in float32 and round once
    (4.5× faster than XLA:CPU's bfloat16 arithmetic, and closer to the float32 result)."""
    if name not in ELEMENTWISE_ACTIVATIONS or not fused_kernels_enabled():
        return None
    return _fused_gamma_activation(fn, gamma)(inputs)


@functools.lru_cache(maxsize=None)
def _compiled(fn, static, signature):  # one function per (shape, dtype)s: each traces once
    import tensorflow as tf

    _quiet_retracing_warnings()
    return tf.function(lambda *arrays: fn(*arrays, **dict(static)), jit_compile=True, autograph=False)


def fused(fn, *arrays, **static):
    """``fn(*arrays, **static)`` as one XLA program per shape (nothing differentiates it: the
    optimizer's AGC and weight decay, two weight-sized passes instead of about ten)."""
    if not fused_kernels_enabled():
        return fn(*arrays, **static)
    signature = tuple((tuple(a.shape), str(a.dtype)) for a in arrays)
    return _compiled(fn, tuple(sorted(static.items())), signature)(*arrays)


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


@functools.lru_cache(maxsize=None)
def _fused_scaled_product(scale):
    return xla_fused(lambda x, factor: x * (factor * scale))


def scaled_product(inputs, factor, scale):
    """``inputs · factor · scale`` (a block's SkipInit gain and α; an SE gate and its ×2) as one
    kernel each way, the factor's gradient reduced in the same program."""
    if not fused_kernels_enabled():
        return plain_scaled_product(inputs, factor, scale)
    return _fused_scaled_product(float(scale))(inputs, factor)
