"""Public keras.applications-style builders, one thin function per variant.

``weights="imagenet"`` switches the builder to its checkpoint's architecture (e.g. timm's
channel rounding for NFRegNetB1) and default input size, then loads the converted weights.
"""

import os

from keras_nfnets.models.builder import (
    WeightsMismatchError,
    build_nf_model,
    load_weights_file,
    validate_application_args,
    weights_file_contents,
    weights_fit,
)
from keras_nfnets.models.config import bn_resnetv2_config
from keras_nfnets.models.timm_configs import timm_config
from keras_nfnets.models.variants import TIMM_DESIGNED, VARIANTS
from keras_nfnets.weights.files import describe_weights
from keras_nfnets.weights.hub import load_pretrained
from keras_nfnets.weights.presets import CHECKPOINTS, IMAGENET_PRESETS

BASE_DOCSTRING = """Instantiates the {builder} architecture ({family}).

{reference}

Default image sizes: {train_size}px for training, {test_size}px for evaluation (the default
`input_shape` with `include_top=True`). Inputs are RGB images on the 0–255 scale after
`keras_nfnets.preprocess_input` (ImageNet mean/std).

{weights_doc}

Args:
    include_top: whether to include the pooling, dropout and classification head.
    weights: `None` (random initialization), `"imagenet"`{imagenet_note} or the path to a
        `.weights.h5` file.
    input_tensor: optional Keras tensor (output of `layers.Input()`) to use as image input.
    input_shape: optional `(height, width, channels)` tuple; at least 32×32. With
        `include_top=True` it must be static; defaults to `({test_size}, {test_size}, 3)`,
        or `(None, None, 3)` without the top.
    pooling: with `include_top=False`: `None` (4D feature map), `"avg"` or `"max"`.
    classes: number of classes of the classification head.
    classifier_activation: activation of the `predictions` layer (`None` for logits).
    name: model name (default `"{name}"`).
    drop_rate: dropout before the classifier (default {drop_rate}).
    stochastic_depth_rate: largest per-block stochastic-depth rate (default {sd_rate}).

Returns:
    A functional `keras.Model`.
"""

_REFERENCES = {
    "nf_resnet": "Brock, De & Smith, *Characterizing signal propagation to close the performance gap in "
    "unnormalized ResNets*, ICLR 2021 (§4–5.1): a pre-activation bottleneck ResNet with Scaled WS, "
    "γ-scaled ReLU, α = 0.2 and SkipInit.",
    "nf_regnet": "Brock, De & Smith, ICLR 2021 (Appendix C/D): a RegNetY-style inverted bottleneck with "
    "group width 8, squeeze-excite ×2, SiLU, average-pool shortcuts and a final 1×1 conv.",
    "nfnet": "Brock, De, Smith & Simonyan, *High-Performance Large-Scale Image Recognition Without "
    "Normalization*, 2021: deep stem, two grouped 3×3 convs per block, squeeze-excite ×2 on the "
    "output, GELU.",
    "nfnet_light": "Ross Wightman's lighter NFNet (timm `{arch}`): the NFNet layout with group width 64, "
    "bottleneck 0.25, SiLU{attention}, timm's channel rounding and γ folded into the convolutions.",
}
_FAMILY_NAMES = {"nf_resnet": "NF-ResNet", "nf_regnet": "NF-RegNet", "nfnet": "NFNet"}


def _weights_doc(builder_name):
    tag = IMAGENET_PRESETS.get(builder_name)
    if tag is None:
        return "No ImageNet checkpoint exists for this architecture (`weights=\"imagenet\"` raises)."
    checkpoint = CHECKPOINTS[tag]
    return (
        f'`weights="imagenet"` loads timm\'s `{tag}` checkpoint (Hugging Face Hub `{checkpoint.repo_id}`; '
        f"published top-1 {checkpoint.top1:.3f}% at {checkpoint.test_size}px; trained at "
        f"{checkpoint.train_size}px, evaluated at {checkpoint.test_size}px) and builds the architecture it needs."
    )


def _pretrained_config(builder_name, config):
    """The config a builder uses with ``weights="imagenet"``: the checkpoint's architecture and sizes,
    the variant's regularisation."""
    if builder_name not in IMAGENET_PRESETS:
        available = ", ".join(IMAGENET_PRESETS)
        raise ValueError(
            f"No ImageNet weights exist for {builder_name}. Builders with `weights=\"imagenet\"`: {available}. "
            "Use `weights=None` or the path to a `.weights.h5` file."
        )
    checkpoint = CHECKPOINTS[IMAGENET_PRESETS[builder_name]]
    pretrained = timm_config(checkpoint.architecture).replace(
        train_size=checkpoint.train_size,
        test_size=checkpoint.test_size,
        drop_rate=config.drop_rate,
        stochastic_depth_rate=config.stochastic_depth_rate,
    )
    return pretrained, checkpoint


def _load_weights_file(builder_name, model, path, arguments):
    """Load the ``.weights.h5`` file ``path`` into ``model``, the builder's own architecture; a file
    of the builder's ImageNet architecture (``tools/convert_timm.py``'s output, the converted-weights
    cache) rebuilds the model with that architecture, as ``weights="imagenet"`` does. A file that
    fits neither is one error naming the file, what it holds and the model asked for."""
    shapes, attributes = weights_file_contents(path, into=model.name)
    if weights_fit(model, shapes):
        load_weights_file(model, path)
        return model
    if builder_name in IMAGENET_PRESETS:
        pretrained, _ = _pretrained_config(builder_name, VARIANTS[builder_name])
        alternative = build_nf_model(pretrained, **arguments)
        if weights_fit(alternative, shapes):
            load_weights_file(alternative, path)
            return alternative
    top = f"include_top={arguments['include_top']}" + (f", classes={arguments['classes']}" if arguments["include_top"]
                                                     else "")
    raise WeightsMismatchError(
        f"The weights file {os.fspath(path)!r} holds {describe_weights(shapes, attributes)}, not {builder_name} "
        f"({top}; {model.count_params():,} parameters).")


