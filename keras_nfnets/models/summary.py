"""Parameter and FLOP counts of built models (FLOPs as the papers count them)."""

import math

import keras

from keras_nfnets.layers.blocks import ECA, SqueezeExcite
from keras_nfnets.layers.ws_conv import GroupConv2D


def count_flops(model):
    """Multiply-adds of every convolution and dense layer of ``model`` for one image.

    As DeepMind's ``count_conv_flops``: a conv costs ``H_out · W_out · C_out · (C_in/groups) · kh · kw``,
    a dense layer (classifier, squeeze-excite) ``in · out``; activations, pooling and additions
    are not counted. The model needs a static input size.
    """
    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, GroupConv2D):
            _, height, width, channels = layer.output.shape
            if height is None or width is None:
                raise ValueError(
                    f"count_flops needs a static input size; layer '{layer.name}' has output {layer.output.shape}. "
                    "Build the model with a concrete `input_shape`."
                )
            kh, kw, fan_in_channels, _ = layer.kernel.shape
            total += height * width * channels * fan_in_channels * kh * kw
        elif isinstance(layer, SqueezeExcite):
            total += 2 * layer.fc1.kernel.shape[0] * layer.fc1.kernel.shape[1]
        elif isinstance(layer, ECA):
            total += math.prod(layer.kernel.shape) * layer.output.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(total)


def count_params(model):
    """Number of scalars in all weights of ``model``."""
    return int(sum(math.prod(w.shape) for w in model.weights))


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer
