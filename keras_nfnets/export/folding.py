"""Folding: Scaled WS and the NF scalars become plain weights of Keras built-in layers.

Scaled WS depends only on the weights (paper §4.2), so at inference each ``ScaledWSConv2D`` is a
plain convolution with the standardized, gain-scaled kernel. The scalars the NF structure adds
(γ of the activations, 1/β, α, the SkipInit gain, the SE ×2) are positive-homogeneous factors
that travel through linear layers and are absorbed into the next or previous convolution or
dense layer wherever that is exact; the folded model holds only Keras built-in layers. How each
layer type folds is one row of :data:`FOLDERS`.
"""

import dataclasses
from typing import Callable, Optional

import keras
import numpy as np
from keras import layers

from keras_nfnets import graph
from keras_nfnets.layer_options import GELU_TANH_APPROXIMATION
from keras_nfnets.layers.activations import GammaActivation
from keras_nfnets.layers.blocks import ECA, SkipInitGain, SqueezeExcite, StochasticDepth, SymmetricMaxPooling2D
from keras_nfnets.layers.conv_ops import symmetric_padding
from keras_nfnets.layers.ws_conv import GroupConv2D

# GammaActivation names → Keras built-in activation names (the GELUs: see _activation).
_BUILTIN_ACTIVATIONS = {
    "relu": "relu", "silu": "silu", "tanh": "tanh", "elu": "elu", "selu": "selu",
    "softplus": "softplus", "sigmoid": "sigmoid", "relu6": "relu6", "celu": "celu", "soft_sign": "softsign",
    "log_sigmoid": "log_sigmoid",
}


@dataclasses.dataclass
class _Value:
    """A tensor of the folded graph standing for ``scale × tensor`` of the original one.

    ``absorb(c)`` multiplies the producing layer's weights by ``c`` (returns False if it cannot)."""

    tensor: object
    scale: float = 1.0
    absorb: Optional[Callable[[float], bool]] = None


def _materialize(value):
    if value.scale == 1.0:
        return value.tensor
    if value.absorb is not None and value.absorb(value.scale):
        return value.tensor
    return layers.Rescaling(value.scale)(value.tensor)


def _conv(layer, value, consumers):
    """A built-in Conv2D with the standardized kernel, absorbing the input's pending scale."""
    kernel = keras.ops.convert_to_numpy(layer.effective_kernel()) * value.scale
    bias = layer.bias.numpy() if layer.bias is not None else np.zeros(layer.filters, "float32")
    x, padding = value.tensor, layer.padding
    if padding == "symmetric":
        pad_h, pad_w = symmetric_padding(layer.kernel_size, layer.strides, layer.dilation_rate)
        if pad_h or pad_w:
            x = layers.ZeroPadding2D(((pad_h, pad_h), (pad_w, pad_w)), name=f"{layer.name}_pad")(x)
        padding = "valid"
    conv = layers.Conv2D(
        layer.filters, layer.kernel_size, strides=layer.strides, padding=padding,
        dilation_rate=layer.dilation_rate, groups=layer.groups, name=layer.name,
    )
    out = conv(x)
    conv.set_weights([kernel.astype("float32"), bias.astype("float32")])

    def absorb(c):
        if consumers != 1:
            return False
        k, b = conv.get_weights()
        conv.set_weights([k * c, b * c])
        return True

    return _Value(out, 1.0, absorb)


def _activation(layer, value):
    x = _materialize(value)
    name = layer.activation
    scale = layer.output_scale  # γ (and a block's 1/β)
    if name == "identity":
        return _Value(x, scale)
    if GELU_TANH_APPROXIMATION.get(name) is False:  # erf-GELU: Keras' built-in "gelu"
        return _Value(layers.Activation("gelu", name=layer.name)(x), scale)
    if GELU_TANH_APPROXIMATION.get(name):  # tanh-GELU from built-ins: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
        cube = layers.Multiply(name=f"{layer.name}_cube")([x, x, x])
        inner = layers.Add(name=f"{layer.name}_inner")([x, layers.Rescaling(0.044715, name=f"{layer.name}_c")(cube)])
        inner = layers.Rescaling(float(np.sqrt(2.0 / np.pi)), name=f"{layer.name}_scale")(inner)
        gate = layers.Activation("tanh", name=f"{layer.name}_tanh")(inner)
        gate = layers.Rescaling(0.5, offset=0.5, name=f"{layer.name}_gate")(gate)
        return _Value(layers.Multiply(name=layer.name)([x, gate]), scale)
    if name == "leaky_relu":
        return _Value(layers.LeakyReLU(negative_slope=0.01, name=layer.name)(x), scale)
    if name not in _BUILTIN_ACTIVATIONS:
        raise ValueError(f"Activation {name!r} of layer '{layer.name}' has no Keras built-in equivalent to fold into.")
    return _Value(layers.Activation(_BUILTIN_ACTIVATIONS[name], name=layer.name)(x), scale)


