"""``NFNetImageClassifier``: keras-hub's image classifier (pooling, dropout, dense ``predictions``)
on an :class:`NFNetBackbone`; the NF models' own head is the same stack (global average pool,
dropout, linear), so a checkpoint's classifier loads into it unchanged."""

import keras

from keras_nfnets.kerashub import _require  # noqa: F401
from keras_nfnets.kerashub.nfnet_backbone import NFNetBackbone
from keras_nfnets.kerashub.nfnet_image_classifier_preprocessor import NFNetImageClassifierPreprocessor

from keras_hub.models import ImageClassifier  # noqa: E402


@keras.saving.register_keras_serializable(package="keras_nfnets")
class NFNetImageClassifier(ImageClassifier):
    """keras-hub's ``ImageClassifier`` for NF backbones; the head computes in float32 by default
    (NFNet paper App. A.1: logits in float32 under mixed precision). ``activation=None``: logits."""

    backbone_cls = NFNetBackbone
    preprocessor_cls = NFNetImageClassifierPreprocessor

    def __init__(self, backbone, num_classes, preprocessor=None, pooling="avg", activation=None, dropout=0.0,
                 head_dtype="float32", **kwargs):
        super().__init__(backbone=backbone, num_classes=num_classes, preprocessor=preprocessor, pooling=pooling,
                         activation=activation, dropout=dropout, head_dtype=head_dtype, **kwargs)