def _make_builder(builder_name):
    config = VARIANTS[builder_name]

    def builder(
        *,
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=None,
        drop_rate=None,
        stochastic_depth_rate=None,
    ):
        validate_application_args(weights=weights, include_top=include_top, input_tensor=input_tensor,
                                  input_shape=input_shape, pooling=pooling, classes=classes,
                                  classifier_activation=classifier_activation)
        build_config, checkpoint = config, None
        if weights == "imagenet":
            build_config, checkpoint = _pretrained_config(builder_name, config)
        arguments = dict(include_top=include_top, input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                         classes=classes, classifier_activation=classifier_activation, name=name, drop_rate=drop_rate,
                         stochastic_depth_rate=stochastic_depth_rate)
        model = build_nf_model(build_config, **arguments)
        if checkpoint is not None:
            load_pretrained(model, checkpoint, build_config)
        elif weights is not None:
            model = _load_weights_file(builder_name, model, weights, arguments)
        return model

    builder.__name__ = builder.__qualname__ = builder_name
    builder.__module__ = __name__
    reference = _REFERENCES["nfnet_light" if builder_name in TIMM_DESIGNED else config.family].format(
        arch=config.name, attention=", ECA attention" if config.attention == "eca" else ", squeeze-excite ×2"
    )
    builder.__doc__ = BASE_DOCSTRING.format(
        builder=builder_name,
        family=_FAMILY_NAMES[config.family],
        reference=reference,
        weights_doc=_weights_doc(builder_name),
        imagenet_note="" if builder_name in IMAGENET_PRESETS else " (not available here)",
        train_size=config.train_size,
        test_size=config.test_size,
        name=config.name,
        drop_rate=config.drop_rate,
        sd_rate=config.stochastic_depth_rate,
    )
    builder.config = config
    return builder


NFResNet14 = _make_builder("NFResNet14")
NFResNet26 = _make_builder("NFResNet26")
NFResNet50 = _make_builder("NFResNet50")
NFResNet101 = _make_builder("NFResNet101")
NFResNet152 = _make_builder("NFResNet152")
NFResNet200 = _make_builder("NFResNet200")
NFResNet288 = _make_builder("NFResNet288")

NFRegNetB0 = _make_builder("NFRegNetB0")
NFRegNetB1 = _make_builder("NFRegNetB1")
NFRegNetB2 = _make_builder("NFRegNetB2")
NFRegNetB3 = _make_builder("NFRegNetB3")
NFRegNetB4 = _make_builder("NFRegNetB4")
NFRegNetB5 = _make_builder("NFRegNetB5")
NFRegNetB6 = _make_builder("NFRegNetB6")
NFRegNetB7 = _make_builder("NFRegNetB7")
NFRegNetB8 = _make_builder("NFRegNetB8")

NFNetF0 = _make_builder("NFNetF0")
NFNetF1 = _make_builder("NFNetF1")
NFNetF2 = _make_builder("NFNetF2")
NFNetF3 = _make_builder("NFNetF3")
NFNetF4 = _make_builder("NFNetF4")
NFNetF5 = _make_builder("NFNetF5")
NFNetF6 = _make_builder("NFNetF6")
NFNetF7 = _make_builder("NFNetF7")

NFNetL0 = _make_builder("NFNetL0")
ECANFNetL0 = _make_builder("ECANFNetL0")
ECANFNetL1 = _make_builder("ECANFNetL1")
ECANFNetL2 = _make_builder("ECANFNetL2")
ECANFNetL3 = _make_builder("ECANFNetL3")

BUILDERS = {name: globals()[name] for name in VARIANTS}


def BNResNetV2(
    depths=(3, 4, 6, 3),
    order="bn_relu_conv",
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    drop_rate=None,
    stochastic_depth_rate=0.0,
):
    """The BatchNorm pre-activation ResNetV2 baseline of the paper (§3, Figure 1; Table 2).

    Same bottleneck layout, stem and widths as the NF-ResNets, with BatchNorm and ReLU in
    ``order`` ``"bn_relu_conv"`` (standard) or ``"relu_bn_conv"``, He-initialised plain
    convolutions, and residual blocks ``x + f(x)`` (no β, α or SkipInit). ``depths`` are the
    blocks per stage: (3, 4, 6, 3) is ResNet-50, [50] * 4 the paper's ResNet-600. Other arguments
    as the NF builders; no pretrained weights exist.
    """
    validate_application_args(weights=weights, include_top=include_top, input_tensor=input_tensor,
                              input_shape=input_shape, pooling=pooling, classes=classes,
                              classifier_activation=classifier_activation)
    if weights == "imagenet":
        raise ValueError("No ImageNet weights exist for BNResNetV2. Use `weights=None` or a `.weights.h5` file.")
    depth = 2 + 3 * sum(depths)
    config = bn_resnetv2_config(tuple(depths), order, name=f"bn_resnetv2_{depth}")
    return build_nf_model(
        config,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
        drop_rate=drop_rate,
        stochastic_depth_rate=stochastic_depth_rate,
    )
