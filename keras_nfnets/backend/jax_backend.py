"""The JAX backend's table entries (see :mod:`keras_nfnets.backend`).

Convolutions are ``keras.ops.conv`` (``lax.conv_general_dilated``). On CPU three shapes take
another path, each measured forward and backward: grouped convolutions are split per group
(XLA:CPU's grouped backward pass is ~100x slower at NF-RegNet shapes, ``tools/bench_grouped_conv.py``);
1x1 convolutions are matmuls (XLA:CPU's dot is ~3x faster than its conv backward pass); and
convolutions with a small output (at most :data:`IM2COL_MAX_AREA` positions, the last stages of a
network) are one matmul of the stacked patches (im2col): batch 64, 3x3, 256 channels at 2x2 took
88.6 ms native against 6.7 ms, 4x4 stride 2 at 128 channels 9.4 ms against 1.9 ms; at 8x8 the two
are even (10.5 / 9.8 ms) and above it the native conv wins (16x16: 41.8 / 60.8 ms).

Those paths serve traced calls (``jax.jit``, gradients). An eager call on concrete arrays cannot
be differentiated (JAX differentiates only what it traces), so it runs the native convolution,
and Scaled WS's standardization, as one XLA program compiled once per shape
(:func:`compiled_when_eager`): eager JAX otherwise compiles and dispatches every op separately.
A first eager NF-RegNet-B0 forward at 64 px took 14.7 s and each later one 1.08 s op by op,
against 7.6 s and 0.12 s (2 CPU cores).
"""

import functools

from keras_nfnets.backend.common import (  # noqa: F401
    KerasDataParallel,
    eager_ema_updater,
    keras_accumulation,
    keras_sgd_update,
    plain_scaled_product,
    plain_standardized_conv2d,
    pad_symmetric,
    portable_kernel_moments,
    same_padding,
    refuse_tf_distribute,
    run_as_is,
    start_tensorflow_for_data,
    split_groups,
)

kernel_moments = portable_kernel_moments
IM2COL_MAX_AREA = 64  # output positions (8x8) up to which a CPU convolution runs as im2col + matmul
ema_updater = eager_ema_updater
accumulate_on_replicas = keras_accumulation  # Keras' own accumulation runs here
start_tensorflow = start_tensorflow_for_data
fused = run_as_is  # jitted with the step
sgd_variable_update = keras_sgd_update
scaled_product = plain_scaled_product
standardized_conv2d = plain_standardized_conv2d
sgd_momentum_step = None  # Keras' step is jitted with the rest of the train function


@functools.lru_cache(maxsize=None)
def _on_cpu():
    import jax

    return jax.default_backend() == "cpu"


def _concrete(*arrays):
    import jax

    return not any(isinstance(array, jax.core.Tracer) for array in arrays)


@functools.lru_cache(maxsize=None)
def _jitted(fn, static_names):
    import jax

    return jax.jit(fn, static_argnames=static_names)


def compiled_when_eager(fn, *arrays, **static):
    """``fn(*arrays, **static)``; called on concrete arrays, as one XLA program compiled once per
    shape, dtype and ``static`` values (which must be hashable). Traced, ``fn`` joins the caller's
    program as it is."""
    if not _concrete(*arrays):
        return fn(*arrays, **static)
    return _jitted(fn, tuple(sorted(static)))(*arrays, **static)


