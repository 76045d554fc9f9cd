"""NF-ResNets, NF-RegNets and NFNets: configs, the builder, and the public variants."""

from keras_nfnets.models.applications import (
    BUILDERS,
    NFNetF0,
    NFNetF1,
    NFNetF2,
    NFNetF3,
    NFNetF4,
    NFNetF5,
    NFNetF6,
    NFNetF7,
    NFRegNetB0,
    NFRegNetB1,
    NFRegNetB2,
    NFRegNetB3,
    NFRegNetB4,
    NFRegNetB5,
    NFRegNetB6,
    NFRegNetB7,
    NFRegNetB8,
    NFResNet26,
    NFResNet50,
    NFResNet101,
    NFResNet152,
    NFResNet200,
    NFResNet288,
)
from keras_nfnets.models.builder import block_plan, build_nf_model
from keras_nfnets.models.config import (
    NFConfig,
    get_config,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
)
from keras_nfnets.models.summary import count_flops, count_params
from keras_nfnets.models.variants import VARIANTS
