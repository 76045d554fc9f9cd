"""Evaluation preprocessing by model name: each checkpoint's :class:`EvalTransform`, or the
paper's rule for architectures without one."""

import os

from keras_nfnets.data.transforms import EvalTransform
from keras_nfnets.models.timm_configs import TIMM_EVAL_CROP
from keras_nfnets.registry import checkpoint_for, resolve, rows


def eval_transform(model_name, size=None):
    """The :class:`EvalTransform` that prepares ``model_name``'s evaluation images.

    ``model_name`` is a builder (``"NFRegNetB1"``), a timm name/tag, or a keras_nfnets model
    (which records its checkpoint and architecture; ``size`` defaults to its input's). A model with an ImageNet
    checkpoint gets the checkpoint's settings (timm's crop rule, PIL-style bicubic resizing,
    its mean/std); others get their config's test size and evaluation crop (DeepMind's rules
    for DeepMind's architectures, timm's 0.875 centre crop for timm's) with ImageNet mean/std.
    ``size`` overrides the test size.
    """
    if not isinstance(model_name, str):
        return _model_eval_transform(model_name, size)
    checkpoint = checkpoint_for(model_name)
    if checkpoint is not None:
        return checkpoint.eval_transform(size)
    return resolve(model_name).eval_transform(size)


def _model_eval_transform(model, size):
    """A keras_nfnets model's transform: its checkpoint's; else that of the public architecture it
    records (a builder's or timm's, compared field by field); else timm's centre crop for timm's
    layout (symmetric padding) and DeepMind's crop for DeepMind's."""
    architecture = getattr(model, "architecture", None)
    if architecture is None:
        raise ValueError(f"{model.name!r} is not a keras_nfnets model, so it records no checkpoint or architecture: "
                         "pass a keras_nfnets.EvalTransform.")
    input_size = model.input.shape[1] if not isinstance(model.input, (list, dict)) else None
    size = size or input_size
    if model.checkpoint is not None:
        return model.checkpoint.eval_transform(size)
    for row in rows():
        if row.config.same_architecture(architecture):  # a builder's or timm's public architecture
            return row.eval_transform(size)
    crop = TIMM_EVAL_CROP if architecture.padding == "symmetric" else "crop_resize"
    return EvalTransform(size or 224, crop=crop, pil_resize=crop == "center")


def preprocess_image(image, model_name="NFRegNetB1", size=None, transform=None):
    """Prepare one image for ``model_name`` exactly as its checkpoint was evaluated.

    Args:
        image: a file path (JPEG/PNG/BMP/GIF) or an ``(H, W, 3)`` RGB array on the 0–255 scale.
        model_name: builder or timm name; selects the size, crop rule and mean/std (see
            :func:`eval_transform`).
        size: output size (default: the checkpoint's test size).
        transform: an :class:`EvalTransform` to use instead of ``model_name``'s (e.g. a trained
            run's, from its ``run.json``).

    Returns:
        a ``(size, size, 3)`` float32 NumPy array, normalised.
    """
    import tensorflow as tf

    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path!r} is a directory; give image files (e.g. {os.path.join(path, '*.jpg')}).")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Image file not found: {path!r}")
        from keras_nfnets._startup import stderr_silenced

        try:
            with stderr_silenced():  # libjpeg's own "Input file read error" line, before the message below
                image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
            raise ValueError(f"Cannot decode {path!r} as an image (JPEG, PNG, BMP or GIF expected; the file is empty, "
                             "truncated or of another format).") from error
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an (H, W, 3) RGB image; received shape {tuple(image.shape)}.")
    if transform is None:
        transform = eval_transform(model_name, size)
    elif size is not None:
        transform = transform.replace(size=size)
    return transform(image).numpy()
