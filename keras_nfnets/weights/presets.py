"""Pretrained checkpoints: what ``weights="imagenet"`` means for each builder. The rows are the
registry's (:mod:`keras_nfnets.registry`: :data:`~keras_nfnets.registry.CHECKPOINTS`, and each
builder's ``checkpoint``); this module names them for the weights code.
"""

from keras_nfnets.models.checkpoint import Checkpoint  # noqa: F401  (the row type, for keras_nfnets.weights)
from keras_nfnets.registry import CHECKPOINTS, builders, checkpoint_for, image_sizes  # noqa: F401

# Public builder → the checkpoint behind weights="imagenet".
IMAGENET_PRESETS = {name: row.checkpoint for name, row in builders().items() if row.checkpoint}


def variant(builder_name):
    """The registry row of builder ``builder_name``."""
    table = builders()
    if builder_name not in table:
        raise ValueError(f"Unknown builder {builder_name!r}; builders: {', '.join(table)}.")
    return table[builder_name]
