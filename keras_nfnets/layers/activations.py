"""γ-scaled activations (paper §4.3, Appendix D.1).

γ = 1 / √Var(g(x)) for x ~ N(0, 1), so that ``γ · g(x)`` has unit variance. The table holds
DeepMind's constants (``nfnets/base.py``), which checkpoints were trained with.
"""

import functools
import math

import keras
import numpy as np
from keras import ops

from keras_nfnets import backend
from keras_nfnets.layer_options import GAMMA, GELU_TANH_APPROXIMATION

ACTIVATIONS = {
    "identity": lambda x: x,
    "celu": lambda x: ops.celu(x),
    "elu": lambda x: ops.elu(x),
    "gelu": lambda x: ops.gelu(x, approximate=GELU_TANH_APPROXIMATION["gelu"]),
    "gelu_exact": lambda x: ops.gelu(x, approximate=GELU_TANH_APPROXIMATION["gelu_exact"]),
    "glu": lambda x: ops.glu(x, axis=-1),
    "leaky_relu": lambda x: ops.leaky_relu(x, negative_slope=0.01),  # jax.nn.leaky_relu default
    "log_sigmoid": lambda x: ops.log_sigmoid(x),
    "log_softmax": lambda x: ops.log_softmax(x, axis=-1),
    "relu": lambda x: ops.relu(x),
    "relu6": lambda x: ops.relu6(x),
    "selu": lambda x: ops.selu(x),
    "sigmoid": lambda x: ops.sigmoid(x),
    "silu": lambda x: ops.silu(x),
    "soft_sign": lambda x: ops.soft_sign(x),
    "softplus": lambda x: ops.softplus(x),
    "tanh": lambda x: ops.tanh(x),
}

assert set(ACTIVATIONS) == set(GAMMA), "every activation needs its γ in keras_nfnets/layer_options.py"


def get_activation_fn(name):
    """The plain (unscaled) activation function called ``name``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def get_gamma(name):
    """DeepMind's γ for the activation ``name``."""
    if name not in GAMMA:
        raise ValueError(
            f"No γ is tabulated for activation {name!r}; tabulated: {sorted(GAMMA)}. "
            "Pass `gamma=` explicitly or compute one with `estimate_gamma(fn)`."
        )
    return GAMMA[name]


def estimate_gamma(fn, num_samples=1024, width=256, seed=2):
    """Estimate γ = 1/√E[Var(g(x))] for any callable ``fn`` (paper Appendix D.1).

    Draws ``num_samples`` unit-Gaussian vectors of size ``width``, takes the empirical variance
    of ``fn`` over each vector, averages the variances, and returns the reciprocal square root.
    ``fn`` may be a NumPy function or one of ``keras.ops``/TensorFlow.
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; received {fn!r}.")
    if int(num_samples) < 1 or int(width) < 2:
        raise ValueError(f"Need num_samples >= 1 and width >= 2; received {num_samples}, {width}.")
    x = np.random.default_rng(seed).standard_normal((int(num_samples), int(width))).astype("float32")
    y = np.asarray(ops.convert_to_numpy(fn(x)), "float64")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"`fn` must keep the batch dimension; mapped {x.shape} to {y.shape}.")
    mean_var = float(np.mean(np.var(y.reshape(y.shape[0], -1), axis=1)))
    if not math.isfinite(mean_var) or mean_var <= 0:
        raise ValueError(f"`fn` has zero or non-finite output variance ({mean_var}); γ is undefined.")
    return mean_var**-0.5


@keras.saving.register_keras_serializable(package="keras_nfnets")
class GammaActivation(keras.layers.Layer):
    """``γ · g(x)``: an activation rescaled to preserve unit variance (paper §4.3).

    Args:
        activation: a name from :data:`ACTIVATIONS`.
        gamma: the scale; ``None`` takes DeepMind's value from :data:`GAMMA`. Use 1.0 for the
            unscaled activation (timm folds γ into the next convolution instead).
        scale: a further constant factor of the output, computed in the same kernel: a residual
            block's ``1/β`` (paper Eq. 2: the branch reads ``γ·g(x)/β``).
    """

    def __init__(self, activation="relu", gamma=None, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self._fn = get_activation_fn(activation)
        self.activation = activation
        self.gamma = float(get_gamma(activation) if gamma is None else gamma)
        self.scale = float(scale)

    @property
    def output_scale(self):
        """``γ · scale``: the constant multiplying ``g(x)``."""
        return self.gamma * self.scale

    def call(self, inputs):
        factor = self.output_scale
        if self.activation == "identity" and factor == 1.0:
            return inputs
        outputs = backend.current().scaled_activation(self.activation, self._fn, factor, inputs)
        if outputs is not None:  # the backend's faster path (TF: one fused kernel; PyTorch: in place)
            return outputs
        outputs = self._fn(inputs)
        if factor != 1.0:
            outputs = outputs * ops.cast(factor, outputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        if self.activation == "glu":
            return tuple(input_shape[:-1]) + (None if input_shape[-1] is None else input_shape[-1] // 2,)
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(activation=self.activation, gamma=self.gamma, scale=self.scale)
        return config
