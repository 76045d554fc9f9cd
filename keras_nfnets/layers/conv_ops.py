"""The convolution every layer calls: a portable signature over each backend's fastest kernel
(:mod:`keras_nfnets.backend`), with a choice of grouped-convolution path."""

import keras

from keras_nfnets import backend
from keras_nfnets.backend.common import symmetric_padding  # noqa: F401  (export/folding.py pads as the layers do)

IMPLEMENTATIONS = ("auto", "native", "split")


def native_grouped_conv_supported(device_type, backend_name=None, dtype="float32"):
    """Whether ``backend_name``'s (default: the current backend's) own grouped convolution is fast
    forward and backward on ``device_type`` in ``dtype``. GPUs and TPUs always are (cuDNN, XLA).
    On CPU: TensorFlow only where oneDNN runs it (float32 and bfloat16; probed once per process and
    dtype); XLA:CPU (JAX) is not (its grouped backward is ~100x slower than one conv per group at
    NF-RegNet shapes, ``tools/bench_grouped_conv.py``); PyTorch's oneDNN kernels are."""
    table = backend.for_backend(backend_name) if backend_name else backend.current()
    return table.native_grouped_conv_supported(device_type, dtype)


def current_device_type():
    """``"GPU"``, ``"TPU"`` or ``"CPU"``: where the current Keras backend computes by default."""
    return backend.current().device_type()


def grouped_conv_implementation(implementation="auto", dtype="float32"):
    """The grouped-conv path :func:`conv2d` takes for inputs of ``dtype``: ``"native"`` (the
    backend's grouped conv) or ``"split"`` (one conv per group, identical numerics); ``"auto"``
    picks native where the current backend and device have a fast grouped kernel with gradients."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"`implementation` must be one of {IMPLEMENTATIONS}; received {implementation!r}.")
    if implementation == "auto":
        return "native" if native_grouped_conv_supported(current_device_type(), dtype=dtype) else "split"
    return implementation


def conv2d(
    inputs, kernel, strides=(1, 1), padding="same", dilation_rate=(1, 1), groups=1, implementation="auto", bias=None
):
    """2-D convolution of NHWC ``inputs`` with an HWIO ``kernel`` (I = in_channels / groups).

    ``implementation`` selects the grouped path: ``"auto"`` (native where the backend and device
    have a fast grouped kernel, else per-group), ``"native"`` or ``"split"`` (one conv per group).

    ``padding`` is ``"same"`` (TensorFlow SAME: asymmetric, extra row/column at the
    bottom/right), ``"valid"`` or ``"symmetric"`` (explicit zero padding of
    ``((s-1) + d(k-1)) // 2`` on every side, as PyTorch/timm). ``bias``, a vector of the output
    channels, is added in the backend's fused form where it has one.
    """
    implementation = _resolved(implementation, groups, inputs)
    return backend.current().conv2d(inputs, kernel, tuple(strides), padding, tuple(dilation_rate), groups,
                                    implementation, bias)


def _resolved(implementation, groups, inputs):
    if groups > 1:
        return grouped_conv_implementation(implementation, keras.backend.standardize_dtype(inputs.dtype))
    return "native"


def standardized_conv2d(inputs, kernel, gain, standardize, standardize_vjp, strides=(1, 1), padding="same",
                        dilation_rate=(1, 1), groups=1, implementation="auto", bias=None, **static):
    """:func:`conv2d` of ``standardize(kernel, gain, **static)`` (float32 weights, the result in
    ``inputs``' dtype), differentiated by ``standardize_vjp`` where the backend asks for it:
    TensorFlow recomputes the standardized kernel in the backward pass instead of keeping it."""
    implementation = _resolved(implementation, groups, inputs)
    return backend.current().standardized_conv2d(
        standardize, standardize_vjp, inputs, kernel, gain, keras.backend.standardize_dtype(inputs.dtype),
        tuple(strides), padding, tuple(dilation_rate), groups, implementation, bias, **static)


