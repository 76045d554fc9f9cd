"""``NFNetBackbone``: the feature extractor of any NF architecture as a keras-hub ``Backbone``
(NF-ResNets, NF-RegNets, NFNets: Brock et al. 2021, §4–5). Its config is the architecture as
data (every :class:`~keras_nfnets.NFConfig` field), so ``get_config``/``from_config`` rebuild it
exactly, with no pickled objects."""

import contextlib
import dataclasses

import keras

from keras_nfnets.kerashub import _require  # noqa: F401  (keras-hub installed, or a clear error)
from keras_nfnets.models.builder import build_nf_model
from keras_nfnets.models.config import NFConfig

from keras_hub.models import Backbone  # noqa: E402

_FIELDS = tuple(field.name for field in dataclasses.fields(NFConfig))


def architecture_to_dict(config):
    """An :class:`NFConfig` as JSON-ready data (tuples become lists)."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(config).items()}


def architecture_from_dict(data):
    """The :class:`NFConfig` written by :func:`architecture_to_dict`; unknown or missing fields
    are errors that name them."""
    if isinstance(data, NFConfig):
        return data
    if not isinstance(data, dict):
        raise TypeError(f"`architecture` must be an NFConfig or its dict (architecture_to_dict); got {type(data).__name__}.")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ValueError(f"`architecture` has fields NFConfig does not know: {unknown}. Was this preset written by "
                         "a newer keras_nfnets? Upgrade keras_nfnets to load it.")
    try:
        return NFConfig(**data)
    except TypeError as error:
        raise ValueError(f"`architecture` is not a complete NFConfig: {error}") from error


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


@keras.saving.register_keras_serializable(package="keras_nfnets")
class NFNetBackbone(Backbone):
    """The NF network up to its last activation: ``(batch, H/32, W/32, channels)`` out.

    Args:
        architecture: an :class:`~keras_nfnets.NFConfig` (``keras_nfnets.get_config("NFNetF0")``,
            ``keras_nfnets.timm_config("nf_regnet_b1")``, or your own) or its dict.
        image_shape: input shape without the batch; default ``(None, None, 3)`` (any size).
        data_format: ``"channels_last"`` (the only layout the NF layers take) or ``None``.
        dtype: a Keras dtype policy for the layers (``None``: the global policy).
    """

    def __init__(self, architecture, image_shape=(None, None, 3), data_format=None, dtype=None, **kwargs):
        config = architecture_from_dict(architecture)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"NFNetBackbone takes channels_last images only; received data_format={data_format!r}.")
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(f"`image_shape` must be (height, width, 3); received {image_shape}.")
        with _global_dtype_policy(dtype):
            features = build_nf_model(config, include_top=False, input_shape=image_shape)
        kwargs.setdefault("name", config.name)
        super().__init__(inputs=features.inputs[0], outputs=features.outputs[0], dtype=dtype, **kwargs)
        self.architecture = config
        self.image_shape = image_shape
        self.data_format = "channels_last"

    def get_config(self):
        config = super().get_config()
        config.update(architecture=architecture_to_dict(self.architecture), image_shape=list(self.image_shape))
        return config
