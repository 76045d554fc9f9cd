"""Convolution kernels that are fast for grouped convolutions on every device.

Keras 3 routes every grouped convolution on the TensorFlow backend through an
XLA-compiled function; on CPU its backward pass is two orders of magnitude
slower than a dense convolution. TensorFlow's own ``Conv2D`` op runs grouped
convolutions natively on GPU (cuDNN) and on x86 CPUs with oneDNN, so we call it
directly there, and fall back to one convolution per group (identical numerics)
where a build has no grouped kernel for the device (a probe decides once per process).
On other Keras backends ``keras.ops.conv`` is used.
"""

import functools

import keras
from keras import ops


def symmetric_padding(kernel_size, strides, dilation_rate):
    """PyTorch-style padding ``((s - 1) + d * (k - 1)) // 2`` on both sides (timm)."""
    return [((s - 1) + d * (k - 1)) // 2 for k, s, d in zip(kernel_size, strides, dilation_rate)]


@functools.lru_cache(maxsize=None)
def native_grouped_conv_supported(device_type):
    """Whether TensorFlow's Conv2D op runs a grouped conv forward and backward on ``device_type``.

    GPUs always do (cuDNN). On CPU it depends on the build (oneDNN); we probe once with a
    tiny graph-mode step and remember the answer for the process.
    """
    if device_type == "GPU":
        return True
    import tensorflow as tf

    @tf.function
    def probe(x, kernel):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = tf.nn.conv2d(x, kernel, 1, "SAME")
        return tape.gradient(y, [x, kernel])

    try:
        # Eagerly, outside any caller's tf.function or replica context (the first call may come
        # from inside a distributed train step).
        with tf.init_scope(), tf.device("/CPU:0"):
            probe(tf.ones((1, 4, 4, 4)), tf.ones((3, 3, 2, 4)))
        return True
    except Exception:  # the error class differs between builds; any failure means "no"
        return False


def current_device_type():
    import tensorflow as tf

    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


IMPLEMENTATIONS = ("auto", "native", "split")


def grouped_conv_implementation(implementation="auto"):
    """The grouped-conv path :func:`conv2d` takes on the TensorFlow backend: ``"native"`` (one
    Conv2D op) or ``"split"`` (one Conv2D per group); ``"auto"`` picks native where the current
    device has a grouped kernel."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"`implementation` must be one of {IMPLEMENTATIONS}; received {implementation!r}.")
    if implementation == "auto":
        return "native" if native_grouped_conv_supported(current_device_type()) else "split"
    return implementation


def conv2d(
    inputs, kernel, strides=(1, 1), padding="same", dilation_rate=(1, 1), groups=1, implementation="auto"
):
    """2-D convolution of NHWC ``inputs`` with an HWIO ``kernel`` (I = in_channels / groups).

    ``implementation`` selects the grouped path: ``"auto"`` (native where the device has a
    grouped kernel, else per-group), ``"native"`` or ``"split"`` (one conv per group).

    ``padding`` is ``"same"`` (TensorFlow SAME: asymmetric, extra row/column at the
    bottom/right), ``"valid"`` or ``"symmetric"`` (explicit zero padding of
    ``((s-1) + d(k-1)) // 2`` on every side, as PyTorch/timm).
    """
    strides = tuple(strides)
    dilation_rate = tuple(dilation_rate)
    if padding == "symmetric":
        pad_h, pad_w = symmetric_padding(kernel.shape[:2], strides, dilation_rate)
        if pad_h or pad_w:
            inputs = ops.pad(inputs, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
        padding = "valid"
    if keras.backend.backend() != "tensorflow":
        return ops.conv(inputs, kernel, strides=strides, padding=padding, dilation_rate=dilation_rate)

    import tensorflow as tf

    implementation = grouped_conv_implementation(implementation)
    tf_padding = padding.upper()
    if groups == 1 or implementation == "native":
        return tf.nn.conv2d(inputs, kernel, strides=strides, padding=tf_padding, dilations=dilation_rate)
    input_groups = tf.split(inputs, groups, axis=-1)
    kernel_groups = tf.split(kernel, groups, axis=-1)
    outputs = [
        tf.nn.conv2d(x, k, strides=strides, padding=tf_padding, dilations=dilation_rate)
        for x, k in zip(input_groups, kernel_groups)
    ]
    return tf.concat(outputs, axis=-1)
