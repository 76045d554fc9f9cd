"""The public variants, as rows of data: builder name → :class:`Variant` (the architecture, and
the facts about training and evaluating it that are not architecture), and lookup by name.

Architecture rows are :class:`~keras_nfnets.models.config.NFConfig`; checkpoint rows (what a
pretrained file was trained and evaluated with) are ``keras_nfnets.weights.presets.Checkpoint``.
A variant row states its image sizes only where no checkpoint does: the lighter NFNets designed
in timm take their checkpoint's sizes (``None`` here; :func:`keras_nfnets.applications.variant`
joins the two).
"""

import dataclasses
from typing import Optional

from keras_nfnets.models.config import (
    NF_REGNET_VARIANTS,
    NF_RESNET_DEPTHS,
    NFNET_VARIANTS,
    NFConfig,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
)
from keras_nfnets.models.timm_configs import TIMM_CONFIGS, TIMM_EVAL_CROP

FAMILIES = ("nf_resnet", "nf_regnet", "nfnet")  # whose paper's training recipe a variant follows


@dataclasses.dataclass(frozen=True)
class Variant:
    """A public builder's row.

    Attributes:
        config: the architecture.
        family: ``"nf_resnet"``, ``"nf_regnet"`` or ``"nfnet"``: the paper whose recipe trains it.
        train_size, test_size: image sizes for training and evaluation (the default input size);
            ``None``: its ImageNet checkpoint's.
        eval_crop: the evaluation crop rule (see ``keras_nfnets.data.EvalTransform``): DeepMind
            crops NF-ResNets and NF-RegNets with ``"crop_resize"`` and squashes NFNets to size + 32
            (``"plus32"``); timm centre-crops (``"center"``).
    """

    config: NFConfig
    family: str
    train_size: Optional[int]
    test_size: Optional[int]
    eval_crop: str

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"Variant {self.config.name!r}: family must be one of {FAMILIES}, got {self.family!r}.")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# timm's lighter NFNets, public under their own builders: builder → timm architecture. Their sizes
# are their checkpoints'; ECA-NFNet-L3 has none here, so its row states timm's (train 352, test 448).
TIMM_DESIGNED = {
    "NFNetL0": "nfnet_l0",
    "ECANFNetL0": "eca_nfnet_l0",
    "ECANFNetL1": "eca_nfnet_l1",
    "ECANFNetL2": "eca_nfnet_l2",
    "ECANFNetL3": "eca_nfnet_l3",
}
_TIMM_DESIGNED_SIZES = {"ECANFNetL3": (352, 448)}

VARIANT_TABLE = {
    **{f"NFResNet{depth}": Variant(nf_resnet_config(depths, name=f"nf_resnet{depth}"), "nf_resnet", 224, 224,
                                   "crop_resize")
       for depth, depths in NF_RESNET_DEPTHS.items()},
    **{f"NFRegNet{v}": Variant(nf_regnet_config(v), "nf_regnet", *NF_REGNET_VARIANTS[v][2:4], "crop_resize")
       for v in NF_REGNET_VARIANTS},
    **{f"NFNet{v}": Variant(nfnet_config(v), "nfnet", *NFNET_VARIANTS[v][1:3], "plus32") for v in NFNET_VARIANTS},
    **{builder: Variant(TIMM_CONFIGS[architecture], "nfnet", *_TIMM_DESIGNED_SIZES.get(builder, (None, None)),
                        TIMM_EVAL_CROP)
       for builder, architecture in TIMM_DESIGNED.items()},
}
VARIANTS = {builder: variant.config for builder, variant in VARIANT_TABLE.items()}  # builder → architecture


def get_config(name):
    """The config of a public variant by builder or config name, e.g. ``"NFRegNetB1"``, ``"nfnet_f1"``."""
    key = name.lower().replace("-", "_")
    for builder_name, config in VARIANTS.items():
        if key in (builder_name.lower(), config.name):
            return config
    raise ValueError(f"Unknown NF model {name!r}; available: {', '.join(VARIANTS)}.")


def architecture_named(name):
    """The :class:`NFConfig` of a builder name (``"NFNetF0"``: the variant's own architecture), else
    of a timm name or tag (``"nf_regnet_b1"``, ``"dm_nfnet_f0.dm_in1k"``), else of a variant's
    config name (``"nfnet_f1"``); an unknown name is an error listing both kinds."""
    if name in VARIANTS:
        return VARIANTS[name]
    if name.split(".")[0] in TIMM_CONFIGS:
        return TIMM_CONFIGS[name.split(".")[0]]
    try:
        return get_config(name)
    except ValueError:
        raise ValueError(f"Unknown NF model {name!r}: give a builder ({', '.join(VARIANTS)}) or a timm NF name "
                         f"({', '.join(sorted(TIMM_CONFIGS))}).") from None
