"""Pieces shared by the backend modules (no backend is imported here)."""


def symmetric_padding(kernel_size, strides, dilation_rate):
    """PyTorch-style padding ``((s - 1) + d * (k - 1)) // 2`` on both sides (timm)."""
    return [((s - 1) + d * (k - 1)) // 2 for k, s, d in zip(kernel_size, strides, dilation_rate)]


def same_padding(size, kernel_size, stride, dilation):
    """TensorFlow SAME padding of one spatial dimension as ``(before, after)`` (extra at the end)."""
    extent = dilation * (kernel_size - 1) + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def pad_symmetric(inputs, kernel_size, strides, dilation_rate):
    """``inputs`` zero-padded by :func:`symmetric_padding` on every side, and the padding ("valid")
    the convolution then takes."""
    from keras import ops

    pad_h, pad_w = symmetric_padding(kernel_size, strides, dilation_rate)
    if pad_h or pad_w:
        inputs = ops.pad(inputs, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    return inputs, "valid"


def split_groups(conv, inputs, kernel, groups):
    """One convolution per channel group, concatenated (identical numerics to a grouped conv)."""
    from keras import ops

    return ops.concatenate(
        [conv(x, k) for x, k in zip(ops.split(inputs, groups, axis=-1), ops.split(kernel, groups, axis=-1))], axis=-1)


def keras_accumulation(optimizer, grads, variables):
    """Leave gradient accumulation to Keras' ``BaseOptimizer`` (it works on this backend)."""
    return False


def plain_standardized_conv2d(forward, vjp, inputs, kernel, gain, dtype, strides, padding, dilation_rate, groups,
                              implementation, bias=None, **static):
    """The backend's convolution of the backend's standardized kernel (its autodiff keeps what it
    keeps)."""
    from keras_nfnets import backend

    table = backend.current()
    standardized = table.standardized_kernel(forward, vjp, kernel, gain, dtype, **static)
    return table.conv2d(inputs, standardized, strides, padding, dilation_rate, groups, implementation, bias)


def plain_scaled_product(inputs, factor, scale):
    """``inputs · factor · scale`` in ``inputs``' dtype (``factor`` broadcasts: a scalar gain, an SE
    gate), op by op."""
    from keras import ops

    return inputs * ops.cast(factor * scale, inputs.dtype)


def keras_sgd_update(variable, momentum_buffer, gradient, learning_rate, momentum, nesterov):
    """Leave one variable's SGD step to Keras' own ``SGD.update_step``."""
    return False


def run_as_is(fn, *arrays, **static):
    """``fn(*arrays, **static)``: eager TensorFlow and PyTorch run precompiled kernels op by op."""
    return fn(*arrays, **static)


def keras_variable_initialization():
    """Keras' initialisers as they are (eager TensorFlow and PyTorch draw without compiling)."""
    import contextlib

    return contextlib.nullcontext()


def plain_standardized_kernel(forward, vjp, kernel, gain, dtype, **static):
    """``forward(kernel, gain, **static)`` in ``dtype``, op by op, differentiated by the backend's
    autodiff (eager PyTorch; TensorFlow with its fused kernels turned off)."""
    from keras import ops

    return ops.cast(forward(kernel, gain, **static), dtype)


def portable_kernel_moments(kernel):
    from keras import ops

    return ops.mean(kernel, axis=(0, 1, 2), keepdims=True), ops.var(kernel, axis=(0, 1, 2), keepdims=True)


def eager_ema_updater(update, weights):
    """``update(decay, weights())`` called op by op: ``weights()`` is read at every step (on JAX it
    brings the trainer's in-flight state into the variables)."""
    return lambda decay: update(decay, weights())


class KerasDataParallel:
    """What ``train`` needs of a strategy, on the JAX and PyTorch backends: Keras' own
    ``keras.distribution.DataParallel`` over ``devices`` when there are several (JAX: the step is
    compiled for all of them and the gradient is the whole batch's, so AGC clips the averaged
    gradient), else one device. ``scope()`` is a no-op: the distribution is global."""

    def __init__(self, devices, worker_index=0, worker_count=1):
        import keras

        self.devices = list(devices)
        self.num_replicas_in_sync = max(1, len(self.devices))
        self.worker_index, self.worker_count = int(worker_index), int(worker_count)
        # several processes: each feeds its own shard (distribute_datasets_from_function), so Keras
        # must not shard the dataset again
        distribution = keras.distribution.DataParallel(devices=self.devices, auto_shard_dataset=worker_count == 1) \
            if len(self.devices) > 1 else None
        keras.distribution.set_distribution(distribution)

    def scope(self):
        import contextlib

        return contextlib.nullcontext()

    def distribute_datasets_from_function(self, make_dataset):
        """``make_dataset(context)`` for this process's input pipeline, as ``tf.distribute`` calls
        it: pipeline ``worker_index`` of ``worker_count``, each yielding this process's share of
        the global batch (Keras assembles the global batch from every process's share)."""
        return make_dataset(_InputContext(self.worker_count, self.worker_index, self.worker_count))


class _InputContext:
    """The part of ``tf.distribute.InputContext`` the data pipelines read."""

    def __init__(self, num_input_pipelines, input_pipeline_id, num_replicas_in_sync):
        self.num_input_pipelines = num_input_pipelines
        self.input_pipeline_id = input_pipeline_id
        self.num_replicas_in_sync = num_replicas_in_sync


def refuse_tf_distribute(name, multi_worker_on="TensorFlow"):
    if name == "tpu":
        raise ValueError("`strategy` 'tpu' is a tf.distribute strategy: run it with KERAS_BACKEND=tensorflow "
                         "(on JAX/PyTorch use 'auto', 'mirrored' or 'one_device').")
    if name == "multi_worker":
        raise ValueError(f"`strategy` 'multi_worker' runs on {multi_worker_on}: Keras has no multi-process training "
                         "engine for this backend (use 'auto', 'mirrored' or 'one_device' here).")


def start_tensorflow_for_data(strategy=None, cluster_timeout=None):
    """TensorFlow only runs tf.data here: its devices are created without the GPUs, which belong
    to JAX / PyTorch (no strategy is made here: ``None``)."""
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    tf.config.list_logical_devices()
