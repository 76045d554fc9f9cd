"""The public variants: builder name → config (data only)."""

from keras_nfnets.models.config import (
    NF_REGNET_VARIANTS,
    NF_RESNET_DEPTHS,
    NFNET_VARIANTS,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
)

VARIANTS = {
    **{f"NFResNet{depth}": nf_resnet_config(depths, name=f"nf_resnet{depth}") for depth, depths in NF_RESNET_DEPTHS.items()},
    **{f"NFRegNet{variant}": nf_regnet_config(variant) for variant in NF_REGNET_VARIANTS},
    **{f"NFNet{variant}": nfnet_config(variant) for variant in NFNET_VARIANTS},
}
