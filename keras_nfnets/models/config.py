"""Model configurations: one frozen dataclass, and every variant as a row of data.

Values follow DeepMind's ``nfnets/`` code (``base.py``, ``nf_resnet.py``, ``nf_regnet.py``,
``nfnet.py``) and the papers: NF-ResNets (ICLR 2021 §4–5.1), NF-RegNets (App. C/D) and
NFNets (Brock et al. 2021, §5, Table 1 / App. A).
"""

import dataclasses
from typing import Optional, Tuple

from keras_nfnets.layer_options import ELEMENTWISE_ACTIVATIONS, EPS_MODES, PADDINGS

STEMS = ("7x7_pool", "3x3", "deep_quad")
ATTENTIONS = (None, "se", "eca")
ATTENTION_POSITIONS = ("out", "mid")
CONV_TYPES = ("scaled_ws", "plain")
NORMALIZATIONS = (None, "bn_relu_conv", "relu_bn_conv")


@dataclasses.dataclass(frozen=True)
class NFConfig:
    """Everything that defines a Normalizer-Free network's architecture, and nothing else (how a
    variant is trained and evaluated is a :class:`~keras_nfnets.models.variants.Variant` row;
    how a checkpoint was, a :class:`~keras_nfnets.weights.presets.Checkpoint` row).

    Attributes:
        name: variant name (also the default model name).
        depths, widths, strides: blocks, output channels and first-block stride per stage.
        stem: ``"7x7_pool"`` (ResNet: 7×7/2 conv + 3×3/2 max-pool), ``"3x3"`` (RegNet: one
            3×3/2 conv) or ``"deep_quad"`` (NFNet: four 3×3 convs, strides 2,1,1,2).
        stem_width: output channels of the stem.
        bottleneck_ratio: mid width / reference width; the reference is the block's input
            width when ``bottleneck_from == "in"`` (RegNet) and its output width otherwise.
        first_block_ratio: ratio used instead for the network's first block (RegNet: 1).
        group_width: channels per group of the 3×3 convs (mid widths are floored to a
            multiple of it, as DeepMind); ``None`` for ungrouped convs.
        attention: ``None``, ``"se"`` (squeeze-excite, hidden = ``se_ratio`` × channels) or
            ``"eca"``; ``attention_gain`` is its output rescale (2, paper §4.4).
        attention_position: ``"out"`` (after the branch's last conv: NF-ResNet, NFNet) or
            ``"mid"`` (after the grouped 3×3: NF-RegNet, App. C).
        extra_conv: a second grouped 3×3 after the first (NFNet paper §5.1).
        shortcut_pool: 2×2 average pool before the transition shortcut conv (App. B.4).
        final_conv_channels: width of the 1×1 conv before pooling (0: none).
        activation, gamma: nonlinearity and its γ (``None``: DeepMind's table).
        alpha: residual branch scale α (paper §4).
        skipinit: scalar SkipInit gain (init 0) at the end of every residual branch.
        conv_type: ``"scaled_ws"`` (paper) or ``"plain"`` (He-initialised, for analysis).
        ws_eps, ws_eps_mode, padding: Scaled-WS stabiliser and padding (see ScaledWSConv2D).
        drop_rate: dropout before the classifier; stochastic_depth_rate: the largest per-block
            rate, growing linearly with block index as ``rate · i / num_blocks``.
        classifier_init_std: std of the classifier's normal init (0: zeros, as NF-RegNets).
        mid_channel_divisor: ``None`` floors the bottleneck width (DeepMind); an integer ``d``
            rounds it to the nearest multiple of ``d`` (timm's ``make_divisible``), before the
            group-width rounding.
        attention_divisor: ``None``: SE hidden width ``int(C · se_ratio)`` (DeepMind); ``d``:
            timm's ``make_divisible(C · se_ratio, d, round_limit=0)``.
        gamma_in_conv: fold the activation's γ into every Scaled-WS conv (stem and final conv
            included) and use plain activations (timm) instead of γ-scaled activations (DeepMind).
        zero_init_last_gain: initialise the WS gain of each branch's last conv at 0 (timm's
            substitute for SkipInit).
        normalization: ``None`` (Normalizer-Free), or a BatchNorm ResNetV2 baseline (paper §3,
            Figure 1): ``"bn_relu_conv"`` or ``"relu_bn_conv"``. With BatchNorm the blocks compute
            ``x + f(x)``: β and α are not applied and convolutions are He-initialised.
        stem_pool: keep the ResNet stem's max-pool (the paper removes it for linear nets, Fig. 7).
    """

    name: str
    depths: Tuple[int, ...]
    widths: Tuple[int, ...]
    strides: Tuple[int, ...] = (1, 2, 2, 2)
    stem: str = "7x7_pool"
    stem_width: int = 64
    bottleneck_ratio: float = 0.25
    bottleneck_from: str = "out"
    first_block_ratio: Optional[float] = None
    group_width: Optional[int] = None
    attention: Optional[str] = None
    se_ratio: float = 0.25
    attention_gain: float = 2.0
    attention_position: str = "out"
    extra_conv: bool = False
    shortcut_pool: bool = False
    final_conv_channels: int = 0
    activation: str = "relu"
    gamma: Optional[float] = None
    alpha: float = 0.2
    skipinit: bool = True
    conv_type: str = "scaled_ws"
    ws_eps: float = 1e-4
    ws_eps_mode: str = "floor"
    padding: str = "same"
    drop_rate: float = 0.0
    stochastic_depth_rate: float = 0.0
    classifier_init_std: float = 0.01
    mid_channel_divisor: Optional[int] = None
    attention_divisor: Optional[int] = None
    gamma_in_conv: bool = False
    zero_init_last_gain: bool = False
    normalization: Optional[str] = None
    stem_pool: bool = True

    def __post_init__(self):
        def fail(message):
            raise ValueError(f"Invalid NFConfig {self.name!r}: {message}")

        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        if not self.depths or not (len(self.depths) == len(self.widths) == len(self.strides)):
            fail(f"depths {self.depths}, widths {self.widths} and strides {self.strides} need one entry per stage.")
        if min(self.depths) < 1 or min(self.widths) < 1 or min(self.strides) < 1:
            fail("depths, widths and strides must be positive.")
        if self.stem not in STEMS:
            fail(f"stem must be one of {STEMS}, got {self.stem!r}.")
        if self.bottleneck_from not in ("in", "out"):
            fail(f"bottleneck_from must be 'in' or 'out', got {self.bottleneck_from!r}.")
        if self.attention_position not in ATTENTION_POSITIONS:
            fail(f"attention_position must be one of {ATTENTION_POSITIONS}, got {self.attention_position!r}.")
        if self.attention not in ATTENTIONS:
            fail(f"attention must be one of {ATTENTIONS}, got {self.attention!r}.")
        if self.activation not in ELEMENTWISE_ACTIVATIONS:
            fail(f"activation must be one of {ELEMENTWISE_ACTIVATIONS}, got {self.activation!r}.")
        if self.conv_type not in CONV_TYPES:
            fail(f"conv_type must be one of {CONV_TYPES}, got {self.conv_type!r}.")
        if self.ws_eps_mode not in EPS_MODES:
            fail(f"ws_eps_mode must be one of {EPS_MODES}, got {self.ws_eps_mode!r}.")
        if self.padding not in PADDINGS:
            fail(f"padding must be one of {PADDINGS}, got {self.padding!r}.")
        if not 0.0 <= self.drop_rate < 1.0 or not 0.0 <= self.stochastic_depth_rate < 1.0:
            fail("drop_rate and stochastic_depth_rate must be in [0, 1).")
        if self.group_width is not None and self.group_width < 1:
            fail("group_width must be positive or None.")
        if self.normalization not in NORMALIZATIONS:
            fail(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}.")
        for field in ("mid_channel_divisor", "attention_divisor"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                fail(f"{field} must be a positive integer or None, got {value!r}.")

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Every field as JSON-ready data (tuples become lists): a model's and a preset's config."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data):
        """The config :meth:`to_dict` wrote (an ``NFConfig`` passes through); unknown or missing
        fields are errors that name them."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise TypeError(f"An architecture is an NFConfig or its dict (NFConfig.to_dict()); got {type(data).__name__}.")
        unknown = sorted(set(data) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"The architecture has fields NFConfig does not know: {unknown}. It was written by a newer "
                             "keras_nfnets: upgrade keras_nfnets to load it.")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"The architecture is not a complete NFConfig: {error}") from error

    def same_architecture(self, other):
        """Whether ``other`` builds the same layers and weights: equal but for the regularisation
        (``drop_rate``, ``stochastic_depth_rate``), which every builder call may override."""
        return self.replace(drop_rate=0.0, stochastic_depth_rate=0.0) == other.replace(drop_rate=0.0,
                                                                                          stochastic_depth_rate=0.0)

    @property
    def num_blocks(self):
        return sum(self.depths)


def make_divisible(value, divisor=8, round_limit=0.9):
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never more
    than ``1 - round_limit`` below it (timm's channel rounding)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


# --- NF-ResNets (paper §4, §5.1; DeepMind nf_resnet.py) -------------------------------------

NF_RESNET_DEPTHS = {
    14: (1, 1, 1, 1),
    26: (2, 2, 2, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
    288: (24, 24, 24, 24),
}


def nf_resnet_config(depths, name="nf_resnet", **changes):
    """An NF-ResNet (ResNetV2 pre-activation bottleneck) with any per-stage ``depths``."""
    base = NFConfig(
        name=name,
        depths=tuple(depths),
        widths=(256, 512, 1024, 2048),
        stem="7x7_pool",
        stem_width=64,
        bottleneck_ratio=0.25,
        se_ratio=0.25,
        activation="relu",
        drop_rate=0.25,
        stochastic_depth_rate=0.1,
        classifier_init_std=0.01,
    )
    return base.replace(**changes)


def bn_resnetv2_config(depths, order="bn_relu_conv", name="bn_resnetv2", **changes):
    """The BatchNorm pre-activation ResNetV2 baseline (paper §3, Figure 1) with any ``depths``:
    He-initialised plain convs, BN before (``"bn_relu_conv"``) or after (``"relu_bn_conv"``) ReLU."""
    return nf_resnet_config(
        depths, name=name, normalization=order, conv_type="plain", skipinit=False, alpha=1.0, gamma=1.0,
        **changes,
    )


# --- NF-RegNets (paper App. C/D; DeepMind base.nf_regnet_params) ----------------------------
# variant: (base widths, depths, train size, test size, dropout)
NF_REGNET_VARIANTS = {
    "B0": ((48, 104, 208, 440), (1, 3, 6, 6), 192, 224, 0.2),
    "B1": ((48, 104, 208, 440), (2, 4, 7, 7), 224, 256, 0.2),
    "B2": ((56, 112, 232, 488), (2, 4, 8, 8), 240, 272, 0.3),
    "B3": ((56, 128, 248, 528), (2, 5, 9, 9), 288, 320, 0.3),
    "B4": ((64, 144, 288, 616), (2, 6, 11, 11), 320, 384, 0.4),
    "B5": ((80, 168, 336, 704), (3, 7, 14, 14), 384, 456, 0.4),
    "B6": ((88, 184, 376, 792), (3, 8, 16, 16), 448, 528, 0.5),
    "B7": ((96, 208, 416, 880), (4, 10, 19, 19), 512, 600, 0.5),
    "B8": ((104, 232, 456, 968), (4, 11, 22, 22), 600, 672, 0.5),
}
NF_REGNET_WIDTH_FACTOR = 0.75


def nf_regnet_config(variant, **changes):
    """NF-RegNet ``variant`` ("B0"…"B8"): widths × 0.75 (floored), expansion 2.25, group width 8."""
    base_widths, depths, _, _, drop_rate = NF_REGNET_VARIANTS[variant]
    widths = tuple(int(w * NF_REGNET_WIDTH_FACTOR) for w in base_widths)
    base = NFConfig(
        name=f"nf_regnet_{variant.lower()}",
        depths=depths,
        widths=widths,
        strides=(2, 2, 2, 2),
        stem="3x3",
        stem_width=widths[0],
        bottleneck_ratio=2.25,
        bottleneck_from="in",
        first_block_ratio=1.0,
        group_width=8,
        attention="se",
        attention_position="mid",
        se_ratio=0.5,
        shortcut_pool=True,
        final_conv_channels=1280 * widths[-1] // 440,
        activation="silu",
        drop_rate=drop_rate,
        stochastic_depth_rate=0.1,
        classifier_init_std=0.0,
    )
    return base.replace(**changes)


# --- NFNets (NFNet paper Table 1 / App. A; DeepMind base.nfnet_params) ----------------------
# variant: (depths, train size, test size, dropout)
NFNET_VARIANTS = {
    "F0": ((1, 2, 6, 3), 192, 256, 0.2),
    "F1": ((2, 4, 12, 6), 224, 320, 0.3),
    "F2": ((3, 6, 18, 9), 256, 352, 0.4),
    "F3": ((4, 8, 24, 12), 320, 416, 0.4),
    "F4": ((5, 10, 30, 15), 384, 512, 0.5),
    "F5": ((6, 12, 36, 18), 416, 544, 0.5),
    "F6": ((7, 14, 42, 21), 448, 576, 0.5),
    "F7": ((8, 16, 48, 24), 480, 608, 0.5),
}


def nfnet_config(variant, **changes):
    """NFNet ``variant`` ("F0"…"F7"): widths 256/512/1536/1536, depths [1,2,6,3]×N, GELU."""
    depths, _, _, drop_rate = NFNET_VARIANTS[variant]
    widths = (256, 512, 1536, 1536)
    base = NFConfig(
        name=f"nfnet_{variant.lower()}",
        depths=depths,
        widths=widths,
        strides=(1, 2, 2, 2),
        stem="deep_quad",
        stem_width=widths[0] // 2,
        bottleneck_ratio=0.5,
        bottleneck_from="out",
        group_width=128,
        extra_conv=True,
        attention="se",
        se_ratio=0.5,
        shortcut_pool=True,
        final_conv_channels=2 * widths[-1],
        activation="gelu",
        drop_rate=drop_rate,
        stochastic_depth_rate=0.25,
        classifier_init_std=0.01,
    )
    return base.replace(**changes)

