"""The public variants: builder name → config (data only), and lookup by name."""

from keras_nfnets.models.config import (
    NF_REGNET_VARIANTS,
    NF_RESNET_DEPTHS,
    NFNET_VARIANTS,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
)
from keras_nfnets.models.timm_configs import TIMM_CONFIGS

# timm's lighter NFNets, public under their own builders: builder → (timm architecture, train, test size).
TIMM_DESIGNED = {
    "NFNetL0": ("nfnet_l0", 224, 288),
    "ECANFNetL0": ("eca_nfnet_l0", 224, 288),
    "ECANFNetL1": ("eca_nfnet_l1", 256, 320),
    "ECANFNetL2": ("eca_nfnet_l2", 320, 384),
    "ECANFNetL3": ("eca_nfnet_l3", 352, 448),
}

VARIANTS = {
    **{f"NFResNet{depth}": nf_resnet_config(depths, name=f"nf_resnet{depth}") for depth, depths in NF_RESNET_DEPTHS.items()},
    **{f"NFRegNet{variant}": nf_regnet_config(variant) for variant in NF_REGNET_VARIANTS},
    **{f"NFNet{variant}": nfnet_config(variant) for variant in NFNET_VARIANTS},
    **{builder: TIMM_CONFIGS[architecture].replace(train_size=train, test_size=test)
       for builder, (architecture, train, test) in TIMM_DESIGNED.items()},
}


def get_config(name):
    """The config of a public variant by builder or config name, e.g. ``"NFRegNetB1"``, ``"nfnet_f1"``."""
    key = name.lower().replace("-", "_")
    for builder_name, config in VARIANTS.items():
        if key in (builder_name.lower(), config.name):
            return config
    raise ValueError(f"Unknown NF model {name!r}; available: {', '.join(VARIANTS)}.")
