"""Every public model name, one row each: the facts the package knows about a name, written once.

A row is a builder (``"NFNetF0"``: DeepMind's architecture and rules) or a timm NF architecture
(``"nfnet_f3"``, ``"dm_nfnet_f0"``: timm's layout and timm's ``pretrained_cfg``), with or without
weights. A builder designed in timm (``"NFNetL0"``) is one row with two names (``timm_name``).
:func:`resolve` accepts every spelling a user types (builder, timm name, timm name with a tag,
config name) and answers with the row. The builders, ``image_sizes``, evaluation transforms,
``from_timm``'s default size, ``weights="imagenet"``, the paper recipes, presets and ``nfnets
models`` read these rows; ``tests/test_registry.py`` compares every timm row with timm's own
``pretrained_cfg``.

Architectures are :class:`~keras_nfnets.models.config.NFConfig` rows
(:mod:`keras_nfnets.models.config`, :mod:`keras_nfnets.models.timm_configs`); checkpoints are
:data:`CHECKPOINTS` rows, whose own sizes and crop a timm row with weights takes (they are timm's
``pretrained_cfg`` of that tag). This module imports no TensorFlow.
"""

import dataclasses
import difflib
from typing import Optional

from keras_nfnets.models.checkpoint import Checkpoint
from keras_nfnets.models.config import NF_REGNET_VARIANTS, NF_RESNET_DEPTHS, NFNET_VARIANTS, NFConfig
from keras_nfnets.models.config import nf_regnet_config, nf_resnet_config, nfnet_config
from keras_nfnets.models.timm_configs import TIMM_CONFIGS

# Every public ImageNet-1k NF checkpoint is timm's (reference §8.2), on the Hugging Face Hub as
# ``timm/<tag>/model.safetensors``; ``dm_nfnet_*`` are DeepMind's own NFNet weights, ported. Top-1
# and sizes are timm's results and pretrained_cfg; DeepMind's NFNets are evaluated by DeepMind's rule.
CHECKPOINTS = {c.tag: c for c in (
    Checkpoint("nf_regnet_b1.ra2_in1k", 79.368, 256, 288, crop_pct=0.9),
    Checkpoint("nf_resnet50.ra2_in1k", 80.658, 256, 288, crop_pct=0.94),
    Checkpoint("dm_nfnet_f0.dm_in1k", 83.468, 192, 256, crop="plus32"),
    Checkpoint("dm_nfnet_f1.dm_in1k", 84.700, 224, 320, crop="plus32"),
    Checkpoint("dm_nfnet_f2.dm_in1k", 85.184, 256, 352, crop="plus32"),
    Checkpoint("dm_nfnet_f3.dm_in1k", 85.676, 320, 416, crop="plus32"),
    Checkpoint("dm_nfnet_f4.dm_in1k", 85.838, 384, 512, crop="plus32"),
    Checkpoint("dm_nfnet_f5.dm_in1k", 86.102, 416, 544, crop="plus32"),
    Checkpoint("dm_nfnet_f6.dm_in1k", 86.364, 448, 576, crop="plus32"),
    Checkpoint("nfnet_l0.ra2_in1k", 82.766, 224, 288, crop_pct=1.0),
    Checkpoint("eca_nfnet_l0.ra2_in1k", 82.590, 224, 288, crop_pct=1.0),
    Checkpoint("eca_nfnet_l1.ra2_in1k", 84.062, 256, 320, crop_pct=1.0),
    Checkpoint("eca_nfnet_l2.ra3_in1k", 84.710, 320, 384, crop_pct=1.0),
    Checkpoint("test_nfnet.r160_in1k", 47.634, 160, 160, crop_pct=0.95, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
)}

FAMILIES = ("nf_resnet", "nf_regnet", "nfnet")  # whose paper's training recipe a row follows
EVAL_CROPS = ("crop_resize", "plus32", "center")


@dataclasses.dataclass(frozen=True)
class ModelRow:
    """One public name.

    Attributes:
        name: the builder (``"NFRegNetB1"``) or timm architecture (``"nf_regnet_b1"``).
        config: the architecture.
        family: ``"nf_resnet"``, ``"nf_regnet"`` or ``"nfnet"``: the paper whose recipe trains it.
        train_size, test_size: image sizes for training and evaluation (the default input size).
        eval_crop: the evaluation crop rule at ``test_size`` (``keras_nfnets.data.EvalTransform``):
            DeepMind crops NF-ResNets and NF-RegNets with ``"crop_resize"`` and squashes NFNets to
            size + 32 (``"plus32"``); timm centre-crops (``"center"``) by ``crop_pct``.
        crop_pct: ``"center"``'s crop fraction at ``test_size`` (timm's ``test_crop_pct`` where it
            has one, else its ``crop_pct``); ``None`` for DeepMind's rules.
        interpolation: the evaluation resize.
        checkpoint: the tag ``weights="imagenet"`` loads (a builder), or the tag whose weights a
            timm name has; ``None``: no public weights.
        builder: whether ``keras_nfnets.<name>()`` builds it.
        timm_name: the same architecture's timm name, for a builder designed in timm.
        randaugment_magnitude: the paper's RandAugment magnitude where it differs by variant (the
            NFNet-F recipes: 5, 10 or 15); ``None``: the family's.
    """

    name: str
    config: NFConfig
    family: str
    train_size: int
    test_size: int
    eval_crop: str
    crop_pct: Optional[float] = None
    interpolation: str = "bicubic"
    checkpoint: Optional[str] = None
    builder: bool = False
    timm_name: Optional[str] = None
    randaugment_magnitude: Optional[int] = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"Row {self.name!r}: family must be one of {FAMILIES}, got {self.family!r}.")
        if self.eval_crop not in EVAL_CROPS:
            raise ValueError(f"Row {self.name!r}: eval_crop must be one of {EVAL_CROPS}, got {self.eval_crop!r}.")
        if (self.eval_crop == "center") != (self.crop_pct is not None):
            raise ValueError(f"Row {self.name!r}: crop_pct goes with eval_crop='center' (timm's rule) and only there.")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def eval_transform(self, size=None):
        """The :class:`~keras_nfnets.data.EvalTransform` of this row's architecture at ``size``
        (default ``test_size``): a timm row with weights, its checkpoint's (mean/std included); else
        the row's crop rule (timm's rule resizes as PIL does, DeepMind's as TensorFlow does)."""
        from keras_nfnets.data.transforms import EvalTransform

        if self.checkpoint is not None and not self.builder:
            return CHECKPOINTS[self.checkpoint].eval_transform(size)
        return EvalTransform(size or self.test_size, crop=self.eval_crop, crop_pct=self.crop_pct or 0.875,
                             interpolation=self.interpolation, pil_resize=self.eval_crop == "center")

    @property
    def names(self):
        """Every name that resolves to this row (tags aside)."""
        return tuple(n for n in (self.name, self.timm_name) if n)