def _size_class_draws(originals, draw_seed):
    """Keras' normal, truncated-normal and uniform draws, each compiled once per size class (the
    power of two at or above the draw's size) instead of once per shape, with the same values:
    with JAX's partitionable Threefry (its default) element ``i`` of a draw depends only on the
    key and ``i``, so the first ``n`` values of a draw of ``m > n`` are the draw of ``n``. Those
    are kept and reshaped on the host; a normal draw is scaled there as Keras scales it on the
    device (two float32 operations, ``sample * stddev + mean``). A traced call, a dtype other than
    float32, an unknown dimension or the older Threefry goes to Keras' own function."""
    import jax
    import keras
    import numpy as np

    def sample(draw, shape, dtype, seed, *arguments):
        """``(values, seed)``: the host values, or None and the seed for Keras' own function (the
        key already drawn where drawing it found a traced one: a seed is drawn once)."""
        if keras.backend.standardize_dtype(dtype or keras.config.floatx()) != "float32":
            return None, seed
        if not jax.config.jax_threefry_partitionable:
            return None, seed
        if not all(isinstance(dim, (int, np.integer)) for dim in shape):
            return None, seed
        key = seed if isinstance(seed, jax.Array) else draw_seed(seed)
        if isinstance(key, jax.core.Tracer):
            return None, key
        size = int(np.prod(shape, dtype="int64"))
        size_class = 1 << max(size - 1, 0).bit_length()
        values = np.asarray(draw(key, size_class, *arguments))[:size]
        return values.reshape(tuple(int(dim) for dim in shape)), key

    def scaled(name, draw):  # normal, truncated normal: Keras scales the unit draw by stddev and mean
        def scaled_draw(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
            values, seed = sample(draw, shape, dtype, seed)
            if values is None:
                return originals[name](shape, mean, stddev, dtype, seed)
            return jax.device_put(values * np.float32(stddev) + np.float32(mean))
        return scaled_draw

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        values, seed = sample(lambda key, size, low, high: jax.random.uniform(key, (size,), "float32", low, high),
                              shape, dtype, seed, minval, maxval)
        if values is None:
            return originals["uniform"](shape, minval, maxval, dtype, seed)
        return jax.device_put(values)

    def truncated(key, size):  # Keras' bounds: two standard deviations
        return jax.random.truncated_normal(key, -2.0, 2.0, (size,), "float32")

    return {"normal": scaled("normal", lambda key, size: jax.random.normal(key, (size,), "float32")),
            "truncated_normal": scaled("truncated_normal", truncated), "uniform": uniform}


def variable_initialization():
    """Keras' random draws by size class (:func:`_size_class_draws`) while models are built:
    eager JAX compiles each draw for its shape, and building NF-RegNet-B0 took 11.7 s on 2 cores,
    9.6 s of it in ~100 compiles of the initialisers' draws and their scaling."""
    from keras_nfnets import _compat

    return _compat.keras_random_draws_replaced("jax", _size_class_draws)


def _native_conv(inputs, kernel, strides, padding, dilation_rate):
    from keras import ops

    if padding == "symmetric":
        inputs, padding = pad_symmetric(inputs, kernel.shape[:2], strides, dilation_rate)
    return ops.conv(inputs, kernel, strides=strides, padding=padding, dilation_rate=dilation_rate)


def standardized_kernel(forward, vjp, kernel, gain, dtype, **static):
    from keras import ops

    return ops.cast(compiled_when_eager(forward, kernel, gain, **static), dtype)  # XLA differentiates the step


def conv2d(inputs, kernel, strides, padding, dilation_rate, groups, implementation, bias=None):
    outputs = _unbiased_conv2d(inputs, kernel, strides, padding, dilation_rate, groups, implementation)
    return outputs if bias is None else outputs + bias  # XLA fuses the addition into what follows


def _unbiased_conv2d(inputs, kernel, strides, padding, dilation_rate, groups, implementation):
    from keras import ops

    if _concrete(inputs, kernel):  # eager: no backward pass to shape the paths for (module docstring)
        return compiled_when_eager(_native_conv, inputs, kernel, strides=tuple(strides), padding=padding,
                                   dilation_rate=tuple(dilation_rate))
    if padding == "symmetric":
        inputs, padding = pad_symmetric(inputs, kernel.shape[:2], strides, dilation_rate)
    if groups == 1 and tuple(kernel.shape[:2]) == (1, 1) and _on_cpu():
        if strides != (1, 1):  # k = 1 pads nothing ("same" and "valid" alike): output row i reads row s·i
            inputs = inputs[:, :: strides[0], :: strides[1], :]
        return ops.matmul(inputs, kernel[0, 0])

    def conv(x, k):
        if (_on_cpu() and dilation_rate == (1, 1) and x.shape[-1] == k.shape[2]  # ungrouped
                and _output_area(x.shape, k.shape, strides, padding) <= IM2COL_MAX_AREA):
            return _im2col_conv(x, k, strides, padding)
        return ops.conv(x, k, strides=strides, padding=padding, dilation_rate=dilation_rate)

    return conv(inputs, kernel) if implementation == "native" or groups == 1 else split_groups(conv, inputs, kernel, groups)


def _output_size(size, kernel_size, stride, padding):
    return -(-size // stride) if padding == "same" else (size - kernel_size) // stride + 1


def _output_area(input_shape, kernel_shape, strides, padding):
    return (_output_size(input_shape[1], kernel_shape[0], strides[0], padding)
            * _output_size(input_shape[2], kernel_shape[1], strides[1], padding))


def _im2col_conv(inputs, kernel, strides, padding):
    """The convolution as one matmul: the ``kh · kw`` shifted, strided views of the (padded) input
    stacked along channels, times the kernel reshaped to ``(kh · kw · in, out)`` (HWIO order)."""
    from keras import ops

    kh, kw, cin, cout = kernel.shape
    if padding == "same":
        (top, bottom), (left, right) = (same_padding(n, k, s, 1) for n, k, s in
                                        zip(inputs.shape[1:3], (kh, kw), strides))
        if top or bottom or left or right:
            inputs = ops.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]])
    oh = (inputs.shape[1] - kh) // strides[0] + 1
    ow = (inputs.shape[2] - kw) // strides[1] + 1
    patches = ops.concatenate([inputs[:, i:i + (oh - 1) * strides[0] + 1:strides[0],
                                      j:j + (ow - 1) * strides[1] + 1:strides[1], :]
                               for i in range(kh) for j in range(kw)], axis=-1)
    return ops.matmul(patches, ops.reshape(kernel, (kh * kw * cin, cout)))


