"""What a Keras ``.weights.h5`` file holds, in words: the architecture it records
(:meth:`keras_nfnets.models.model.NFModel.save_weights`) and the builders that take it, so that a
file that does not fit a builder is named in one line together with the model it does fit."""

from keras_nfnets.models.model import weights_file_identity
from keras_nfnets.models.timm_configs import TIMM_CONFIGS
from keras_nfnets.models.variants import VARIANTS
from keras_nfnets.weights.presets import CHECKPOINTS, IMAGENET_PRESETS


def builders_of(architecture):
    """The builders that build the :class:`NFConfig` ``architecture``: those whose own config it
    is, and those whose ``weights="imagenet"`` checkpoint has it (timm's ``nf_regnet_b1`` for
    NFRegNetB1), compared field by field (a builder's and timm's ``nf_regnet_b0`` share a name only)."""
    own = [name for name, config in VARIANTS.items() if config.same_architecture(architecture)]
    pretrained = [name for name, tag in IMAGENET_PRESETS.items()
                  if TIMM_CONFIGS[CHECKPOINTS[tag].architecture].same_architecture(architecture)]
    return list(dict.fromkeys(own + pretrained))


def describe_weights(shapes, attributes):
    """What a weights file holds, in words: its recorded architecture and the builders that take
    it, else its parameter and array counts (a file Keras wrote for another model)."""
    import numpy as np

    count = sum(int(np.prod(s)) for s in shapes)
    recorded = weights_file_identity(attributes)
    if recorded is not None:
        architecture = recorded.name
        takers = [f"keras_nfnets.{b}(weights=FILE)" for b in builders_of(recorded)]
        if architecture in TIMM_CONFIGS and TIMM_CONFIGS[architecture].same_architecture(recorded):
            takers.append(f"keras_nfnets.from_timm({architecture!r}, pretrained=False).load_weights(FILE)")
        takers = takers or ["keras_nfnets.build_nf_model(keras_nfnets.NFConfig(...)) with the architecture it records"]
        return f"{architecture} weights ({count:,} parameters; they load with {' or '.join(takers)})"
    return f"{count:,} parameters in {len(shapes)} arrays"
