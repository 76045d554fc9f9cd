"""``NFNetImageClassifierPreprocessor``: keras-hub's image classifier preprocessor with the
NF checkpoint's converter."""

import keras

from keras_nfnets.kerashub import _require  # noqa: F401
from keras_nfnets.kerashub.nfnet_backbone import NFNetBackbone
from keras_nfnets.kerashub.nfnet_image_converter import NFNetImageConverter

from keras_hub.models import ImageClassifierPreprocessor  # noqa: E402


@keras.saving.register_keras_serializable(package="keras_nfnets")
class NFNetImageClassifierPreprocessor(ImageClassifierPreprocessor):
    backbone_cls = NFNetBackbone
    image_converter_cls = NFNetImageConverter
