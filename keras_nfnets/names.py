"""The layer names of every model keras_nfnets builds: one contract between the builder (which
names layers), weight conversion (timm's module paths), Signal Propagation Plots (which find the
residual blocks), AGC (which leaves the classifier unclipped) and the Hub loader (with or without
a classifier). Names read as a path: ``stem_conv1``, ``stage2_block3_conv2``, ``final_conv``,
``predictions``.
"""

import re

CLASSIFIER = "predictions"  # the Dense head (keras.applications' name)
CLASSIFIER_KERNEL = f"{CLASSIFIER}/kernel"
STEM = "stem"
FINAL_CONV = "final_conv"
BLOCK_OUTPUT = "add"  # the Add joining a block's shortcut (input 0) and residual branch (input 1)
_BLOCK_LAYER = re.compile(r"^stage(\d+)_block(\d+)_(.+)$")


def stem_layer(part):
    """A stem layer: ``stem_conv``, ``stem_conv2``, ``stem_act1``, ``stem_pool``."""
    return f"{STEM}_{part}"


def block(stage, index):
    """The name of block ``index`` of stage ``stage`` (both from 1), prefix of its layers."""
    return f"stage{stage}_block{index}"


def block_layer(block_name, part):
    """A layer of a block: ``stage2_block3_conv2``."""
    return f"{block_name}_{part}"


def block_output(block_name):
    """The Add layer that ends a residual block: ``Add([shortcut, branch])``, in that order."""
    return block_layer(block_name, BLOCK_OUTPUT)


def parse_block_layer(layer_name):
    """``(stage, block, part)`` of a block layer's name (stage and block from 1), else ``None``."""
    match = _BLOCK_LAYER.match(layer_name)
    return None if match is None else (int(match.group(1)), int(match.group(2)), match.group(3))


def is_block_output(layer_name):
    parsed = parse_block_layer(layer_name)
    return parsed is not None and parsed[2] == BLOCK_OUTPUT


def has_classifier(model):
    """Whether ``model`` ends with the ``predictions`` classifier."""
    return any(layer.name == CLASSIFIER for layer in model.layers)
