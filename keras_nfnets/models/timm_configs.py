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
    NF_RESNET_DEPTHS,
    NFNET_VARIANTS,
    NFConfig,
    make_divisible,
)

_TIMM_COMMON = dict(
    padding="symmetric",
    ws_eps=1e-5,
    ws_eps_mode="add",
    gamma_in_conv=True,
    skipinit=False,
    zero_init_last_gain=True,
    mid_channel_divisor=8,
    attention_divisor=8,
    drop_rate=0.0,
    stochastic_depth_rate=0.0,
    classifier_init_std=0.01,
)


def _timm_resnet(name, depths, attention=None, se_ratio=1 / 16):
    return NFConfig(
        name=name,
        family="nf_resnet",
        depths=depths,
        widths=(256, 512, 1024, 2048),
        stem="7x7_pool",
        stem_width=64,
        bottleneck_ratio=0.25,
        attention=attention,
        se_ratio=se_ratio,
        shortcut_pool=True,
        activation="relu",
        **_TIMM_COMMON,
    )


def _timm_regnet(name, variant):
    base_widths, depths, _, _, _ = NF_REGNET_VARIANTS[variant]
    return NFConfig(
        name=name,
        family="nf_regnet",
        depths=depths,
        widths=tuple(make_divisible(w * 0.75) for w in base_widths),
        strides=(2, 2, 2, 2),
        stem="3x3",
        stem_width=make_divisible(base_widths[0] * 0.75),
        bottleneck_ratio=2.25,
        bottleneck_from="in",
        first_block_ratio=1.0,
        group_width=8,
        attention="se",
        se_ratio=0.5,
        shortcut_pool=True,
        final_conv_channels=make_divisible(0.75 * (1280 * base_widths[-1] // 440)),
        activation="silu",
        **_TIMM_COMMON,
    )


def _timm_nfnet(name, depths, widths=(256, 512, 1536, 1536), group_width=128, bottleneck_ratio=0.5,
                feature_multiplier=2.0, activation="gelu_exact", attention="se", se_ratio=0.5):
    return NFConfig(
        name=name,
        family="nfnet",
        depths=depths,
        widths=widths,
        strides=(1, 2, 2, 2),
        stem="deep_quad",
        stem_width=128,
        bottleneck_ratio=bottleneck_ratio,
        group_width=group_width,
        attention=attention,
        se_ratio=se_ratio,
        shortcut_pool=True,
        final_conv_channels=int(widths[-1] * feature_multiplier),
        activation=activation,
        **_TIMM_COMMON,
    )


def _dm_nfnet(name, depths):
    """timm's port of DeepMind's NFNets: DeepMind's layout, exact GELU, eps added to the variance."""
    return _timm_nfnet(name, depths).replace(
        padding="same", gamma_in_conv=False, skipinit=True, zero_init_last_gain=False
    )


_L_KWARGS = dict(group_width=64, bottleneck_ratio=0.25, activation="silu")

TIMM_CONFIGS = {
    **{f"dm_nfnet_{v.lower()}": _dm_nfnet(f"dm_nfnet_{v.lower()}", NFNET_VARIANTS[v][0]) for v in list(NFNET_VARIANTS)[:7]},
    **{f"nfnet_{v.lower()}": _timm_nfnet(f"nfnet_{v.lower()}", NFNET_VARIANTS[v][0]) for v in NFNET_VARIANTS},
    "nfnet_l0": _timm_nfnet("nfnet_l0", (1, 2, 6, 3), feature_multiplier=1.5, se_ratio=0.25, **_L_KWARGS),
    "eca_nfnet_l0": _timm_nfnet("eca_nfnet_l0", (1, 2, 6, 3), feature_multiplier=1.5, attention="eca", **_L_KWARGS),
    "eca_nfnet_l1": _timm_nfnet("eca_nfnet_l1", (2, 4, 12, 6), attention="eca", **_L_KWARGS),
    "eca_nfnet_l2": _timm_nfnet("eca_nfnet_l2", (3, 6, 18, 9), attention="eca", **_L_KWARGS),
    "eca_nfnet_l3": _timm_nfnet("eca_nfnet_l3", (4, 8, 24, 12), attention="eca", **_L_KWARGS),
    **{f"nf_regnet_{v.lower()}": _timm_regnet(f"nf_regnet_{v.lower()}", v) for v in list(NF_REGNET_VARIANTS)[:6]},
    **{f"nf_resnet{d}": _timm_resnet(f"nf_resnet{d}", NF_RESNET_DEPTHS[d]) for d in (26, 50, 101)},
    **{f"nf_seresnet{d}": _timm_resnet(f"nf_seresnet{d}", NF_RESNET_DEPTHS[d], "se") for d in (26, 50, 101)},
    **{f"nf_ecaresnet{d}": _timm_resnet(f"nf_ecaresnet{d}", NF_RESNET_DEPTHS[d], "eca") for d in (26, 50, 101)},
    "test_nfnet": _timm_nfnet("test_nfnet", (1, 1, 1, 1), widths=(32, 64, 96, 128), group_width=8,
                              bottleneck_ratio=0.25, feature_multiplier=1.5, activation="silu", se_ratio=0.25),
}


def timm_config(name):
    """The :class:`NFConfig` that reproduces timm's model ``name`` (tag suffixes like ``.ra2_in1k`` allowed)."""
    architecture = name.split(".")[0]
    if architecture not in TIMM_CONFIGS:
        raise ValueError(f"Unknown timm NF model {name!r}; known: {', '.join(sorted(TIMM_CONFIGS))}.")
    return TIMM_CONFIGS[architecture]
