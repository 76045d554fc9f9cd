"""The PyTorch backend's table entries (see :mod:`keras_nfnets.backend`).

Convolutions run on a channels-last view of the NHWC tensor (no copies; Keras' own ``ops.conv``
copies every input to NCHW and back); PyTorch's grouped kernels are fast everywhere. Scaled
activations whose gradient reads their input scale their fresh output in place; the optimizer's
momentum step is one multi-tensor (``_foreach``) update.
"""

from keras_nfnets.layer_options import GELU_TANH_APPROXIMATION
from keras_nfnets.backend.common import (  # noqa: F401
    KerasDataParallel,
    eager_ema_updater,
    keras_accumulation,
    keras_sgd_update,
    plain_scaled_product,
    plain_standardized_conv2d,
    keras_variable_initialization,
    plain_standardized_kernel,
    refuse_tf_distribute,
    run_as_is,
    start_tensorflow_for_data,
    same_padding,
    split_groups,
    symmetric_padding,
)

ema_updater = eager_ema_updater
accumulate_on_replicas = keras_accumulation  # Keras' own accumulation runs here
compiled_when_eager = run_as_is  # eager PyTorch runs precompiled kernels op by op
fused = run_as_is
sgd_variable_update = keras_sgd_update  # (SGDAGC.update_all takes the whole step: sgd_momentum_step)
scaled_product = plain_scaled_product
standardized_conv2d = plain_standardized_conv2d
standardized_kernel = plain_standardized_kernel
variable_initialization = keras_variable_initialization


def start_tensorflow(strategy=None, cluster_timeout=None):
    """Keras (and with it torch and triton) first, then TensorFlow for tf.data: on this stack
    (TensorFlow 2.21, torch 2.14 with triton) loading triton after TensorFlow is a segmentation
    fault, and Keras' PyTorch backend loads triton."""
    import keras  # noqa: F401

    return start_tensorflow_for_data(strategy)


def conv2d(inputs, kernel, strides, padding, dilation_rate, groups, implementation, bias=None):
    """``permute`` makes an NCHW view of the NHWC tensor, which is PyTorch's channels-last memory
    format, so oneDNN/cuDNN convolve it in place and the output permutes back to NHWC without a
    copy (Keras' own pooling leaves NCHW memory behind: that input is made channels-last once,
    else the layouts mix downstream and every later op slows down)."""
    if groups > 1 and implementation == "split":
        outputs = split_groups(lambda x, k: _conv(x, k, strides, padding, dilation_rate), inputs, kernel, groups)
        return outputs if bias is None else outputs + bias
    return _conv(inputs, kernel, strides, padding, dilation_rate, bias)


def _conv(inputs, kernel, strides, padding, dilation_rate, bias=None):
    import torch
    import torch.nn.functional as F
    from keras import ops

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
            same_padding(n, k, s, d) for n, k, s, d in zip(x.shape[2:], weight.shape[2:], strides, dilation_rate))
        if (top, left) == (bottom, right):
            explicit = (top, left)
        else:
            x, explicit = F.pad(x, (left, right, top, bottom)), (0, 0)
    bias = None if bias is None else ops.convert_to_tensor(bias)
    outputs = F.conv2d(x, weight, bias, strides, explicit, dilation_rate, groups)
    return outputs.permute(0, 2, 3, 1)


def native_grouped_conv_supported(device_type, dtype="float32"):
    return True


def unsupported_precision(compute_dtype):
    return None  # PyTorch's CPU convolutions take every float type


def kernel_moments(kernel):
    """One pass for both moments (Keras' ``ops.var`` takes two)."""
    import torch
    from keras import ops

    var, mean = torch.var_mean(ops.convert_to_tensor(kernel), dim=(0, 1, 2), correction=0, keepdim=True)
    return mean, var


_IN_PLACE = {"silu": ("silu", {}), **{name: ("gelu", {"approximate": "tanh" if tanh else "none"})
                                       for name, tanh in GELU_TANH_APPROXIMATION.items()}}


def scaled_activation(name, fn, gamma, inputs):
    """SiLU and GELU compute their gradient from their input, not their output: their fresh
    output is scaled in place (a pass over memory and an allocation saved per activation)."""
    if name not in _IN_PLACE:
        return None
    import torch.nn.functional as F

    function, kwargs = _IN_PLACE[name]
    return getattr(F, function)(inputs, **kwargs).mul_(gamma)


def sgd_momentum_step(gradients, values, buffers, learning_rate, momentum, nesterov):
    """SGD with (Nesterov) momentum over every tensor at once (``torch._foreach_*``): Keras'
    per-variable path costs ~90 ms a step on NF-RegNet-B0's 244 tensors on CPU, this ~10 ms
    (``tools/benchmark_backends.py``). ``m = momentum·m − lr·g``; ``w += momentum·m − lr·g``
    (Nesterov) or ``w += m``. ``gradients()`` gives the prepared (clipped, decayed) gradients;
    nothing here is recorded for autograd."""
    import torch

    with torch.no_grad():
        _foreach_step(gradients(), values, buffers, float(learning_rate), momentum, nesterov)


def _foreach_step(gradients, values, buffers, lr, momentum, nesterov):
    import torch

    if momentum == 0:
        torch._foreach_add_(values, gradients, alpha=-lr)
        return
    torch._foreach_mul_(buffers, momentum)
    torch._foreach_add_(buffers, gradients, alpha=-lr)
    if nesterov:
        torch._foreach_add_(values, gradients, alpha=-lr)
        torch._foreach_add_(values, buffers, alpha=momentum)
    else:
        torch._foreach_add_(values, buffers)


def compute_description():
    return f"PyTorch on {device_type()}"


def device_type():
    import torch

    return "GPU" if torch.cuda.is_available() else "CPU"


def compute_devices(strategy):
    import torch

    if not torch.cuda.is_available():
        return [("CPU", None)]
    return [("GPU", tuple(torch.cuda.get_device_capability(i))) for i in range(torch.cuda.device_count())]


def make_strategy(name, tpu=None, cluster_timeout=None):
    """One device: Keras has no data-parallel engine for PyTorch."""
    import torch

    refuse_tf_distribute(name, multi_worker_on="TensorFlow (TF_CONFIG) and JAX (keras.distribution)")
    if name == "mirrored" and torch.cuda.device_count() > 1:
        raise ValueError(
            f"`strategy` 'mirrored' over {torch.cuda.device_count()} GPUs: Keras has no data-parallel engine "
            "for PyTorch. Use KERAS_BACKEND=jax or tensorflow for several devices, or 'one_device' here.")
    return KerasDataParallel([])


def jit_compile(requested, strategy):
    """``"auto"`` is Keras' rule on PyTorch: eager steps. ``True`` would mean ``torch.compile``,
    whose inductor fails on these models (PyTorch 2.14: docs/backends.md#speed): refused before
    any work."""
    if requested is True:
        raise ValueError("`jit_compile=True` on the PyTorch backend means torch.compile, which fails on these models "
                         "(docs/backends.md#speed); use `jit_compile=\"auto\"` (eager steps) here, or the JAX or "
                         "TensorFlow backend for an XLA-compiled step.")
    return requested


def all_workers(strategy, value):
    return [value]  # one process: Keras has no multi-process engine for PyTorch


def cluster_environment(ports, index):
    refuse_tf_distribute("multi_worker", multi_worker_on="TensorFlow (TF_CONFIG) and JAX (keras.distribution)")


def prepare_multi_worker_model(model):
    return None


def is_multi_worker(strategy):
    return False
