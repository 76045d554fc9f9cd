"""``NFNetImageConverter``: a checkpoint's evaluation transform as a keras-hub ``ImageConverter``.

keras-hub's converter resizes the whole image (``crop_to_aspect_ratio``: after cropping the
centred largest square); it cannot express the centre crops of timm's and DeepMind's
evaluations (timm: resize the short side to ``floor(size / crop_pct)``, then crop ``size``).
This subclass adds ``eval_crop`` and ``crop_pct``, the rules of :class:`~keras_nfnets.EvalTransform`
(``center``, ``squash``, ``plus32``, ``crop_resize``, ``resize``) written with ``keras.ops``, so
they run on every backend and inside ``tf.data``; ``eval_crop=None`` is keras-hub's rule.
:func:`converter_arguments` maps an ``EvalTransform`` to the converter's arguments.
"""

import math

import keras
from keras import ops

from keras_nfnets._compat import ImageConverterHook
from keras_nfnets.data.transforms import EVAL_CROPS
from keras_nfnets.kerashub import _require  # noqa: F401
from keras_nfnets.kerashub.nfnet_backbone import NFNetBackbone

from keras_hub.layers import ImageConverter  # noqa: E402


def converter_arguments(transform):
    """keras-hub converter arguments for an :class:`~keras_nfnets.EvalTransform`: size, crop
    rule, interpolation, antialiasing (PIL-style resizing), and mean/std as ``scale``/``offset``
    on 0–255 input."""
    size = transform.size
    return dict(image_size=(size, size), eval_crop=transform.crop, crop_pct=transform.crop_pct,
                crop_to_aspect_ratio=transform.crop in ("center", "crop_resize"),
                interpolation=transform.interpolation, antialias=bool(transform.pil_resize),
                scale=[1.0 / (255.0 * s) for s in transform.std],
                offset=[-m / s for m, s in zip(transform.mean, transform.std)])


@keras.saving.register_keras_serializable(package="keras_nfnets")
class NFNetImageConverter(ImageConverterHook, ImageConverter):
    """keras-hub's ``ImageConverter`` plus the checkpoints' crop rules (module docstring).

    Args:
        eval_crop: ``None`` (keras-hub's rule) or one of ``EvalTransform``'s crops.
        crop_pct: the crop fraction of ``center`` and ``squash``.
        **kwargs: keras-hub's (``image_size``, ``scale``, ``offset``, ``interpolation``,
            ``antialias``, ...). With ``antialias`` the resized image is clipped to 0–255, as
            PIL's resize is.
    """

    backbone_cls = NFNetBackbone

    def __init__(self, eval_crop=None, crop_pct=0.875, **kwargs):
        if eval_crop is not None and eval_crop not in EVAL_CROPS:
            raise ValueError(f"`eval_crop` must be None or one of {EVAL_CROPS}; received {eval_crop!r}.")
        if not 0.0 < float(crop_pct) <= 1.0:
            raise ValueError(f"`crop_pct` must be in (0, 1]; received {crop_pct!r}.")
        super().__init__(**kwargs)
        self.eval_crop = eval_crop
        self.crop_pct = float(crop_pct)

    def _resize(self, images, height, width):
        if isinstance(height, int) and isinstance(width, int):
            images = ops.image.resize(images, (height, width), interpolation=self.interpolation,
                                      antialias=self.antialias)
        else:  # sizes known only at run time: inside tf.data (keras-hub's TF workflow), TensorFlow's resize
            import tensorflow as tf

            images = tf.image.resize(images, tf.stack([height, width]), method=self.interpolation,
                                     antialias=self.antialias)
        return ops.clip(images, 0.0, 255.0) if self.antialias else images

    def _evaluation_geometry(self, images):
        """EvalTransform's resize-and-crop on a batch ``(N, H, W, 3)`` or one image, 0–255."""
        size = self.image_size[0]
        images = ops.cast(images, "float32")
        shape = ops.shape(images)
        height, width = shape[-3], shape[-2]
        static = isinstance(height, int) and isinstance(width, int)  # else tf.data's run-time shapes
        if self.eval_crop == "resize":
            return self._resize(images, size, size)
        if self.eval_crop == "crop_resize":  # DeepMind's NF-ResNets/RegNets: centre crop, then resize
            fraction = size / (size + 32.0)
            side = (max(int(min(height, width) * fraction), 1) if static else
                    ops.maximum(ops.cast(ops.cast(ops.minimum(height, width), "float32") * fraction, "int32"), 1))
            top, left = (height - side + 1) // 2, (width - side + 1) // 2
            return self._resize(images[..., top:top + side, left:left + side, :], size, size)
        if self.eval_crop == "plus32":
            new_height = new_width = size + 32
        else:
            scaled = math.floor(size / self.crop_pct)
            new_height = new_width = scaled
            if self.eval_crop == "center" and static:  # timm: the short side to `scaled`, the aspect kept
                ratio = scaled / min(height, width)
                new_height, new_width = max(size, round(height * ratio)), max(size, round(width * ratio))
            elif self.eval_crop == "center":
                ratio = scaled / ops.cast(ops.minimum(height, width), "float64")
                new_height = ops.maximum(size, ops.cast(ops.round(ops.cast(height, "float64") * ratio), "int32"))
                new_width = ops.maximum(size, ops.cast(ops.round(ops.cast(width, "float64") * ratio), "int32"))
        images = self._resize(images, new_height, new_width)
        top, left = (new_height - size) // 2, (new_width - size) // 2
        return images[..., top:top + size, left:left + size, :]

    def convert_images(self, keras_call, inputs):  # (keras_nfnets._compat.ImageConverterHook)
        if self.eval_crop is not None and self.image_size is not None:
            if isinstance(inputs, dict):
                raise ValueError("NFNetImageConverter's `eval_crop` transforms images only; bounding boxes are not "
                                 "supported: set eval_crop=None.")
            if isinstance(inputs, (list, tuple)):
                return type(inputs)(self.convert_images(keras_call, image) for image in inputs)
            inputs = self._evaluation_geometry(ops.convert_to_tensor(inputs))  # then keras-hub's (same-size) resize
        return keras_call(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(eval_crop=self.eval_crop, crop_pct=self.crop_pct)
        return config
