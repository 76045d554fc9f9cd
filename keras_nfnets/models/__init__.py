"""NF-ResNets, NF-RegNets and NFNets: configs (plain data), the builder, and the public variants.
Loaded on first use; the configs import no Keras."""

from keras_nfnets._lazy import lazy_exports

__all__ = lazy_exports(__name__, {
    ".builder": ("add_classifier_head", "block_plan", "build_nf_model", "validate_application_args"),
    ".config": ("NFConfig", "bn_resnetv2_config", "make_divisible", "nf_regnet_config", "nf_resnet_config",
                "nfnet_config"),
    ".model": ("NFModel", "pyramid_layers", "pyramid_model"),
    ".summary": ("count_flops", "count_params"),
    ".timm_configs": ("TIMM_CONFIGS", "timm_config"),
    ".variants": ("TIMM_DESIGNED", "VARIANTS", "architecture_named", "get_config"),
})
