"""Layers of Normalizer-Free networks (Brock, De & Smith, ICLR 2021). Importing this package
registers every layer with Keras' serialization (``keras.saving.load_model`` of a ``.keras`` file
that holds them needs it, or :func:`keras_nfnets.load_model`)."""

from keras_nfnets.layer_options import ELEMENTWISE_ACTIVATIONS, EPS_MODES, GAMMA, PADDINGS
from keras_nfnets.layers.activations import (
    ACTIVATIONS,
    GammaActivation,
    estimate_gamma,
    get_activation_fn,
    get_gamma,
)
from keras_nfnets.layers.blocks import (
    ECA,
    SkipInitGain,
    SqueezeExcite,
    StochasticDepth,
    SymmetricMaxPooling2D,
    eca_kernel_size,
    nf_block,
)
from keras_nfnets.layers.conv_ops import conv2d, grouped_conv_implementation, native_grouped_conv_supported
from keras_nfnets.layers.ws_conv import GroupConv2D, ScaledWSConv2D

__all__ = [
    "ACTIVATIONS",
    "ECA",
    "ELEMENTWISE_ACTIVATIONS",
    "EPS_MODES",
    "GAMMA",
    "GammaActivation",
    "GroupConv2D",
    "ScaledWSConv2D",
    "SkipInitGain",
    "SqueezeExcite",
    "StochasticDepth",
    "SymmetricMaxPooling2D",
    "conv2d",
    "eca_kernel_size",
    "estimate_gamma",
    "get_activation_fn",
    "get_gamma",
    "grouped_conv_implementation",
    "native_grouped_conv_supported",
    "nf_block",
    "PADDINGS",
]