def _sized_by_checkpoint(name, config, family, tag, **fields):
    """A row whose sizes and evaluation are its checkpoint's (timm's ``pretrained_cfg`` of ``tag``)."""
    checkpoint = CHECKPOINTS[tag]
    crop_pct = checkpoint.crop_pct if checkpoint.crop == "center" else None
    return ModelRow(name, config, family, checkpoint.train_size, checkpoint.test_size, checkpoint.crop, crop_pct,
                    checkpoint.interpolation, tag, **fields)


def _timm_family(name):
    return "nf_regnet" if "regnet" in name else "nf_resnet" if "resnet" in name else "nfnet"


# The builders: DeepMind's variants (sizes and drop rates from the papers, models.config) ...
_DEEPMIND = [
    *(ModelRow(f"NFResNet{depth}", nf_resnet_config(depths, name=f"nf_resnet{depth}"), "nf_resnet", 224, 224,
               "crop_resize", builder=True, checkpoint="nf_resnet50.ra2_in1k" if depth == 50 else None)
      for depth, depths in NF_RESNET_DEPTHS.items()),
    *(ModelRow(f"NFRegNet{v}", nf_regnet_config(v), "nf_regnet", *NF_REGNET_VARIANTS[v][2:4], "crop_resize",
               builder=True, checkpoint="nf_regnet_b1.ra2_in1k" if v == "B1" else None)
      for v in NF_REGNET_VARIANTS),
    *(ModelRow(f"NFNet{v}", nfnet_config(v), "nfnet", *NFNET_VARIANTS[v][1:3], "plus32", builder=True,
               checkpoint=f"dm_nfnet_{v.lower()}.dm_in1k" if i < 7 else None,
               randaugment_magnitude=(5, 10, 10, 15, 15, 15, 15, 15)[i])  # DeepMind's cutmix_mixup_randaugment_4xx
      for i, v in enumerate(NFNET_VARIANTS)),
]
# ... and the lighter NFNets designed in timm, each one row under both names (timm's sizes).
_TIMM_DESIGNED = [
    _sized_by_checkpoint("NFNetL0", TIMM_CONFIGS["nfnet_l0"], "nfnet", "nfnet_l0.ra2_in1k", builder=True,
                         timm_name="nfnet_l0"),
    *(_sized_by_checkpoint(f"ECANFNetL{i}", TIMM_CONFIGS[f"eca_nfnet_l{i}"], "nfnet", tag, builder=True,
                           timm_name=f"eca_nfnet_l{i}")
      for i, tag in enumerate(("eca_nfnet_l0.ra2_in1k", "eca_nfnet_l1.ra2_in1k", "eca_nfnet_l2.ra3_in1k"))),
    ModelRow("ECANFNetL3", TIMM_CONFIGS["eca_nfnet_l3"], "nfnet", 352, 448, "center", 1.0, builder=True,
             timm_name="eca_nfnet_l3"),  # no public weights: timm's default_cfgs
]

