"""The public variants: builder name → config (data only)."""

from keras_nfnets.models.config import (
    NF_REGNET_VARIANTS,
    NF_RESNET_DEPTHS,
    NFNET_VARIANTS,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
)
from keras_nfnets.models.timm_configs import TIMM_CONFIGS

VARIANTS = {
    **{f"NFResNet{depth}": nf_resnet_config(depths, name=f"nf_resnet{depth}") for depth, depths in NF_RESNET_DEPTHS.items()},
    **{f"NFRegNet{variant}": nf_regnet_config(variant) for variant in NF_REGNET_VARIANTS},
    **{f"NFNet{variant}": nfnet_config(variant) for variant in NFNET_VARIANTS},
    # timm's lighter NFNets (timm architecture; sizes of their checkpoints / timm's defaults)
    "NFNetL0": TIMM_CONFIGS["nfnet_l0"].replace(train_size=224, test_size=288),
    "ECANFNetL0": TIMM_CONFIGS["eca_nfnet_l0"].replace(train_size=224, test_size=288),
    "ECANFNetL1": TIMM_CONFIGS["eca_nfnet_l1"].replace(train_size=256, test_size=320),
    "ECANFNetL2": TIMM_CONFIGS["eca_nfnet_l2"].replace(train_size=320, test_size=384),
    "ECANFNetL3": TIMM_CONFIGS["eca_nfnet_l3"].replace(train_size=352, test_size=448),
}
