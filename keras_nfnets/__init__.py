"""keras_nfnets: Normalizer-Free networks (NF-ResNets, NF-RegNets, NFNets) for Keras 3.

Brock, De & Smith, *Characterizing signal propagation to close the performance gap in
unnormalized ResNets* (ICLR 2021) and Brock et al., *High-Performance Large-Scale Image
Recognition Without Normalization* (2021).
"""

__version__ = "0.1.0"

from keras_nfnets import _startup

if _startup.running_as_cli() and not _startup.wants_tensorflow_logs() and _startup.tensorflow_backend():
    _startup.quiet_tensorflow_start()

from keras_nfnets import data, launch, layers, models, spp, training, weights  # noqa: E402
from keras_nfnets.applications import (  # noqa: E402
    BUILDERS,
    BNResNetV2,
    ECANFNetL0,
    ECANFNetL1,
    ECANFNetL2,
    ECANFNetL3,
    NFNetF0,
    NFNetF1,
    NFNetF2,
    NFNetF3,
    NFNetF4,
    NFNetF5,
    NFNetF6,
    NFNetF7,
    NFNetL0,
    NFRegNetB0,
    NFRegNetB1,
    NFRegNetB2,
    NFRegNetB3,
    NFRegNetB4,
    NFRegNetB5,
    NFRegNetB6,
    NFRegNetB7,
    NFRegNetB8,
    NFResNet14,
    NFResNet26,
    NFResNet50,
    NFResNet101,
    NFResNet152,
    NFResNet200,
    NFResNet288,
)
from keras_nfnets.data import EvalTransform  # noqa: E402
from keras_nfnets.export import (  # noqa: E402
    export_onnx,
    export_saved_model,
    export_tflite,
    fold_weight_standardization,
    verify_export,
)
from keras_nfnets.imagenet import decode_predictions, imagenet_classes, preprocess_input  # noqa: E402
from keras_nfnets.layers import (  # noqa: E402
    ECA,
    GAMMA,
    GammaActivation,
    GroupConv2D,
    ScaledWSConv2D,
    SkipInitGain,
    SqueezeExcite,
    StochasticDepth,
    estimate_gamma,
)
from keras_nfnets.models import (  # noqa: E402
    TIMM_CONFIGS,
    VARIANTS,
    NFConfig,
    add_classifier_head,
    block_plan,
    bn_resnetv2_config,
    build_nf_model,
    count_flops,
    count_params,
    get_config,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
    timm_config,
)
from keras_nfnets.preprocessing import eval_transform, preprocess_image  # noqa: E402
from keras_nfnets.spp import SignalPropagation, plot_signal_propagation, signal_propagation  # noqa: E402
from keras_nfnets.training import evaluate, recipe, train  # noqa: E402
from keras_nfnets.weights import CheckpointError, from_timm, load_timm_weights  # noqa: E402

__all__ = [
    # builders (keras.applications API) and their registry
    *BUILDERS, "BUILDERS", "BNResNetV2",
    # inputs and outputs
    "preprocess_input", "decode_predictions", "imagenet_classes", "preprocess_image", "eval_transform",
    "EvalTransform",
    # pretrained weights
    "from_timm", "load_timm_weights", "CheckpointError",
    # configs and the builder
    "NFConfig", "VARIANTS", "TIMM_CONFIGS", "get_config", "timm_config", "nf_resnet_config", "nf_regnet_config",
    "nfnet_config", "bn_resnetv2_config", "build_nf_model", "add_classifier_head", "block_plan", "count_params",
    "count_flops",
    # layers
    "ScaledWSConv2D", "GroupConv2D", "GammaActivation", "GAMMA", "estimate_gamma", "SqueezeExcite", "ECA",
    "StochasticDepth", "SkipInitGain",
    # training
    "train", "evaluate", "recipe",
    # signal propagation
    "signal_propagation", "plot_signal_propagation", "SignalPropagation",
    # deployment
    "fold_weight_standardization", "export_saved_model", "export_tflite", "export_onnx", "verify_export",
    # subpackages
    "data", "layers", "models", "spp", "training", "weights",
]
