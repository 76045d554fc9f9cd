"""Evaluation preprocessing of each checkpoint: resize rule, bicubic interpolation, mean/std."""

import math
import os

import numpy as np

from keras_nfnets.weights.presets import Checkpoint, checkpoint_for


def eval_transform(model_name):
    """The :class:`Checkpoint` describing how ``model_name``'s inputs are prepared for evaluation.

    ``model_name`` is a builder (``"NFRegNetB1"``) or timm name/tag. Builders without a checkpoint
    get their test size, a 0.875 centre crop and ImageNet mean/std.
    """
    checkpoint = checkpoint_for(model_name)
    if checkpoint is not None:
        return checkpoint
    from keras_nfnets.models import TIMM_CONFIGS, get_config

    config = TIMM_CONFIGS[model_name.split(".")[0]] if model_name.split(".")[0] in TIMM_CONFIGS else get_config(model_name)
    return Checkpoint(tag=config.name, top1=float("nan"), train_size=config.train_size, test_size=config.test_size)


def preprocess_image(image, model_name="NFRegNetB1", size=None):
    """Prepare one image for ``model_name`` exactly as its checkpoint was evaluated.

    Args:
        image: a file path (JPEG/PNG/BMP/GIF) or an ``(H, W, 3)`` RGB array on the 0–255 scale.
        model_name: builder or timm name; selects the size, crop rule and mean/std.
        size: output size (default: the checkpoint's test size).

    Returns:
        ``(size, size, 3)`` float32, normalised. The crop rules: timm's ``crop_pct`` (resize the
        short side to ``floor(size / crop_pct)``, centre crop), timm's ``squash`` (both sides),
        and DeepMind's (squash to ``size + 32``, centre crop ``size``). Bicubic, antialiased.
    """
    import tensorflow as tf

    transform = eval_transform(model_name)
    size = int(size or transform.test_size)
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"Image file not found: {image!r}")
        try:
            image = tf.io.decode_image(tf.io.read_file(os.fspath(image)), channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"Cannot decode {image!r} as an image (JPEG, PNG, BMP or GIF expected).") from error
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an (H, W, 3) RGB image; received shape {tuple(image.shape)}.")
    image = tf.cast(image, tf.float32)
    height, width = int(image.shape[0]), int(image.shape[1])
    if transform.crop == "plus32":
        resized = (size + 32, size + 32)
    elif transform.crop == "squash":
        scale = math.floor(size / transform.crop_pct)
        resized = (scale, scale)
    else:
        scale = math.floor(size / transform.crop_pct)
        short = min(height, width)
        resized = (max(size, round(height * scale / short)), max(size, round(width * scale / short)))
    image = tf.image.resize(image, resized, method="bicubic", antialias=True)
    top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
    image = image[top:top + size, left:left + size]
    image = tf.clip_by_value(image, 0.0, 255.0) / 255.0
    mean = np.asarray(transform.mean, "float32")
    std = np.asarray(transform.std, "float32")
    return ((image - mean) / std).numpy()
