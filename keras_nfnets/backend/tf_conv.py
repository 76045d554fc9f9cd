"""TensorFlow's convolutions (entries of the backend table, :mod:`keras_nfnets.backend.tf_backend`).

Convolutions call TensorFlow's own ``Conv2D`` op: Keras 3 routes every grouped convolution on
this backend through an XLA-compiled function whose CPU backward pass is two orders of magnitude
slower, while TF's op runs grouped convolutions natively on GPU (cuDNN) and on x86 CPUs with
oneDNN. A 1×1 convolution in 16 bits on a CPU is a matrix product; a Scaled-WS convolution has
a hand-made backward (:func:`standardized_conv2d`).
"""

from keras_nfnets.backend.common import (
    pad_symmetric,
    plain_standardized_conv2d,
    split_groups,
    symmetric_padding,
)
from keras_nfnets.backend.tf_fused import fused_kernels_enabled, standardized_conv


def _onednn_on():
    from keras_nfnets._compat import tensorflow_runs_onednn

    return bool(tensorflow_runs_onednn())


def device_type():
    import tensorflow as tf

    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


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


def _pointwise_on_cpu(inputs, kernel, groups):
    """Only where oneDNN runs (the AMX speed-up is oneDNN's): Eigen's bfloat16 matrix product
    (oneDNN off) rounds partial sums and lands further from float32 than one rounding."""
    import tensorflow as tf

    return (groups == 1 and tuple(kernel.shape[:2]) == (1, 1) and inputs.dtype != tf.float32
            and device_type() == "CPU" and _onednn_on())


def conv2d(inputs, kernel, strides, padding, dilation_rate, groups, implementation, bias=None):
    """TensorFlow's ``Conv2D`` (``MatMul`` for a 1×1 convolution in 16 bits on a CPU:
    :func:`pointwise_as_matmul`) and ``BiasAdd``, which TensorFlow's graph optimiser fuses with
    ``Conv2D`` into one oneDNN call, and whose gradient is one reduction."""
    import tensorflow as tf

    if padding == "symmetric":
        inputs, padding = pad_symmetric(inputs, kernel.shape[:2], strides, dilation_rate)

    def conv(x, k):
        return tf.nn.conv2d(x, k, strides=strides, padding=padding.upper(), dilations=dilation_rate)

    if _pointwise_on_cpu(inputs, kernel, groups):
        outputs = pointwise_as_matmul(inputs, kernel, strides)  # (MatMul + BiasAdd fused is no faster here)
    elif implementation == "native" or groups == 1:
        outputs = conv(inputs, kernel)
    else:
        outputs = split_groups(conv, inputs, kernel, groups)
    if bias is None:
        return outputs
    if groups > 1 and not _onednn_on():  # Grappler would fuse Conv2D + BiasAdd into _FusedConv2D,
        return outputs + bias  # whose Eigen kernel has no grouped form: a plain add is left alone
    return tf.nn.bias_add(outputs, bias)


def conv2d_gradients(inputs, kernel, upstream, strides, padding, dilation_rate, groups):
    """``(∂L/∂inputs, ∂L/∂kernel)`` of :func:`conv2d`'s one-op paths (a grouped convolution runs
    natively) from ``upstream`` = ∂L/∂outputs, by the ops TensorFlow's autodiff would run:
    ``Conv2DBackpropInput`` and ``Conv2DBackpropFilter``, or the two matrix products of the 1×1
    ``MatMul``; the symmetric padding's gradient is a crop."""
    import tensorflow as tf

    padded, conv_padding = inputs, padding
    if padding == "symmetric":
        padded, conv_padding = pad_symmetric(inputs, kernel.shape[:2], strides, dilation_rate)
    if _pointwise_on_cpu(inputs, kernel, groups):
        sampled = padded[:, :: strides[0], :: strides[1], :] if tuple(strides) != (1, 1) else padded
        channels_in, channels_out = kernel.shape[2], kernel.shape[3]
        rows, upstream_rows = tf.reshape(sampled, [-1, channels_in]), tf.reshape(upstream, [-1, channels_out])
        kernel_grad = tf.reshape(tf.matmul(rows, upstream_rows, transpose_a=True), kernel.shape)
        input_grad = tf.reshape(tf.matmul(upstream_rows, tf.reshape(kernel, kernel.shape[2:]), transpose_b=True),
                                tf.shape(sampled))
        if tuple(strides) != (1, 1):  # back to the pixels the 1×1 read, zeros elsewhere
            shape = tf.shape(padded)
            input_grad = tf.raw_ops.StridedSliceGrad(shape=shape, begin=[0, 0, 0, 0], end=shape,
                                                     strides=[1, strides[0], strides[1], 1], dy=input_grad)
    else:
        options = dict(strides=[1, *strides, 1], padding=conv_padding.upper(), dilations=[1, *dilation_rate, 1])
        input_grad = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(padded), filter=kernel, out_backprop=upstream,
                                                    **options)
        kernel_grad = tf.raw_ops.Conv2DBackpropFilter(input=padded, filter_sizes=tf.shape(kernel),
                                                      out_backprop=upstream, **options)
    if padded is not inputs:
        pad_h, pad_w = symmetric_padding(kernel.shape[:2], strides, dilation_rate)
        height, width = tf.shape(inputs)[1], tf.shape(inputs)[2]
        input_grad = input_grad[:, pad_h:pad_h + height, pad_w:pad_w + width, :]
    return input_grad, kernel_grad


def standardized_conv2d(forward, vjp, inputs, kernel, gain, dtype, strides, padding, dilation_rate, groups,
                        implementation, bias=None, **static):
    """A Scaled-WS convolution with a hand-made backward where the convolution is one op
    (:func:`keras_nfnets.backend.tf_fused.standardized_conv`: the standardized kernel computed
    just in time, and again in the backward in float32); one conv per group keeps TensorFlow's
    autodiff."""
    conv_args = (strides, padding, dilation_rate, groups, implementation)
    if not fused_kernels_enabled() or (groups > 1 and implementation != "native"):
        return plain_standardized_conv2d(forward, vjp, inputs, kernel, gain, dtype, *conv_args, bias=bias, **static)
    return standardized_conv(
        lambda x, w, *b: conv2d(x, w, *conv_args, bias=b[0] if b else None),
        lambda x, w, upstream: conv2d_gradients(x, w, upstream, strides, padding, dilation_rate, groups),
        forward, vjp, inputs, kernel, gain, bias, dtype, recompute=dtype == "float32", **static)
