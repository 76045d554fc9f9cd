"""The one builder: an :class:`NFConfig` plus keras.applications arguments → functional Model.

Layer names read as a path: ``stem_conv1``, ``stage2_block3_conv2``, ``final_conv``,
``predictions``. Signal propagation follows the paper's recipe (§4.5): each block sees
``act(h) / β`` with β the expected std of ``h``; β² grows by α² per block and is reset to
1 (then 1 + α²) after each stage's first, transition block.
"""

import inspect
import math
import os

import keras
import numpy as np
from keras import layers

from keras_nfnets import backend, names
from keras_nfnets.layers.activations import GammaActivation, get_gamma
from keras_nfnets.layers.blocks import ECA, SqueezeExcite, SymmetricMaxPooling2D, nf_block
from keras_nfnets.layers.ws_conv import GroupConv2D, ScaledWSConv2D
from keras_nfnets.models.arguments import (  # noqa: F401  (validate_application_args: re-exported)
    MIN_INPUT_SIZE,
    ApplicationArgs,
    signature,
    validate_application_args,
)
from keras_nfnets.models.config import make_divisible
from keras_nfnets.models.model import NFModel, weights_file_identity

def block_plan(config):
    """Per-block geometry of ``config``, in order: a list of dicts with the stage and block
    index (1-based), input/mid/output channels, groups, stride, the expected std β of the
    block input, and the block's stochastic-depth rate."""
    plan = []
    expected_std = 1.0
    channels = config.stem_width
    index = 0
    for stage, (depth, width, stride) in enumerate(zip(config.depths, config.widths, config.strides), start=1):
        for block in range(1, depth + 1):
            ratio = config.bottleneck_ratio
            if index == 0 and config.first_block_ratio is not None:
                ratio = config.first_block_ratio
            reference = channels if config.bottleneck_from == "in" else width
            if config.mid_channel_divisor is None:
                mid = int(reference * ratio)
            else:
                mid = make_divisible(reference * ratio, config.mid_channel_divisor)
            groups = 1
            if config.group_width is not None:
                groups = max(1, mid // config.group_width)
                if config.mid_channel_divisor is None or config.group_width % config.mid_channel_divisor == 0:
                    mid = groups * config.group_width
            plan.append(
                dict(
                    stage=stage,
                    block=block,
                    in_channels=channels,
                    mid_channels=mid,
                    out_channels=width,
                    groups=groups,
                    stride=stride if block == 1 else 1,
                    beta=expected_std,
                    stochastic_depth_rate=config.stochastic_depth_rate * index / config.num_blocks,
                )
            )
            channels = width
            index += 1
            if block == 1:
                expected_std = 1.0
            expected_std = math.sqrt(expected_std**2 + config.alpha**2)
    return plan


def _conv_factory(config):
    conv_gamma = get_gamma(config.activation) if config.gamma is None else config.gamma

    def make_conv(filters, kernel_size, strides=1, groups=1, name=None, last=False):
        if config.conv_type == "plain":
            return GroupConv2D(
                filters,
                kernel_size,
                strides=strides,
                padding=config.padding,
                groups=groups,
                kernel_initializer="he_normal",
                name=name,
            )
        return ScaledWSConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=config.padding,
            groups=groups,
            eps=config.ws_eps,
            eps_mode=config.ws_eps_mode,
            gamma=conv_gamma if config.gamma_in_conv else 1.0,
            gain_initializer="zeros" if (last and config.zero_init_last_gain) else "ones",
            name=name,
        )

    return make_conv


def _activation_factory(config):
    gamma = 1.0 if config.gamma_in_conv else config.gamma

    def make_activation(name=None, scale=1.0):
        if config.normalization is None:  # the block's 1/β in the activation's own kernel
            return GammaActivation(config.activation, gamma=gamma, scale=scale, name=name)
        activation = GammaActivation(config.activation, gamma=gamma, name=name)
        norm = layers.BatchNormalization(name=f"{name}_bn")
        rescale = layers.Rescaling(scale, name=f"{name}_scale") if scale != 1.0 else (lambda x: x)
        if config.normalization == "bn_relu_conv":
            return lambda x: rescale(activation(norm(x)))
        return lambda x: rescale(norm(activation(x)))

    return make_activation


def _attention_factory(config):
    if config.attention is None:
        return None

    def make_attention(channels, name=None):
        if config.attention == "eca":
            return ECA(gain=config.attention_gain, name=name)
        if config.attention_divisor is None:
            hidden = max(1, int(channels * config.se_ratio))
        else:
            hidden = make_divisible(channels * config.se_ratio, config.attention_divisor, round_limit=0.0)
        return SqueezeExcite(hidden, gain=config.attention_gain, name=name)

    return make_attention


