"""Convolutions: a plain conv with a fast grouped path, and Scaled Weight Standardization.

Scaled WS (paper §4.2, Eq. 3): ``Ŵ = γ · gain · (W − μ) / (σ √N)`` with μ, σ the mean and
standard deviation of each output channel's kernel over its fan-in ``N = kh · kw · in/groups``.
The kernel is standardized at call time, so gradients flow through the standardization.
"""

import keras
from keras import ops

from keras_nfnets import backend
from keras_nfnets.layer_options import EPS_MODES, PADDINGS
from keras_nfnets.layers.conv_ops import conv2d, standardized_conv2d


def _standardization_terms(kernel, eps, eps_mode, gamma):
    """``(W − μ, γ / spread, 1 / σ²-term)`` of an HWIO ``kernel`` per output channel: the centred
    kernel, the scale that standardizes it (gain aside) and the factor through which the
    spread's own gradient enters (zero where DeepMind's floor holds the spread constant)."""
    fan_in = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    mean, var = backend.current().kernel_moments(kernel)
    if eps_mode == "floor":
        spread = var * fan_in
        scale = ops.rsqrt(ops.maximum(spread, eps))
        variance_factor = ops.where(spread > eps, 1.0 / ops.maximum(var, 1e-30), 0.0)
    else:
        scale = ops.rsqrt(var + eps) * (fan_in**-0.5)
        variance_factor = 1.0 / (var + eps)
    if gamma != 1.0:
        scale = scale * gamma
    return kernel - mean, scale, variance_factor


def standardize_kernel(kernel, gain, eps, eps_mode, gamma=1.0):
    """Scaled WS of an HWIO ``kernel`` over its fan-in, per output channel (paper Eq. 3).

    ``eps_mode="floor"``: ``gain · (W − μ) · rsqrt(max(N σ², eps))`` (DeepMind);
    ``eps_mode="add"``: ``gain · (W − μ) / √(σ² + eps) / √N`` (timm). Both times ``gamma``.
    """
    centred, scale, _ = _standardization_terms(kernel, eps, eps_mode, gamma)
    return centred * (scale * gain)


def standardize_kernel_vjp(kernel, gain, upstream, eps, eps_mode, gamma=1.0):
    """``(∂L/∂kernel, ∂L/∂gain)`` of :func:`standardize_kernel` given ``upstream`` = ∂L/∂Ŵ, from
    the kernel alone (nothing of the forward pass is kept). With ``c = W − μ``, ``s`` the scale
    (gain included) and means over the fan-in, as for a normalisation layer:
    ``∂L/∂W = s · (G − mean(G) − c · mean(G·c) · v)``, ``v = 1/σ²`` (DeepMind, above the floor;
    0 below it) or ``1/(σ² + eps)`` (timm); ``∂L/∂gain = Σ G·c · s / gain``."""
    centred, scale, variance_factor = _standardization_terms(kernel, eps, eps_mode, gamma)
    axes = (0, 1, 2)
    upstream_mean = ops.mean(upstream, axis=axes, keepdims=True)
    correlation = ops.mean(upstream * centred, axis=axes, keepdims=True)
    kernel_grad = (scale * gain) * (upstream - upstream_mean - centred * (correlation * variance_factor))
    fan_in = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    gain_grad = ops.reshape(correlation * scale, gain.shape) * fan_in
    return kernel_grad, gain_grad


