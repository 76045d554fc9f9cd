"""The JAX backend's table entries (see :mod:`keras_nfnets.backend`).

Convolutions are ``keras.ops.conv`` (``lax.conv_general_dilated``); on CPU grouped convolutions
are split per group (XLA:CPU's grouped backward pass is ~100x slower at NF-RegNet shapes,
``tools/bench_grouped_conv.py``) and 1x1 convolutions are matmuls (XLA:CPU's dot is ~3x faster
than its conv backward pass).
"""

import functools

from keras_nfnets.backend.common import (  # noqa: F401
    KerasDataParallel,
    eager_ema_updater,
    pad_symmetric,
    portable_kernel_moments,
    refuse_tf_distribute,
    start_tensorflow_for_data,
    split_groups,
)

kernel_moments = portable_kernel_moments
ema_updater = eager_ema_updater
start_tensorflow = start_tensorflow_for_data
sgd_momentum_step = None  # Keras' step is jitted with the rest of the train function


@functools.lru_cache(maxsize=None)
def _on_cpu():
    import jax

    return jax.default_backend() == "cpu"


def conv2d(inputs, kernel, strides, padding, dilation_rate, groups, implementation):
    from keras import ops

    if padding == "symmetric":
        inputs, padding = pad_symmetric(inputs, kernel.shape[:2], strides, dilation_rate)
    if groups == 1 and tuple(kernel.shape[:2]) == (1, 1) and _on_cpu():
        if strides != (1, 1):  # k = 1 pads nothing ("same" and "valid" alike): output row i reads row s·i
            inputs = inputs[:, :: strides[0], :: strides[1], :]
        return ops.matmul(inputs, kernel[0, 0])

    def conv(x, k):
        return ops.conv(x, k, strides=strides, padding=padding, dilation_rate=dilation_rate)

    return conv(inputs, kernel) if implementation == "native" or groups == 1 else split_groups(conv, inputs, kernel, groups)


def native_grouped_conv_supported(device_type):
    return device_type != "CPU"


def scaled_activation(name, fn, gamma, inputs):
    return None  # XLA fuses the scale into the activation inside the jitted step


def device_type():
    import jax

    return jax.default_backend().upper()


def make_strategy(name, tpu=None):
    """Keras' ``DataParallel`` over every local device when there are several (``one_device``:
    the first)."""
    import keras

    refuse_tf_distribute(name)
    devices = keras.distribution.list_devices()
    return KerasDataParallel(devices[:1] if name == "one_device" else devices)


def is_multi_worker(strategy):
    return False
