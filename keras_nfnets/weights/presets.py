"""Pretrained checkpoints: what ``weights="imagenet"`` means for each builder.

All public ImageNet-1k NF checkpoints are timm's (reference §8.2), on the Hugging Face Hub as
``timm/<tag>/model.safetensors``. ``dm_nfnet_*`` are DeepMind's own NFNet weights, ported.
"""

from typing import Optional

from keras_nfnets.models.checkpoint import Checkpoint


CHECKPOINTS = {
    "nf_regnet_b1.ra2_in1k": Checkpoint("nf_regnet_b1.ra2_in1k", 79.368, 256, 288, crop_pct=0.9),
    "nf_resnet50.ra2_in1k": Checkpoint("nf_resnet50.ra2_in1k", 80.658, 256, 288, crop_pct=0.94),
    "dm_nfnet_f0.dm_in1k": Checkpoint("dm_nfnet_f0.dm_in1k", 83.468, 192, 256, crop="plus32"),
    "dm_nfnet_f1.dm_in1k": Checkpoint("dm_nfnet_f1.dm_in1k", 84.700, 224, 320, crop="plus32"),
    "dm_nfnet_f2.dm_in1k": Checkpoint("dm_nfnet_f2.dm_in1k", 85.184, 256, 352, crop="plus32"),
    "dm_nfnet_f3.dm_in1k": Checkpoint("dm_nfnet_f3.dm_in1k", 85.676, 320, 416, crop="plus32"),
    "dm_nfnet_f4.dm_in1k": Checkpoint("dm_nfnet_f4.dm_in1k", 85.838, 384, 512, crop="plus32"),
    "dm_nfnet_f5.dm_in1k": Checkpoint("dm_nfnet_f5.dm_in1k", 86.102, 416, 544, crop="plus32"),
    "dm_nfnet_f6.dm_in1k": Checkpoint("dm_nfnet_f6.dm_in1k", 86.364, 448, 576, crop="plus32"),
    "nfnet_l0.ra2_in1k": Checkpoint("nfnet_l0.ra2_in1k", 82.766, 224, 288, crop_pct=1.0),
    "eca_nfnet_l0.ra2_in1k": Checkpoint("eca_nfnet_l0.ra2_in1k", 82.590, 224, 288, crop_pct=1.0),
    "eca_nfnet_l1.ra2_in1k": Checkpoint("eca_nfnet_l1.ra2_in1k", 84.062, 256, 320, crop_pct=1.0),
    "eca_nfnet_l2.ra3_in1k": Checkpoint("eca_nfnet_l2.ra3_in1k", 84.710, 320, 384, crop_pct=1.0),
    "test_nfnet.r160_in1k": Checkpoint(
        "test_nfnet.r160_in1k", 47.634, 160, 160, crop_pct=0.95, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
    ),
}

# Public builder → the checkpoint behind weights="imagenet".
IMAGENET_PRESETS = {
    "NFRegNetB1": "nf_regnet_b1.ra2_in1k",
    "NFResNet50": "nf_resnet50.ra2_in1k",
    **{f"NFNetF{i}": f"dm_nfnet_f{i}.dm_in1k" for i in range(7)},
    "NFNetL0": "nfnet_l0.ra2_in1k",
    "ECANFNetL0": "eca_nfnet_l0.ra2_in1k",
    "ECANFNetL1": "eca_nfnet_l1.ra2_in1k",
    "ECANFNetL2": "eca_nfnet_l2.ra3_in1k",
}


def variant(builder_name):
    """The :class:`~keras_nfnets.models.variants.Variant` row of ``builder_name`` with its image sizes
    resolved: a row without sizes (timm's lighter NFNets) takes its ImageNet checkpoint's."""
    from keras_nfnets.models.variants import VARIANT_TABLE

    row = VARIANT_TABLE[builder_name]
    if row.train_size is None:
        checkpoint = CHECKPOINTS[IMAGENET_PRESETS[builder_name]]
        row = row.replace(train_size=checkpoint.train_size, test_size=checkpoint.test_size)
    return row


def checkpoint_for(name) -> Optional[Checkpoint]:
    """The checkpoint of a builder name (``"NFRegNetB1"``) or timm name/tag (``"nf_regnet_b1"``)."""
    if name in IMAGENET_PRESETS:
        return CHECKPOINTS[IMAGENET_PRESETS[name]]
    if name in CHECKPOINTS:
        return CHECKPOINTS[name]
    for checkpoint in CHECKPOINTS.values():
        if checkpoint.architecture == name:
            return checkpoint
    return None


def image_sizes(name):
    """``(train size, test size)`` of a builder (its variant's row) or a timm name or tag (its
    checkpoint's, else the sizes of the variant it was derived from): the one place a model's
    default image sizes are read (the builders, ``from_timm``, ``nfnets models``)."""
    from keras_nfnets.models.timm_configs import TIMM_SIZES
    from keras_nfnets.models.variants import VARIANT_TABLE

    if name in VARIANT_TABLE:
        row = variant(name)
        return row.train_size, row.test_size
    checkpoint = checkpoint_for(name)
    if checkpoint is not None:
        return checkpoint.train_size, checkpoint.test_size
    return tuple(TIMM_SIZES[name.split(".")[0]])