def _channel_attention(layer, value):
    """SE / ECA as built-in layers; the input scale s goes into fc1 (SE) or the 1-D conv (ECA), the
    gain joins the pending scale, and absorbing c later scales the input producer (and 1/c into fc1)."""
    x, s = value.tensor, value.scale
    channels = x.shape[-1]
    pooled = layers.GlobalAveragePooling2D(name=f"{layer.name}_squeeze")(x)
    if isinstance(layer, SqueezeExcite):
        fc1 = layers.Dense(layer.hidden_channels, activation="relu", name=f"{layer.name}_fc1")
        fc2 = layers.Dense(channels, activation="sigmoid", name=f"{layer.name}_fc2")
        gate = fc2(fc1(pooled))
        fc1.set_weights([layer.fc1.kernel.numpy() * s, layer.fc1.bias.numpy()])
        fc2.set_weights([layer.fc2.kernel.numpy(), layer.fc2.bias.numpy()])
        first = fc1
    else:
        sequence = layers.Reshape((channels, 1), name=f"{layer.name}_to_sequence")(pooled)
        first = layers.Conv1D(1, layer.kernel.shape[0], padding="same", use_bias=False, name=f"{layer.name}_conv")
        gate = layers.Activation("sigmoid", name=f"{layer.name}_gate")(first(sequence))
        first.set_weights([layer.kernel.numpy() * s])
        gate = layers.Reshape((channels,), name=f"{layer.name}_flat")(gate)
    gate = layers.Reshape((1, 1, channels), name=f"{layer.name}_expand")(gate)
    out = layers.Multiply(name=layer.name)([x, gate])
    inner_absorb = value.absorb

    def absorb(c):
        if inner_absorb is None or not inner_absorb(c):
            return False
        if c != 0:  # the gate saw c·x: undo it on the first linear map (at c = 0 the output is 0 anyway)
            weights = first.get_weights()
            first.set_weights([weights[0] / c] + weights[1:])
        return True

    return _Value(out, s * layer.gain, absorb)


def _symmetric_max_pool(layer, value):
    """PyTorch-style −∞-padded max pool from built-ins: replicate-padding is exact for max pooling
    because every padded cell is a copy of a cell inside the same window."""
    x = value.tensor
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None or layer.pool_size != 3:
        raise ValueError(
            f"Folding '{layer.name}' (symmetric max pooling) needs a static input size; rebuild the model with a "
            "concrete `input_shape` before folding or exporting."
        )
    first_row = layers.Cropping2D(((0, height - 1), (0, 0)), name=f"{layer.name}_top")(x)
    last_row = layers.Cropping2D(((height - 1, 0), (0, 0)), name=f"{layer.name}_bottom")(x)
    x = layers.Concatenate(axis=1, name=f"{layer.name}_rows")([first_row, x, last_row])
    first_col = layers.Cropping2D(((0, 0), (0, width - 1)), name=f"{layer.name}_left")(x)
    last_col = layers.Cropping2D(((0, 0), (width - 1, 0)), name=f"{layer.name}_right")(x)
    x = layers.Concatenate(axis=2, name=f"{layer.name}_cols")([first_col, x, last_col])
    pooled = layers.MaxPooling2D(layer.pool_size, layer.strides, padding="valid", name=layer.name)(x)
    return _Value(pooled, value.scale, None)


def _is_builtin(layer):
    return type(layer).__module__.startswith("keras.")


@dataclasses.dataclass(frozen=True)
class _FoldContext:
    consumers: int  # how many layers read this layer's output
    sole_consumer: bool  # whether this layer is the only reader of its input


def _fold_scale(layer, args, context):
    """1/β, α (Rescaling without offset) and the SkipInit gain (with its α) join the pending scale."""
    if isinstance(layer, layers.Rescaling) and float(getattr(layer, "offset", 0.0)) != 0.0:
        return _fold_builtin(layer, args, context)
    value = args[0]
    factor = float(layer.skip_gain.numpy()) * layer.scale if isinstance(layer, SkipInitGain) else float(layer.scale)
    return _Value(value.tensor, value.scale * factor, value.absorb if context.sole_consumer else None)