def _stem(x, config, make_conv, make_activation):
    width = config.stem_width
    if config.stem == "7x7_pool":
        x = make_conv(width, 7, strides=2, name=names.stem_layer("conv"))(x)
        if not config.stem_pool:
            return x
        if config.padding == "symmetric":  # PyTorch MaxPool2d(3, 2, padding=1): pads 1 each side with -inf
            return SymmetricMaxPooling2D(3, 2, name=names.stem_layer("pool"))(x)
        return layers.MaxPooling2D(3, 2, padding="same", name=names.stem_layer("pool"))(x)
    if config.stem == "3x3":
        return make_conv(width, 3, strides=2, name=names.stem_layer("conv"))(x)
    # deep_quad: 3×3 convs to width/8, /4, /2, width with strides 2, 1, 1, 2 (NFNet paper §5)
    stem_widths = (width // 8, width // 4, width // 2, width)
    for i, (filters, strides) in enumerate(zip(stem_widths, (2, 1, 1, 2)), start=1):
        if i > 1:
            x = make_activation(name=names.stem_layer(f"act{i - 1}"))(x)
        x = make_conv(filters, 3, strides=strides, name=names.stem_layer(f"conv{i}"))(x)
    return x


class WeightsMismatchError(ValueError):
    """A ``.weights.h5`` file holds arrays of other shapes than the model's: another architecture,
    another number of classes, or a head the model does not have."""


def weights_file_contents(path, into=None):
    """``(shapes of every array, the file's attributes)`` of a Keras ``.weights.h5`` file, read
    with h5py without loading the arrays; an unreadable file is an error naming it (and the model
    ``into`` which it was to load)."""
    import h5py

    shapes = []
    try:
        with h5py.File(os.fspath(path), "r") as f:
            f.visititems(lambda name, node: shapes.append(tuple(node.shape)) if isinstance(node, h5py.Dataset) else None)
            attributes = dict(f.attrs)
    except OSError as error:
        target = f" into {into!r}" if into else ""
        raise ValueError(f"Cannot load the weights file {os.fspath(path)!r}{target}: it is truncated or not a Keras "
                         f".weights.h5 file (HDF5: {error}).") from error
    return shapes, attributes


def weights_fit(model, shapes):
    """Whether arrays of ``shapes`` (a weights file's) are exactly ``model``'s weights, or, for a
    model without a classifier, its weights plus one classifier (kernel and bias) it leaves out."""
    import collections

    file_shapes = collections.Counter(tuple(s) for s in shapes)
    model_shapes = collections.Counter(tuple(v.shape) for v in model.weights)
    if file_shapes == model_shapes:
        return True
    extra, missing = file_shapes - model_shapes, model_shapes - file_shapes
    has_top = names.has_classifier(model)
    return not has_top and not missing and sorted(len(s) for s in extra.elements()) == [1, 2]


def load_weights_file(model, path):
    """``model.load_weights(path)``, after checking that the file's arrays fit the model (else a
    :class:`WeightsMismatchError` that names the file and both parameter counts, before Keras
    reads anything): a file that records its architecture (:meth:`NFModel.save_weights`) must
    record the model's. Other failures name the file and the likely cause."""
    shapes, attributes = weights_file_contents(path, into=model.name)
    recorded = weights_file_identity(attributes)
    if recorded is not None and isinstance(model, NFModel) and not recorded.same_architecture(model.architecture):
        raise WeightsMismatchError(
            f"The weights file {os.fspath(path)!r} holds the architecture {recorded.name!r}, not {model.name!r}'s "
            f"({model.architecture.name!r}): build {recorded.name!r} to load it (keras_nfnets.from_timm or a builder "
            "with its architecture).")
    if not weights_fit(model, shapes):
        count = sum(int(np.prod(s)) for s in shapes)
        raise WeightsMismatchError(
            f"The weights file {os.fspath(path)!r} ({count:,} parameters in {len(shapes)} arrays) does not fit "
            f"{model.name!r} ({model.count_params():,} parameters in {len(model.weights)} arrays): it was saved from "
            "another architecture, number of classes or input channels.")
    try:
        model.load_weights(path)
    except Exception as error:
        raise ValueError(
            f"Cannot load the weights file {os.fspath(path)!r} into {model.name!r}: {error}. The file is truncated, "
            "not a Keras .weights.h5 file, or was saved from another architecture or number of classes."
        ) from error


def add_classifier_head(features, classes, *, drop_rate=0.0, init_std=0.0, activation=None):
    """Global average pool → dropout (if ``drop_rate``) → ``predictions`` Dense with logits in float32
    (NFNet paper App. A.1: cast before the loss); the kernel is N(0, ``init_std``²), zeros if 0."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(features)
    if drop_rate > 0:
        x = layers.Dropout(drop_rate, name="top_dropout")(x)
    kernel_init = keras.initializers.RandomNormal(stddev=init_std) if init_std > 0 else "zeros"
    return layers.Dense(classes, activation=activation, kernel_initializer=kernel_init, name=names.CLASSIFIER,
                        dtype="float32")(x)


def build_nf_model(config, **arguments):
    """Build the functional Keras model described by ``config`` (default input 224×224 with the
    top; the public builders default to their variant's test size).

    Keyword arguments follow ``keras.applications`` (:mod:`keras_nfnets.models.arguments`);
    ``drop_rate`` and ``stochastic_depth_rate`` override the config's values. ``weights`` is
    ``None`` or the path of a ``.weights.h5`` file: the ``"imagenet"`` preset is resolved by the
    public builders and :func:`keras_nfnets.from_timm`, which know the checkpoints.
    """
    args = ApplicationArgs.bind("build_nf_model", arguments)
    if args.pretrained:
        raise ValueError(
            'build_nf_model takes `weights=None` or a weights file; `weights="imagenet"` is resolved by the public '
            "builders (keras_nfnets.NFRegNetB1, ...) and keras_nfnets.from_timm."
        )
    args.check()
    return build_checked(config, args)


build_nf_model.__signature__ = signature([inspect.Parameter("config", inspect.Parameter.POSITIONAL_OR_KEYWORD)])


def build_checked(config, args, default_size=224):
    """:func:`build_nf_model` for :class:`ApplicationArgs` already checked (the public builders
    check once, then build here); ``default_size``: the input side when neither ``input_shape``
    nor ``input_tensor`` gives one and the model has its top. The weights are initialised as the
    backend draws Keras' initialisers fastest (``backend.variable_initialization``: on JAX, one
    compile per size class instead of one per weight shape; the same values)."""
    with backend.current().variable_initialization():
        model = _build(config, args, default_size)
    if args.weights is not None:
        load_weights_file(model, args.weights)
    return model


def _build(config, args, default_size):
    """The functional model of :func:`build_checked`, without its weights file."""
    include_top, input_tensor, input_shape = args.include_top, args.input_tensor, args.input_shape
    pooling, classes, classifier_activation, name = args.pooling, args.classes, args.classifier_activation, args.name
    overrides = {}
    if args.drop_rate is not None:
        overrides["drop_rate"] = float(args.drop_rate)
    if args.stochastic_depth_rate is not None:
        overrides["stochastic_depth_rate"] = float(args.stochastic_depth_rate)
    config = config.replace(**overrides) if overrides else config

    if input_tensor is not None and input_shape is None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        input_shape = (default_size, default_size, 3) if include_top else (None, None, 3)
    if input_tensor is None:
        img_input = layers.Input(shape=input_shape, name="input")
    elif not keras.backend.is_keras_tensor(input_tensor):
        img_input = layers.Input(tensor=input_tensor, shape=input_shape)
    else:
        img_input = input_tensor

    make_conv = _conv_factory(config)
    make_activation = _activation_factory(config)
    make_attention = _attention_factory(config)

    x = _stem(img_input, config, make_conv, make_activation)
    for spec in block_plan(config):
        x = nf_block(
            x,
            out_channels=spec["out_channels"],
            mid_channels=spec["mid_channels"],
            groups=spec["groups"],
            stride=spec["stride"],
            beta=spec["beta"] if config.normalization is None else 1.0,
            alpha=config.alpha,
            make_conv=make_conv,
            make_activation=make_activation,
            make_attention=make_attention,
            shortcut_pool=config.shortcut_pool,
            skipinit=config.skipinit,
            stochastic_depth_rate=spec["stochastic_depth_rate"],
            extra_conv=config.extra_conv,
            attention_position=config.attention_position,
            name=names.block(spec["stage"], spec["block"]),
        )
    if config.final_conv_channels:
        x = make_conv(config.final_conv_channels, 1, name=names.FINAL_CONV)(x)
    x = make_activation(name="final_act")(x)

    if include_top:
        x = add_classifier_head(x, classes, drop_rate=config.drop_rate, init_std=config.classifier_init_std,
                                activation=classifier_activation)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    return NFModel(inputs, x, name=name or config.name, architecture=config)
