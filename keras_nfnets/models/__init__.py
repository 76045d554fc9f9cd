"""NF-ResNets, NF-RegNets and NFNets: configs, the builder, and the public variants."""

from keras_nfnets.models.builder import add_classifier_head, block_plan, build_nf_model, validate_application_args
from keras_nfnets.models.config import (
    NFConfig,
    bn_resnetv2_config,
    nf_regnet_config,
    nf_resnet_config,
    make_divisible,
    nfnet_config,
)
from keras_nfnets.models.summary import count_flops, count_params
from keras_nfnets.models.timm_configs import TIMM_CONFIGS, timm_config
from keras_nfnets.models.variants import TIMM_DESIGNED, VARIANTS, get_config
