"""ImageNet input normalisation and class names (shipped with the package, works offline)."""

import functools
import json
from importlib import resources

import numpy as np

from keras_nfnets.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def preprocess_input(x, data_format=None):
    """Normalise RGB images on the 0–255 scale with the ImageNet mean and std (as DeepMind).

    ``(x - 255·mean) / (255·std)`` per channel, channels last. Accepts NumPy arrays and
    tensors; returns float32 of the same kind.
    """
    if data_format not in (None, "channels_last"):
        raise ValueError(f"keras_nfnets supports only channels_last images. Received: data_format={data_format!r}")
    shape = getattr(x, "shape", None)
    if shape is None:
        x = np.asarray(x)
        shape = x.shape
    if len(shape) < 3 or shape[-1] != 3:
        raise ValueError(
            f"`preprocess_input` expects RGB images with 3 channels last, e.g. (batch, height, width, 3). "
            f"Received shape: {tuple(shape)}"
        )
    mean = np.asarray(IMAGENET_MEAN, "float32") * 255.0
    std = np.asarray(IMAGENET_STD, "float32") * 255.0
    if isinstance(x, np.ndarray):
        return (x.astype("float32") - mean) / std
    from keras import ops

    return (ops.cast(x, "float32") - mean) / std


@functools.lru_cache(maxsize=1)
def imagenet_classes():
    """The 1000 ImageNet-1k classes in index order, as ``(wordnet_id, name)`` pairs."""
    text = resources.files("keras_nfnets").joinpath("data/imagenet_classes.json").read_text()
    return tuple(tuple(row) for row in json.loads(text))


def decode_predictions(preds, top=5):
    """Decode ImageNet predictions into ``[(wordnet_id, class_name, score), ...]`` per sample."""
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape (samples, 1000)). "
            f"Received array with shape: {preds.shape}"
        )
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"`top` must be a positive integer. Received: top={top!r}")
    classes = imagenet_classes()
    results = []
    for row in preds:
        indices = np.argsort(row)[::-1][:top]
        results.append([(classes[i][0], classes[i][1], float(row[i])) for i in indices])
    return results
