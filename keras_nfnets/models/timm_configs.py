"""The architectures of timm's 36 NF model names, as :class:`NFConfig` rows.

timm (``timm/models/nfnet.py``) differs from DeepMind's code in ways that change the weights'
meaning (reference §8–9): channels rounded to multiples of 8, PyTorch-style symmetric padding,
γ folded into every Scaled-WS conv with plain activations, the last conv's gain initialised at
0 instead of SkipInit, WS eps 1e-5 added to the variance, average-pool shortcuts in NF-ResNets
too, SE widths rounded to multiples of 8. The ``dm_nfnet_*`` ports keep DeepMind's layout
(TF-SAME padding, γ in the activation, SkipInit) but use exact (erf) GELU and timm's eps rule.
Each difference is a field of the config, so the one builder reproduces every checkpoint.
"""

from keras_nfnets.models.config import (
    NF_REGNET_VARIANTS,
    NF_REGNET_WIDTH_FACTOR,
    NF_RESNET_DEPTHS,
    NFNET_VARIANTS,
    make_divisible,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
)

# What every timm NF model changes with respect to DeepMind's configs (reference §8–9).
TIMM_CHANGES = dict(
    padding="symmetric",
    ws_eps=1e-5,
    ws_eps_mode="add",
    gamma_in_conv=True,
    skipinit=False,
    zero_init_last_gain=True,
    mid_channel_divisor=8,
    attention_divisor=8,
    shortcut_pool=True,
    drop_rate=0.0,
    stochastic_depth_rate=0.0,
    classifier_init_std=0.01,
)


def _timm_resnet(depth, attention=None):
    """timm's ``nf_{,se,eca}resnet{depth}``: DeepMind's NF-ResNet with SE/ECA at ratio 1/16."""
    prefix = {None: "nf_resnet", "se": "nf_seresnet", "eca": "nf_ecaresnet"}[attention]
    return nf_resnet_config(NF_RESNET_DEPTHS[depth], name=f"{prefix}{depth}", attention=attention, se_ratio=1 / 16,
                            **TIMM_CHANGES)


def _timm_regnet(variant):
    """timm's ``nf_regnet_{variant}``: widths × 0.75 rounded to multiples of 8 instead of floored."""
    base_widths = NF_REGNET_VARIANTS[variant][0]
    widths = tuple(make_divisible(w * NF_REGNET_WIDTH_FACTOR) for w in base_widths)
    return nf_regnet_config(
        variant, widths=widths, stem_width=widths[0],
        final_conv_channels=make_divisible(NF_REGNET_WIDTH_FACTOR * (1280 * base_widths[-1] // 440)),
        **TIMM_CHANGES,
    )


def _timm_nfnet(name, depths, feature_multiplier=2.0, **changes):
    """timm's NFNet layout: DeepMind's NFNet-F with exact GELU and ``feature_multiplier`` × the last
    width in the final conv; ``changes`` give the lighter variants' widths, groups and activation."""
    changes = {"activation": "gelu_exact", **TIMM_CHANGES, **changes}
    config = nfnet_config("F0").replace(name=name, depths=depths, stem_width=128, **changes)
    return config.replace(final_conv_channels=int(config.widths[-1] * feature_multiplier))


def _dm_nfnet(variant):
    """timm's port of DeepMind's NFNets: DeepMind's layout, exact GELU, eps added to the variance."""
    return _timm_nfnet(f"dm_nfnet_{variant.lower()}", NFNET_VARIANTS[variant][0]).replace(
        padding="same", gamma_in_conv=False, skipinit=True, zero_init_last_gain=False
    )


# timm's lighter NFNets (NFNet-L, ECA-NFNet-L): group width 64, bottleneck 0.25, SiLU.
_LIGHT = dict(group_width=64, bottleneck_ratio=0.25, activation="silu")

TIMM_CONFIGS = {
    **{f"dm_nfnet_{v.lower()}": _dm_nfnet(v) for v in list(NFNET_VARIANTS)[:7]},
    **{f"nfnet_{v.lower()}": _timm_nfnet(f"nfnet_{v.lower()}", NFNET_VARIANTS[v][0]) for v in NFNET_VARIANTS},
    "nfnet_l0": _timm_nfnet("nfnet_l0", NFNET_VARIANTS["F0"][0], 1.5, se_ratio=0.25, **_LIGHT),
    "eca_nfnet_l0": _timm_nfnet("eca_nfnet_l0", NFNET_VARIANTS["F0"][0], 1.5, attention="eca", **_LIGHT),
    "eca_nfnet_l1": _timm_nfnet("eca_nfnet_l1", NFNET_VARIANTS["F1"][0], attention="eca", **_LIGHT),
    "eca_nfnet_l2": _timm_nfnet("eca_nfnet_l2", NFNET_VARIANTS["F2"][0], attention="eca", **_LIGHT),
    "eca_nfnet_l3": _timm_nfnet("eca_nfnet_l3", NFNET_VARIANTS["F3"][0], attention="eca", **_LIGHT),
    **{f"nf_regnet_{v.lower()}": _timm_regnet(v) for v in list(NF_REGNET_VARIANTS)[:6]},
    **{f"{prefix}{d}": _timm_resnet(d, attention)
       for attention, prefix in ((None, "nf_resnet"), ("se", "nf_seresnet"), ("eca", "nf_ecaresnet"))
       for d in (26, 50, 101)},
    "test_nfnet": _timm_nfnet("test_nfnet", (1, 1, 1, 1), 1.5, widths=(32, 64, 96, 128), group_width=8,
                              bottleneck_ratio=0.25, activation="silu", se_ratio=0.25),
}

# timm evaluates every model with a centre crop (crop_pct 0.875 unless a checkpoint says otherwise).
TIMM_EVAL_CROP = "center"
def timm_config(name):
    """The :class:`NFConfig` that reproduces timm's model ``name`` (tag suffixes like ``.ra2_in1k`` allowed)."""
    architecture = name.split(".")[0]
    if architecture not in TIMM_CONFIGS:
        raise ValueError(f"Unknown timm NF model {name!r}; known: {', '.join(sorted(TIMM_CONFIGS))}.")
    return TIMM_CONFIGS[architecture]
