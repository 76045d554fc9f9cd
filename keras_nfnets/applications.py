"""Public keras.applications-style builders, one per row of the variant table (generated:
``keras_nfnets.models.variants.VARIANTS``; ``applications.pyi`` lists them for IDEs).

``weights="imagenet"`` switches the builder to its checkpoint's architecture (e.g. timm's
channel rounding for NFRegNetB1) and default input size, then loads the converted weights.
"""

import inspect
import os

from keras_nfnets.models.arguments import ApplicationArgs, document, signature
from keras_nfnets.models.builder import WeightsMismatchError, build_checked, load_weights_file, weights_file_contents
from keras_nfnets.models.config import bn_resnetv2_config
from keras_nfnets.models.model import weights_file_checkpoint, weights_file_identity
from keras_nfnets.models.timm_configs import timm_config
from keras_nfnets.models.variants import TIMM_DESIGNED, VARIANTS
from keras_nfnets.weights.files import describe_weights
from keras_nfnets.weights.hub import load_pretrained
from keras_nfnets.weights.presets import CHECKPOINTS, IMAGENET_PRESETS, variant

BASE_DOCSTRING = """Instantiates the {builder} architecture ({family}).

{reference}

Default image sizes: {train_size}px for training, {test_size}px for evaluation (the default
`input_shape` with `include_top=True`). Inputs are RGB images on the 0–255 scale after
`keras_nfnets.preprocess_input` (ImageNet mean/std).

{weights_doc}

Args:
{arguments}

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
    """The config a builder uses with ``weights="imagenet"``: the checkpoint's architecture, the
    variant's regularisation; and the checkpoint (whose test size is the default input size)."""
    if builder_name not in IMAGENET_PRESETS:
        available = ", ".join(IMAGENET_PRESETS)
        raise ValueError(
            f"No ImageNet weights exist for {builder_name}. Builders with `weights=\"imagenet\"`: {available}. "
            "Use `weights=None` or the path to a `.weights.h5` file."
        )
    checkpoint = CHECKPOINTS[IMAGENET_PRESETS[builder_name]]
    pretrained = timm_config(checkpoint.architecture).replace(
        drop_rate=config.drop_rate,
        stochastic_depth_rate=config.stochastic_depth_rate,
    )
    return pretrained, checkpoint


def _load_weights_file(builder_name, model, path, arguments):  # arguments: ApplicationArgs (weights=None)
    """Load the ``.weights.h5`` file ``path`` into ``model``, the builder's own architecture. A file
    that records the builder's ImageNet architecture (``tools/convert_timm.py``'s output, the
    converted-weights cache, ``save_weights`` of a pretrained model) rebuilds the model with that
    architecture, as ``weights="imagenet"`` does, and the model records the file's checkpoint. A
    file that does not fit is one error naming the file, what it holds and the model asked for."""
    shapes, attributes = weights_file_contents(path, into=model.name)
    recorded = weights_file_identity(attributes)
    if recorded is not None and builder_name in IMAGENET_PRESETS and not recorded.same_architecture(model.architecture):
        pretrained, checkpoint = _pretrained_config(builder_name, VARIANTS[builder_name])
        if recorded.same_architecture(pretrained):
            model = build_checked(pretrained, arguments, default_size=checkpoint.test_size)
    try:
        load_weights_file(model, path)
    except WeightsMismatchError:
        top = f"include_top={arguments.include_top}" + (f", classes={arguments.classes}" if arguments.include_top else "")
        raise WeightsMismatchError(
            f"The weights file {os.fspath(path)!r} holds {describe_weights(shapes, attributes)}, not {builder_name} "
            f"({top}; {model.count_params():,} parameters).") from None
    tag = weights_file_checkpoint(attributes)
    if tag in CHECKPOINTS and recorded is not None and recorded.same_architecture(model.architecture):
        model.with_checkpoint(CHECKPOINTS[tag])
    return model


def _make_builder(builder_name):
    row = variant(builder_name)
    config = row.config

    def builder(**arguments):
        args = ApplicationArgs.bind(builder_name, arguments)
        args.check()
        build_config, checkpoint, size = config, None, row.test_size
        if args.pretrained:
            build_config, checkpoint = _pretrained_config(builder_name, config)
            size = checkpoint.test_size
        model = build_checked(build_config, args.replace(weights=None), default_size=size)
        if checkpoint is not None:
            load_pretrained(model, checkpoint)
        elif args.weights is not None:
            model = _load_weights_file(builder_name, model, args.weights, args.replace(weights=None))
        return model

    builder.__name__ = builder.__qualname__ = builder_name
    builder.__module__ = __name__
    reference = _REFERENCES["nfnet_light" if builder_name in TIMM_DESIGNED else row.family].format(
        arch=config.name, attention=", ECA attention" if config.attention == "eca" else ", squeeze-excite ×2"
    )
    builder.__doc__ = BASE_DOCSTRING.format(
        builder=builder_name,
        family=_FAMILY_NAMES[row.family],
        reference=reference,
        weights_doc=_weights_doc(builder_name),
        train_size=row.train_size,
        test_size=row.test_size,
        arguments=document(imagenet_note="" if builder_name in IMAGENET_PRESETS else " (not available here)",
                           test_size=row.test_size, name=config.name, drop_rate=config.drop_rate,
                           sd_rate=config.stochastic_depth_rate),
    )
    builder.__signature__ = signature()
    builder.config = config
    return builder


BUILDERS = {name: _make_builder(name) for name in VARIANTS}
globals().update(BUILDERS)  # NFResNet14, ..., ECANFNetL3: one public builder per variant


def BNResNetV2(depths=(3, 4, 6, 3), order="bn_relu_conv", **arguments):
    """The BatchNorm pre-activation ResNetV2 baseline of the paper (§3, Figure 1; Table 2).

    Same bottleneck layout, stem and widths as the NF-ResNets, with BatchNorm and ReLU in
    ``order`` ``"bn_relu_conv"`` (standard) or ``"relu_bn_conv"``, He-initialised plain
    convolutions, and residual blocks ``x + f(x)`` (no β, α or SkipInit). ``depths`` are the
    blocks per stage: (3, 4, 6, 3) is ResNet-50, [50] * 4 the paper's ResNet-600. Other arguments
    as the NF builders (no stochastic depth by default); no pretrained weights exist.
    """
    args = ApplicationArgs.bind("BNResNetV2", arguments, defaults=_BN_RESNET_DEFAULTS)
    args.check()
    if args.pretrained:
        raise ValueError("No ImageNet weights exist for BNResNetV2. Use `weights=None` or a `.weights.h5` file.")
    depth = 2 + 3 * sum(depths)
    return build_checked(bn_resnetv2_config(tuple(depths), order, name=f"bn_resnetv2_{depth}"), args)


_BN_RESNET_DEFAULTS = {"stochastic_depth_rate": 0.0}
BNResNetV2.__signature__ = signature(
    [inspect.Parameter("depths", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=(3, 4, 6, 3)),
     inspect.Parameter("order", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="bn_relu_conv")],
    defaults=_BN_RESNET_DEFAULTS)

__all__ = [*BUILDERS, "BUILDERS", "BNResNetV2"]