def _fold_pass_through(layer, args, context):
    """Stochastic depth and dropout: identity at inference."""
    value = args[0]
    return _Value(value.tensor, value.scale, value.absorb if context.sole_consumer else None)


def _fold_pooling(layer, args, context):
    """Average and max pooling commute with a scale >= 0."""
    value = args[0] if args[0].scale >= 0 else _Value(_materialize(args[0]))
    clone = layer.__class__.from_config(layer.get_config())
    return _Value(clone(value.tensor), value.scale, None)


def _fold_add(layer, args, context):
    return _Value(layers.Add(name=layer.name)([_materialize(v) for v in args]))


def _fold_dense(layer, args, context):
    """The classifier absorbs the pending scale into its kernel."""
    value = args[0]
    dense = layers.Dense.from_config(layer.get_config())
    out = dense(value.tensor)
    dense.set_weights([layer.kernel.numpy() * value.scale, layer.bias.numpy()])
    return _Value(out)


def _fold_builtin(layer, args, context):
    """Any other Keras built-in layer: a copy, after the pending scales are applied."""
    clone = layer.__class__.from_config(layer.get_config())
    out = clone([_materialize(v) for v in args] if len(args) > 1 else _materialize(args[0]))
    clone.set_weights(layer.get_weights())
    return _Value(out)


# How each layer type folds, first match wins; other Keras built-ins are copied (_fold_builtin).
FOLDERS = (
    (GroupConv2D, lambda layer, args, context: _conv(layer, args[0], context.consumers)),
    (GammaActivation, lambda layer, args, context: _activation(layer, args[0])),
    ((SqueezeExcite, ECA), lambda layer, args, context: _channel_attention(layer, args[0])),
    ((layers.Rescaling, SkipInitGain), _fold_scale),
    ((StochasticDepth, layers.Dropout), _fold_pass_through),
    (SymmetricMaxPooling2D,  # max pooling commutes with a scale >= 0
     lambda layer, args, context: _symmetric_max_pool(layer, args[0] if args[0].scale >= 0
                                                      else _Value(_materialize(args[0])))),
    ((layers.AveragePooling2D, layers.GlobalAveragePooling2D, layers.MaxPooling2D, layers.GlobalMaxPooling2D),
     _fold_pooling),
    (layers.Add, _fold_add),
    (layers.Dense, _fold_dense),
)


def fold_weight_standardization(model):
    """A new functional model with the WS conv kernels and NF scalars folded into built-in layers.

    Every ``ScaledWSConv2D`` becomes a ``keras.layers.Conv2D`` holding ``γ·gain·(W−μ)/√(Nσ²)``;
    γ, 1/β, α, SkipInit gains and the SE ×2 are absorbed into neighbouring convolutions and dense
    layers where that is exact (a ``Rescaling`` layer remains only where it is not, e.g. a
    feature-map output). Stochastic depth and dropout are dropped (identity at inference).
    The result loads with ``keras.models.load_model`` without importing keras_nfnets. Nested
    functional models (a keras-hub task's backbone) are folded in place.
    """
    if not isinstance(model, keras.Model) or getattr(model, "inputs", None) is None:
        raise TypeError("fold_weight_standardization expects a functional keras.Model (as the builders return).")
    model = graph.inline_nested_models(model)  # e.g. a keras-hub NFNetImageClassifier's backbone
    consumers = graph.consumer_counts(model)
    new_inputs = [layers.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]

    def fold(layer, args, inbound):
        context = _FoldContext(consumers.get(id(layer.output), 0), consumers.get(id(inbound[0]), 0) == 1)
        for types, folder in FOLDERS:
            if isinstance(layer, types):
                return folder(layer, args, context)
        if _is_builtin(layer):
            return _fold_builtin(layer, args, context)
        raise ValueError(
            f"Cannot fold layer '{layer.name}' of type {type(layer).__name__}: it is neither a keras_nfnets "
            "layer nor a Keras built-in. Replace it with built-in layers, or export the unfolded model."
        )

    outputs = [_materialize(v) for v in graph.propagate(model, [_Value(t) for t in new_inputs], fold)]
    return keras.Model(
        new_inputs if len(new_inputs) > 1 else new_inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        name=f"{model.name}_folded",
    )