def _pair(value, name):
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"`{name}` must be an int or a pair of ints; received {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="keras_nfnets")
class GroupConv2D(keras.layers.Layer):
    """2-D convolution (NHWC, HWIO kernel) whose grouped case is fast on CPU and GPU.

    Args:
        filters: output channels.
        kernel_size, strides, dilation_rate: int or pair.
        padding: ``"same"`` (TensorFlow SAME, as DeepMind), ``"valid"``, or ``"symmetric"``
            (PyTorch-style explicit zero padding, as timm).
        groups: number of channel groups; input and output channels must divide by it.
        use_bias: add a per-channel bias.
        kernel_initializer, bias_initializer: Keras initializers.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        dilation_rate=1,
        groups=1,
        use_bias=True,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(filters) <= 0:
            raise ValueError(f"`filters` must be a positive integer; received {filters!r}.")
        if padding not in PADDINGS:
            raise ValueError(f"`padding` must be one of {PADDINGS}; received {padding!r}.")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"Strides > 1 cannot be combined with dilation_rate > 1 (received strides={self.strides}, "
                f"dilation_rate={self.dilation_rate}); use one of them."
            )
        self.padding = padding
        self.groups = int(groups)
        if self.groups < 1 or self.filters % self.groups:
            raise ValueError(
                f"`filters` ({self.filters}) must be divisible by `groups` ({groups}); "
                "choose a group count that divides the channel count."
            )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"Layer '{self.name}' needs a known number of input channels; received {input_shape}.")
        if in_channels % self.groups:
            raise ValueError(
                f"Layer '{self.name}': input channels ({in_channels}) must be divisible by groups ({self.groups})."
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (in_channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            autocast=False,
        )
        self._build_extra()
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
        else:
            self.bias = None
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: in_channels})

    def _build_extra(self):
        """Hook for subclasses to create weights between the kernel and the bias."""

    def effective_kernel(self):
        """The kernel the convolution uses, in float32."""
        return ops.cast(self.kernel, "float32")

    def compute_kernel(self):
        """The kernel the convolution uses, in the compute dtype."""
        return ops.cast(self.effective_kernel(), self.compute_dtype)

    def call(self, inputs):
        return conv2d(
            inputs,
            self.compute_kernel(),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            bias=ops.cast(self.bias, self.compute_dtype) if self.use_bias else None,
        )

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        size = []
        for dim, k, s, d in zip((height, width), self.kernel_size, self.strides, self.dilation_rate):
            if dim is None:
                size.append(None)
                continue
            extent = d * (k - 1) + 1
            if self.padding == "same":
                size.append(-(-dim // s))
            elif self.padding == "valid":
                size.append((dim - extent) // s + 1)
            else:
                pad = ((s - 1) + d * (k - 1)) // 2
                size.append((dim + 2 * pad - extent) // s + 1)
        return (batch, size[0], size[1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="keras_nfnets")
class ScaledWSConv2D(GroupConv2D):
    """Convolution with Scaled Weight Standardization and a learnable gain (paper §4.2, Eq. 3).

    The kernel used at call time is ``gamma · gain · (W − μ) / √(N · σ²)``, computed in
    float32 whatever the dtype policy, then cast to the compute dtype.

    Args:
        eps: stabiliser of the standardization.
        eps_mode: ``"floor"`` (DeepMind: ``rsqrt(max(N·σ², eps))``, default eps 1e-4) or
            ``"add"`` (timm: ``1/√(σ² + eps) · 1/√N``, typically eps 1e-5).
        gamma: constant scale folded into the kernel (timm folds the activation's γ here;
            DeepMind keeps γ in the activation and uses 1).
        gain_initializer: initializer of the per-output-channel gain (ones).
        Other arguments as :class:`GroupConv2D`; the kernel initializer defaults to
        ``VarianceScaling(1.0, "fan_in", "normal")`` as DeepMind's.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        dilation_rate=1,
        groups=1,
        use_bias=True,
        eps=1e-4,
        eps_mode="floor",
        gamma=1.0,
        kernel_initializer=None,
        bias_initializer="zeros",
        gain_initializer="ones",
        **kwargs,
    ):
        if kernel_initializer is None:
            kernel_initializer = keras.initializers.VarianceScaling(1.0, "fan_in", "normal")
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            groups=groups,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        if eps_mode not in EPS_MODES:
            raise ValueError(f"`eps_mode` must be one of {EPS_MODES}; received {eps_mode!r}.")
        if not float(eps) >= 0:
            raise ValueError(f"`eps` must be a non-negative number; received {eps!r}.")
        self.eps = float(eps)
        self.eps_mode = eps_mode
        self.gamma = float(gamma)
        self.gain_initializer = keras.initializers.get(gain_initializer)

    def _build_extra(self):
        self.gain = self.add_weight(
            name="gain", shape=(self.filters,), initializer=self.gain_initializer, autocast=False
        )

    def effective_kernel(self):
        """``gamma · gain · (W − μ) / √(N σ²)`` in float32 (paper Eq. 3)."""
        kernel = ops.cast(self.kernel, "float32")
        gain = ops.cast(self.gain, "float32")
        return backend.current().compiled_when_eager(standardize_kernel, kernel, gain, eps=self.eps,
                                                     eps_mode=self.eps_mode, gamma=self.gamma)

    def compute_kernel(self):
        """The standardized kernel in the compute dtype, statistics in float32, by the backend's
        fastest path (TensorFlow: one XLA kernel each way, ``backend.standardized_kernel``)."""
        return backend.current().standardized_kernel(
            standardize_kernel, standardize_kernel_vjp, ops.cast(self.kernel, "float32"),
            ops.cast(self.gain, "float32"), self.compute_dtype, **self._standardization)

    @property
    def _standardization(self):
        return dict(eps=self.eps, eps_mode=self.eps_mode, gamma=self.gamma)

    def call(self, inputs):
        """The convolution of the standardized kernel; the backward pass recomputes that kernel
        from the weights where the backend can (TensorFlow), instead of keeping it."""
        return standardized_conv2d(
            inputs, ops.cast(self.kernel, "float32"), ops.cast(self.gain, "float32"), standardize_kernel,
            standardize_kernel_vjp, strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
            groups=self.groups, bias=ops.cast(self.bias, self.compute_dtype) if self.use_bias else None,
            **self._standardization)

    def get_config(self):
        config = super().get_config()
        config.update(
            eps=self.eps,
            eps_mode=self.eps_mode,
            gamma=self.gamma,
            gain_initializer=keras.initializers.serialize(self.gain_initializer),
        )
        return config