# timm's architectures with public weights: the checkpoint's sizes and evaluation.
_TIMM_WITH_WEIGHTS = {"nf_regnet_b1": "nf_regnet_b1.ra2_in1k", "nf_resnet50": "nf_resnet50.ra2_in1k",
                      "test_nfnet": "test_nfnet.r160_in1k",
                      **{f"dm_nfnet_f{i}": f"dm_nfnet_f{i}.dm_in1k" for i in range(7)}}
# timm's architectures without weights: (train, test) sizes from timm's default_cfgs, crop 0.9, bicubic.
_TIMM_SIZES = {
    **{f"nfnet_f{i}": sizes for i, sizes in enumerate(((192, 256), (224, 320), (256, 352), (320, 416), (384, 512),
                                                        (416, 544), (448, 576), (480, 608)))},
    "nf_regnet_b0": (192, 256), "nf_regnet_b2": (240, 272), "nf_regnet_b3": (288, 320), "nf_regnet_b4": (320, 384),
    "nf_regnet_b5": (384, 456),
    **{f"{prefix}{depth}": (224, 224) for prefix in ("nf_resnet", "nf_seresnet", "nf_ecaresnet")
       for depth in (26, 50, 101) if f"{prefix}{depth}" != "nf_resnet50"},
}
_TIMM_CROP_PCT = 0.9

_TIMM = [
    *(_sized_by_checkpoint(name, TIMM_CONFIGS[name], _timm_family(name), tag) for name, tag in _TIMM_WITH_WEIGHTS.items()),
    *(ModelRow(name, TIMM_CONFIGS[name], _timm_family(name), *sizes, "center", _TIMM_CROP_PCT)
      for name, sizes in _TIMM_SIZES.items()),
]

ROWS = {row.name: row for row in (*_DEEPMIND, *_TIMM_DESIGNED, *_TIMM)}


def _check(rows):
    """Every name once; every timm architecture has a row (a new timm config without one is an error)."""
    seen = {}
    for row in rows.values():
        for name in row.names:
            if name in seen:
                raise ValueError(f"{name!r} names two rows ({seen[name]!r} and {row.name!r}).")
            seen[name] = row.name
    missing = sorted(set(TIMM_CONFIGS) - set(seen))
    if missing:
        raise ValueError(f"timm architectures without a registry row: {missing}.")


_check(ROWS)


def rows():
    """The rows, builders first (the order of ``nfnets models`` and the README table)."""
    return list(ROWS.values())


def builders():
    """Builder name → row."""
    return {row.name: row for row in ROWS.values() if row.builder}


def _by_name():
    table = {}
    for row in ROWS.values():
        for name in row.names:
            table[name] = row
    return table


def resolve(name):
    """The row of ``name``: a builder (``"NFNetF0"``), a timm name (``"nfnet_f3"``), a timm name with
    a tag (``"dm_nfnet_f0.dm_in1k"``), or a builder's config name (``"nf_resnet14"``; where a timm
    name is spelled the same, e.g. ``"nfnet_f1"``, the timm name wins). An unknown name is an error
    that lists the close names."""
    if not isinstance(name, str):
        raise TypeError(f"A model name is a string; received {type(name).__name__}.")
    table = _by_name()
    for key in (name, name.split(".")[0]):
        if key in table:
            return table[key]
    spelled = name.lower().replace("-", "_")
    for row in ROWS.values():
        if row.builder and spelled in (row.name.lower(), row.config.name):
            return row
    close = difflib.get_close_matches(name, list(table), n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown NF model {name!r}.{hint} Builders: {', '.join(builders())}; timm NF names: "
                     f"{', '.join(sorted(TIMM_CONFIGS))} (with or without a tag, e.g. 'dm_nfnet_f0.dm_in1k').")


def checkpoint_for(name) -> Optional[Checkpoint]:
    """The checkpoint of a tag (``"nf_regnet_b1.ra2_in1k"``), of a builder (what
    ``weights="imagenet"`` loads) or of a timm name with public weights; ``None`` for a known name
    without weights or one that is not a model name."""
    if name in CHECKPOINTS:
        return CHECKPOINTS[name]
    try:
        tag = resolve(name).checkpoint
    except ValueError:
        return None
    return CHECKPOINTS[tag] if tag else None


def image_sizes(name):
    """``(train size, test size)`` of any name :func:`resolve` accepts; a timm tag with weights
    answers its checkpoint's sizes."""
    if name in CHECKPOINTS:
        return CHECKPOINTS[name].train_size, CHECKPOINTS[name].test_size
    row = resolve(name)
    return row.train_size, row.test_size
