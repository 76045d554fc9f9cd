"""keras_nfnets: Normalizer-Free networks (NF-ResNets, NF-RegNets, NFNets) for Keras 3.

Brock, De & Smith, *Characterizing signal propagation to close the performance gap in
unnormalized ResNets* (ICLR 2021) and Brock et al., *High-Performance Large-Scale Image
Recognition Without Normalization* (2021).

``import keras_nfnets`` loads neither Keras nor TensorFlow: each public name imports its module
on first use (PEP 562). Its two effects: on an x86-64 CPU, before TensorFlow loads and unless
``TF_ENABLE_ONEDNN_OPTS`` is set, it sets that variable to 1 (TensorFlow's oneDNN kernels on every
x86 CPU, not only those with AVX-512 VNNI or AMX: :mod:`keras_nfnets.backend.onednn`); and
Keras and keras-hub, once imported, know the package's classes, so that their own functions
(``keras.saving.load_model``, ``clone_model``, ``from_preset``) read its files
(:mod:`keras_nfnets._registration`).
"""

__version__ = "0.1.0"

from keras_nfnets.backend import onednn as _onednn

_onednn.prefer_onednn()  # before anything can load TensorFlow

from keras_nfnets._lazy import lazy_exports
from keras_nfnets.models.variants import VARIANTS

_EXPORTS = {
    # builders (keras.applications API) and their registry
    ".applications": (*VARIANTS, "BUILDERS", "BNResNetV2"),
    # inputs and outputs
    ".imagenet": ("preprocess_input", "decode_predictions", "imagenet_classes"),
    ".preprocessing": ("preprocess_image", "eval_transform"),
    ".data.transforms": ("EvalTransform",),
    # pretrained weights and saved models
    ".weights.hub": ("from_timm",),
    ".weights.convert": ("load_timm_weights", "CheckpointError"),
    ".saving": ("load_model",),
    # configs and the builder
    ".models.config": ("NFConfig", "nf_resnet_config", "nf_regnet_config", "nfnet_config", "bn_resnetv2_config"),
    ".registry": ("resolve", "image_sizes", "ModelRow"),
    ".models.variants": ("VARIANTS", "get_config"),
    ".models.timm_configs": ("TIMM_CONFIGS", "timm_config"),
    ".models.builder": ("build_nf_model", "add_classifier_head", "block_plan"),
    ".models.model": ("NFModel", "pyramid_model", "pyramid_layers"),
    ".models.summary": ("count_params", "count_flops"),
    # layers
    ".layers": ("ScaledWSConv2D", "GroupConv2D", "GammaActivation", "GAMMA", "estimate_gamma", "SqueezeExcite", "ECA",
                "StochasticDepth", "SkipInitGain"),
    # training
    ".training.run": ("train",),
    ".training.evaluation": ("evaluate",),
    ".training.recipes": ("recipe",),
    # signal propagation
    ".spp": ("signal_propagation", "plot_signal_propagation", "SignalPropagation"),
    # deployment
    ".export": ("fold_weight_standardization", "export_saved_model", "export_tflite", "export_onnx", "verify_export"),
    # keras-hub (the [kerashub] extra): its four roles and presets
    ".kerashub": ("NFNetBackbone", "NFNetImageClassifier", "NFNetImageClassifierPreprocessor", "NFNetImageConverter",
                  "save_preset", "to_keras_hub", "retinanet_detector", "deeplab_segmenter"),
    ".model_sources": ("resolve_model",),
}
_SUBPACKAGES = ("backend", "data", "export", "kerashub", "layers", "models", "names", "registry", "spp", "training",
                "weights")
__all__ = lazy_exports(__name__, _EXPORTS) + list(_SUBPACKAGES)

from keras_nfnets import _registration  # noqa: E402

_registration.install()  # Keras and keras-hub find our classes (load_model, clone_model, from_preset) once imported
