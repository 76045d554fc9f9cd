"""keras_nfnets: Normalizer-Free networks (NF-ResNets, NF-RegNets, NFNets) for Keras 3.

Brock, De & Smith, *Characterizing signal propagation to close the performance gap in
unnormalized ResNets* (ICLR 2021) and Brock et al., *High-Performance Large-Scale Image
Recognition Without Normalization* (2021).
"""

__version__ = "0.1.0"

from keras_nfnets import data, layers, models, spp, training, weights
from keras_nfnets.applications import (
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
from keras_nfnets.export import (
    export_onnx,
    export_saved_model,
    export_tflite,
    fold_weight_standardization,
    native_grouped_convolutions,
    verify_export,
)
from keras_nfnets.imagenet import decode_predictions, imagenet_classes, preprocess_input
from keras_nfnets.preprocessing import eval_transform, preprocess_image
from keras_nfnets.spp import SignalPropagation, plot_signal_propagation, signal_propagation
from keras_nfnets.layers import (
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
from keras_nfnets.models import (
    TIMM_CONFIGS,
    VARIANTS,
    NFConfig,
    bn_resnetv2_config,
    block_plan,
    build_nf_model,
    count_flops,
    count_params,
    get_config,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
    timm_config,
)
from keras_nfnets.training import evaluate, recipe, train
from keras_nfnets.weights import CheckpointError, from_timm, load_timm_weights
