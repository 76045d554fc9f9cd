"""``NFNetBackbone``: the feature extractor of any NF architecture as a keras-hub
``FeaturePyramidBackbone`` (NF-ResNets, NF-RegNets, NFNets: Brock et al. 2021, §4–5). Its config
is the architecture as data (every :class:`~keras_nfnets.NFConfig` field), so
``get_config``/``from_config`` rebuild it exactly, with no pickled objects; its
``pyramid_outputs`` are the model's (``"P1"`` … ``"P5"`` at timm's ``feature_info`` taps), so
keras-hub's ``RetinaNetObjectDetector`` and ``DeepLabV3ImageSegmenter`` take it as encoder.

It is the same stack of layers as the functional model the builders return: built from an
architecture it is the builder's ``include_top=False`` model; :meth:`NFNetBackbone.from_model`
wraps an existing model's layers (shared, not copied)."""

import contextlib

import keras

from keras_nfnets.kerashub import _require  # noqa: F401  (keras-hub installed, or a clear error)
from keras_nfnets.models.builder import build_nf_model
from keras_nfnets.models.checkpoint import Checkpoint
from keras_nfnets.models.config import NFConfig
from keras_nfnets.models.variants import architecture_named
from keras_nfnets.models.model import NFModel, pyramid_outputs

from keras_hub.models import FeaturePyramidBackbone  # noqa: E402


def architecture_to_dict(config):
    """An :class:`NFConfig` as JSON-ready data (:meth:`NFConfig.to_dict`)."""
    return config.to_dict()


def architecture_from_dict(data):
    """The :class:`NFConfig` written by :func:`architecture_to_dict` (:meth:`NFConfig.from_dict`)."""
    return NFConfig.from_dict(data)


@contextlib.contextmanager
def _global_dtype_policy(dtype):
    """Build the layers under ``dtype`` (keras-hub's ``from_preset(dtype=...)``): our builder
    creates its layers under Keras' global policy."""
    if dtype is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(keras.dtype_policies.get(dtype))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _check(image_shape, data_format):
    if data_format not in (None, "channels_last") or keras.config.image_data_format() != "channels_last":
        raise ValueError("NFNetBackbone takes channels_last images only (the NF layers' layout); received "
                         f"data_format={data_format!r} with Keras' image_data_format "
                         f"{keras.config.image_data_format()!r}: use channels_last.")
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or image_shape[-1] != 3:
        raise ValueError(f"`image_shape` must be (height, width, 3); received {image_shape}.")
    return image_shape


@keras.saving.register_keras_serializable(package="keras_nfnets")
class NFNetBackbone(FeaturePyramidBackbone):
    """The NF network up to its last activation: ``(batch, H/32, W/32, channels)`` out, and
    ``pyramid_outputs`` ``{"P1": …, "P5": …}`` (level n at stride 2ⁿ).

    Args:
        architecture: an :class:`~keras_nfnets.NFConfig` (``keras_nfnets.get_config("NFNetF0")``,
            ``keras_nfnets.timm_config("nf_regnet_b1")``, or your own), its dict, or a builder or
            timm name (``"NFNetF0"``, ``"nf_regnet_b1"``).
        image_shape: input shape without the batch; default ``(None, None, 3)`` (any size).
        data_format: ``"channels_last"`` (the only layout the NF layers take) or ``None``.
        dtype: a Keras dtype policy for the layers (``None``: the global policy).
        checkpoint: the :class:`~keras_nfnets.models.checkpoint.Checkpoint` row of the weights it
            holds (or its dict), as keras_nfnets models record it; ``None``: its own.
    """

    def __init__(self, architecture, image_shape=(None, None, 3), data_format=None, dtype=None, checkpoint=None,
                 **kwargs):
        config = architecture_named(architecture) if isinstance(architecture, str) else NFConfig.from_dict(architecture)
        image_shape = _check(image_shape, data_format)
        features = kwargs.pop("_features", None)  # from_model: an existing model's layers
        if features is None:
            with _global_dtype_policy(dtype):
                features = build_nf_model(config, include_top=False, input_shape=image_shape)
        kwargs.setdefault("name", config.name)
        super().__init__(inputs=features.input, outputs=features.get_layer("final_act").output, dtype=dtype, **kwargs)
        self.architecture = config
        self.checkpoint = checkpoint if checkpoint is None or isinstance(checkpoint, Checkpoint) else \
            Checkpoint.from_dict(checkpoint)
        self.image_shape = image_shape
        self.data_format = "channels_last"

    @classmethod
    def from_model(cls, model):
        """The backbone of a keras_nfnets model (an :class:`~keras_nfnets.models.model.NFModel`:
        a builder's, ``from_timm``'s, a trained run's), made of that model's own layers and
        weights: nothing is copied, and training one trains the other. It runs at the model's
        input size; its config (and a preset of it) says ``image_shape=(None, None, 3)``, as
        keras-hub's backbones do, so a backbone rebuilt from it takes any size (keras-hub changes
        the resolution through the converter's ``image_size``)."""
        if not isinstance(model, NFModel):
            raise ValueError(f"{model.name!r} is a {type(model).__name__}, not a keras_nfnets model, so it does not "
                             "record its architecture: build it with keras_nfnets (a builder, from_timm, load_model).")
        if isinstance(model.input, (list, tuple, dict)) or model.input.shape[-1] != 3:
            raise ValueError(f"{model.name!r} does not take one RGB image input; a backbone does.")
        return cls(model.architecture, checkpoint=model.checkpoint, _features=model, name=model.name)

    @property
    def pyramid_outputs(self):
        return pyramid_outputs(self, self.architecture)

    @pyramid_outputs.setter
    def pyramid_outputs(self, value):
        raise AttributeError("NFNetBackbone's pyramid_outputs follow from its architecture (models.model.pyramid_layers).")

    def get_config(self):
        config = super().get_config()
        config.update(architecture=self.architecture.to_dict(), image_shape=list(self.image_shape),
                      checkpoint=None if self.checkpoint is None else self.checkpoint.to_dict())
        return config


__all__ = ["NFNetBackbone", "architecture_from_dict", "architecture_to_dict"]
