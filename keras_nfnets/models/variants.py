"""The public builders' architectures by name: views of the registry's builder rows
(:mod:`keras_nfnets.registry`, one row per public name), kept for the names the package exported
before it (``VARIANTS``, ``get_config``, ``architecture_named``).
"""

from keras_nfnets.registry import FAMILIES, ModelRow, builders, resolve  # noqa: F401

Variant = ModelRow  # a builder's row (older name)
VARIANT_TABLE = builders()
VARIANTS = {name: row.config for name, row in VARIANT_TABLE.items()}  # builder → architecture
# timm's lighter NFNets, public under their own builders: builder → timm architecture.
TIMM_DESIGNED = {name: row.timm_name for name, row in VARIANT_TABLE.items() if row.timm_name}


def get_config(name):
    """The :class:`NFConfig` of any model name (:func:`keras_nfnets.registry.resolve`): a builder
    (``"NFRegNetB1"``), a timm name or tag (``"nfnet_f1"`` is timm's NFNet-F1), or a builder's
    config name (``"nf_resnet14"``)."""
    return resolve(name).config


architecture_named = get_config  # the same resolution (older name)
