"""NFNets in keras-hub: the four roles keras-hub's ResNet family has (``Backbone``,
``ImageClassifier``, ``ImageClassifierPreprocessor``, ``ImageConverter``) for every NF
architecture, registered with Keras so that keras-hub's own ``from_preset`` finds them, and
:func:`save_preset` to write a complete preset; keras-hub's RetinaNet and DeepLabV3 on an NF encoder
(:mod:`~keras_nfnets.kerashub.dense_tasks`).

Importing this subpackage imports keras-hub (the ``[kerashub]`` extra). ``import keras_nfnets``
stays light: it registers these classes as soon as keras-hub itself is imported
(:mod:`keras_nfnets._registration`).
"""

from keras_nfnets.kerashub.nfnet_backbone import NFNetBackbone, architecture_from_dict, architecture_to_dict
from keras_nfnets.kerashub.nfnet_image_converter import NFNetImageConverter
from keras_nfnets.kerashub.nfnet_image_classifier_preprocessor import NFNetImageClassifierPreprocessor
from keras_nfnets.kerashub.nfnet_image_classifier import NFNetImageClassifier
from keras_nfnets.kerashub.presets import model_card, save_preset, to_keras_hub
from keras_nfnets.kerashub.dense_tasks import deeplab_segmenter, retinanet_detector

__all__ = ["NFNetBackbone", "NFNetImageClassifier", "NFNetImageClassifierPreprocessor", "NFNetImageConverter",
           "architecture_from_dict", "architecture_to_dict", "deeplab_segmenter", "model_card", "retinanet_detector",
           "save_preset", "to_keras_hub"]
