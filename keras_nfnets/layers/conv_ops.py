"""Convolution kernels that are fast for grouped convolutions on every device.

Keras 3 routes every grouped convolution on the TensorFlow backend through an
XLA-compiled function; on CPU its backward pass is two orders of magnitude
slower than a dense convolution. TensorFlow's own ``Conv2D`` op runs grouped
convolutions natively on GPU (cuDNN) and on x86 CPUs with oneDNN, so we call it
directly there, and fall back to one convolution per group (identical numerics)
where a build has no grouped kernel for the device (a probe decides once per process).
On PyTorch the convolution runs on a channels-last view of the NHWC tensor (no copies; Keras'
own ``ops.conv`` copies every input to NCHW and back). On JAX ``keras.ops.conv``
(``lax.conv_general_dilated``), with grouped convs split per group on CPU, where XLA's grouped
backward pass is about 100x slower.
"""

import functools

import keras
from keras import ops


def symmetric_padding(kernel_size, strides, dilation_rate):
    """PyTorch-style padding ``((s - 1) + d * (k - 1)) // 2`` on both sides (timm)."""
    return [((s - 1) + d * (k - 1)) // 2 for k, s, d in zip(kernel_size, strides, dilation_rate)]


@functools.lru_cache(maxsize=None)
def native_grouped_conv_supported(device_type, backend="tensorflow"):
    """Whether ``backend``'s own grouped convolution is fast forward and backward on ``device_type``.

    GPUs and TPUs always are (cuDNN, XLA). On CPU: TensorFlow depends on the build (oneDNN; we
    probe once with a tiny graph-mode step and remember the answer for the process); XLA:CPU
    (JAX) is not: its grouped conv backward is ~100x slower than one conv per group at NF-RegNet
    shapes (``tools/bench_grouped_conv.py``); PyTorch's oneDNN kernels are.
    """
    if device_type != "CPU" or backend == "torch":
        return True
    if backend == "jax":
        return False
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
    """``"GPU"``, ``"TPU"`` or ``"CPU"``: where the current Keras backend computes by default."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend().upper()
    if backend == "torch":
        import torch

        return "GPU" if torch.cuda.is_available() else "CPU"
    import tensorflow as tf

    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


@functools.lru_cache(maxsize=None)
def _jax_on_cpu():
    import jax

    return jax.default_backend() == "cpu"


IMPLEMENTATIONS = ("auto", "native", "split")


def grouped_conv_implementation(implementation="auto"):
    """The grouped-conv path :func:`conv2d` takes: ``"native"`` (the backend's grouped conv) or
    ``"split"`` (one conv per group, identical numerics); ``"auto"`` picks native where the current
    backend and device have a fast grouped kernel (always on PyTorch, which takes no split path)."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"`implementation` must be one of {IMPLEMENTATIONS}; received {implementation!r}.")
    if implementation == "auto":
        backend = keras.backend.backend()
        return "native" if native_grouped_conv_supported(current_device_type(), backend) else "split"
    return implementation


def conv2d(
    inputs, kernel, strides=(1, 1), padding="same", dilation_rate=(1, 1), groups=1, implementation="auto"
):
    """2-D convolution of NHWC ``inputs`` with an HWIO ``kernel`` (I = in_channels / groups).

    ``implementation`` selects the grouped path: ``"auto"`` (native where the backend and device
    have a fast grouped kernel, else per-group), ``"native"`` or ``"split"`` (one conv per group).

    ``padding`` is ``"same"`` (TensorFlow SAME: asymmetric, extra row/column at the
    bottom/right), ``"valid"`` or ``"symmetric"`` (explicit zero padding of
    ``((s-1) + d(k-1)) // 2`` on every side, as PyTorch/timm).
    """
    strides = tuple(strides)
    dilation_rate = tuple(dilation_rate)
    backend = keras.backend.backend()
    if backend == "torch":  # PyTorch's grouped kernels are fast everywhere: "split" only when asked for
        if groups > 1 and implementation == "split":
            return ops.concatenate(
                [_torch_conv2d(x, k, strides, padding, dilation_rate)
                 for x, k in zip(ops.split(inputs, groups, axis=-1), ops.split(kernel, groups, axis=-1))], axis=-1)
        return _torch_conv2d(inputs, kernel, strides, padding, dilation_rate)
    if padding == "symmetric":
        pad_h, pad_w = symmetric_padding(kernel.shape[:2], strides, dilation_rate)
        if pad_h or pad_w:
            inputs = ops.pad(inputs, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
        padding = "valid"
    implementation = grouped_conv_implementation(implementation) if groups > 1 else "native"
    if backend == "jax" and groups == 1 and tuple(kernel.shape[:2]) == (1, 1) and _jax_on_cpu():
        # a 1x1 conv is a matmul; XLA:CPU's dot is ~3x faster than its conv backward pass
        if strides != (1, 1):  # k = 1 pads nothing ("same" and "valid" alike): output row i reads row s·i
            inputs = inputs[:, :: strides[0], :: strides[1], :]
        return ops.matmul(inputs, kernel[0, 0])
    if backend != "tensorflow":
        def conv(x, k):
            return ops.conv(x, k, strides=strides, padding=padding, dilation_rate=dilation_rate)

        if implementation == "native":
            return conv(inputs, kernel)
        return ops.concatenate(
            [conv(x, k) for x, k in zip(ops.split(inputs, groups, axis=-1), ops.split(kernel, groups, axis=-1))],
            axis=-1)

    import tensorflow as tf

    tf_padding = padding.upper()
    if implementation == "native":
        return tf.nn.conv2d(inputs, kernel, strides=strides, padding=tf_padding, dilations=dilation_rate)
    input_groups = tf.split(inputs, groups, axis=-1)
    kernel_groups = tf.split(kernel, groups, axis=-1)
    outputs = [
        tf.nn.conv2d(x, k, strides=strides, padding=tf_padding, dilations=dilation_rate)
        for x, k in zip(input_groups, kernel_groups)
    ]
    return tf.concat(outputs, axis=-1)


def _same_padding(size, kernel_size, stride, dilation):
    """TensorFlow SAME padding of one spatial dimension as ``(before, after)`` (extra at the end)."""
    extent = dilation * (kernel_size - 1) + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def _torch_conv2d(inputs, kernel, strides, padding, dilation_rate):
    """``conv2d`` on the PyTorch backend: ``permute`` makes an NCHW view of the NHWC tensor, which
    is PyTorch's channels-last memory format, so oneDNN/cuDNN convolve it in place and the output
    permutes back to NHWC without a copy (Keras' own pooling leaves NCHW memory behind: that input
    is made channels-last once, else the layouts mix downstream and every later op slows down);
    the group count follows from the kernel's in-channels."""
    import torch
    import torch.nn.functional as F

    x = ops.convert_to_tensor(inputs).permute(0, 3, 1, 2)
    x = x.contiguous(memory_format=torch.channels_last)  # a no-op unless a Keras op left NCHW memory
    weight = ops.convert_to_tensor(kernel).permute(3, 2, 0, 1)  # HWIO -> OIHW
    groups = x.shape[1] // weight.shape[1]
    if padding == "symmetric":
        explicit = tuple(symmetric_padding(weight.shape[2:], strides, dilation_rate))
    elif padding == "valid":
        explicit = (0, 0)
    else:
        (top, bottom), (left, right) = (
            _same_padding(n, k, s, d) for n, k, s, d in zip(x.shape[2:], weight.shape[2:], strides, dilation_rate))
        if (top, left) == (bottom, right):
            explicit = (top, left)
        else:
            x, explicit = F.pad(x, (left, right, top, bottom)), (0, 0)
    outputs = F.conv2d(x, weight, None, strides, explicit, dilation_rate, groups)
    return outputs.permute(0, 2, 3, 1)
