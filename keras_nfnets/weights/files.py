"""Keras ``.weights.h5`` files that say which architecture they hold, so that a file that does
not fit a builder is named in one line together with the model it does fit."""

import os

ARCHITECTURE_ATTRIBUTE = "keras_nfnets_architecture"


def save_weights(model, path, architecture):
    """``model.save_weights(path)``, recording ``architecture`` (a config name such as
    ``"nf_regnet_b1"``) as an attribute of the file (Keras ignores it when loading)."""
    import h5py

    model.save_weights(os.fspath(path))
    with h5py.File(os.fspath(path), "a") as f:
        f.attrs[ARCHITECTURE_ATTRIBUTE] = architecture


def builders_of(architecture):
    """The builders that build ``architecture``: those whose own config it is, and those whose
    ``weights="imagenet"`` checkpoint has it (e.g. timm's ``nf_regnet_b1`` for NFRegNetB1)."""
    from keras_nfnets.models.variants import VARIANTS
    from keras_nfnets.weights.presets import CHECKPOINTS, IMAGENET_PRESETS

    own = [name for name, config in VARIANTS.items() if config.name == architecture]
    pretrained = [name for name, tag in IMAGENET_PRESETS.items() if CHECKPOINTS[tag].architecture == architecture]
    return list(dict.fromkeys(own + pretrained))


def describe_weights(shapes, attributes):
    """What a weights file holds, in words: its recorded architecture and the builders that take
    it, else a builder whose parameter count (with a 1000-class head) it matches, else its count."""
    import numpy as np

    from keras_nfnets.models.counts import COUNTS

    count = sum(int(np.prod(s)) for s in shapes)
    architecture = attributes.get(ARCHITECTURE_ATTRIBUTE)
    if isinstance(architecture, bytes):
        architecture = architecture.decode()
    if architecture:
        builders = builders_of(architecture)
        takers = [f"keras_nfnets.{b}(weights=FILE)" for b in builders] + [f"keras_nfnets.from_timm({architecture!r}, "
                                                                          "pretrained=False).load_weights(FILE)"]
        return f"{architecture} weights ({count:,} parameters; they load with {' or '.join(takers)})"
    matches = [name for name, (params, _) in COUNTS.items() if params == count]
    if matches:
        return f"{count:,} parameters, the count of {matches[0]} with a 1000-class head"
    return f"{count:,} parameters in {len(shapes)} arrays"