def native_grouped_conv_supported(device_type, dtype="float32"):
    return device_type != "CPU"


def unsupported_precision(compute_dtype):
    return None  # XLA:CPU computes every float type


def scaled_activation(name, fn, gamma, inputs):
    return None  # XLA fuses the scale into the activation inside the jitted step


def compute_description():
    kind = device_type()
    return f"JAX on {kind}" + (" (XLA); grouped convolutions one per group" if kind == "CPU" else "")


def device_type():
    import jax

    return jax.default_backend().upper()


def compute_devices(strategy):
    import jax

    def capability(device):  # JAX's CUDA devices report e.g. "9.0"
        value = getattr(device, "compute_capability", None)
        return tuple(int(part) for part in str(value).split(".")[:2]) if value else None

    return [(device.platform.upper(), capability(device) if device.platform == "gpu" else None)
            for device in jax.local_devices()]


_MULTI_PROCESS = []  # the process's cluster, once: jax.distributed is initialised once per process


def make_strategy(name, tpu=None, cluster_timeout=None):
    """Keras' ``DataParallel`` over every local device when there are several (``one_device``:
    the first). ``multi_worker``: a cluster of processes from Keras' variables
    (``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``…_NUM_PROCESSES``, ``…_PROCESS_ID``):
    ``keras.distribution.initialize`` (``jax.distributed``; CPU collectives over gloo), then
    ``DataParallel`` over every process's devices; without the variables, one process."""
    import keras

    if name == "multi_worker":
        from keras_nfnets.backend.cluster import cluster_from_keras_env

        cluster = cluster_from_keras_env()  # checked before anything starts
        if cluster is not None and cluster.num_processes > 1:
            if not _MULTI_PROCESS:
                import jax

                jax.config.update("jax_cpu_collectives_implementation", "gloo")
                keras.distribution.initialize(",".join(cluster.addresses), cluster.num_processes, cluster.process_id)
                _MULTI_PROCESS.append(KerasDataParallel(keras.distribution.list_devices(), cluster.process_id,
                                                        cluster.num_processes))
            return _MULTI_PROCESS[0]
        name = "auto"  # a cluster of one, as TensorFlow's without TF_CONFIG
    refuse_tf_distribute(name)
    devices = keras.distribution.list_devices()
    return KerasDataParallel(devices[:1] if name == "one_device" else devices)


def all_workers(strategy, value):
    if not is_multi_worker(strategy):
        return [value]
    import numpy as np
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray([value], np.int64))).ravel().tolist()


def cluster_environment(ports, index):
    """Keras' cluster variables (``keras.distribution.initialize`` reads them); the first address
    is the coordinator's."""
    return {"KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(f"127.0.0.1:{port}" for port in ports),
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(len(ports)), "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}


def prepare_multi_worker_model(model):
    return None  # Keras' JAX trainer runs DataParallel across processes as it is


def jit_compile(requested, strategy):
    """``"auto"`` is Keras' rule on JAX: the step is one XLA program (``jax.jit``)."""
    return requested


def is_multi_worker(strategy):
    return getattr(strategy, "worker_count", 1) > 1
