"""The paper's image preprocessing on tf.data (NF paper §5.1, App. C; NFNet paper App. A.3).

Per image, stateless and seeded by ``(seed, epoch, index)``: Inception-style random crop
(``sample_distorted_bounding_box``: min object covered 0.1, aspect 3/4–4/3, area 8–100%,
10 attempts, centre-crop fallback), random flip, bicubic resize. Per batch, Keras core layers:
CutMix on one half, MixUp on the other, then RandAugment. Evaluation: one
:class:`EvalTransform` per checkpoint or recipe, used by ``preprocess_image`` and the tf.data
evaluation pipeline alike.
"""

import dataclasses
import math
from typing import Optional, Tuple

# ImageNet channel statistics of [0, 1] RGB (DeepMind's MEAN_RGB / STDDEV_RGB are these × 255).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROPS = ("center", "squash", "plus32", "crop_resize", "resize")


@dataclasses.dataclass(frozen=True)
class EvalTransform:
    """How one evaluation image is made: resize/crop rule, interpolation, normalisation.

    Attributes:
        size: output side.
        crop: ``"center"`` (timm: resize the short side to ``floor(size / crop_pct)``, centre
            crop), ``"squash"`` (timm: resize both sides to ``floor(size / crop_pct)``, centre
            crop), ``"plus32"`` (DeepMind's NFNets: resize both sides to ``size + 32``, centre
            crop), ``"crop_resize"`` (DeepMind's NF-ResNets/RegNets: centre crop ``size /
            (size + 32)`` of the short side, then resize) or ``"resize"`` (both sides to ``size``).
        crop_pct: the crop fraction of ``"center"`` and ``"squash"``.
        interpolation: a ``tf.image.resize`` method (checkpoints: ``"bicubic"``).
        pil_resize: resize as PIL does for timm's evaluation (antialiased, clipped to 0–255);
            ``False`` resizes as DeepMind's TF pipeline (no antialiasing, overshoot kept).
        mean, std: per-channel statistics of [0, 1] RGB.

    Calling it maps one ``(H, W, 3)`` image on the 0–255 scale (any dtype, any size, a
    tensor inside ``tf.data`` too) to a normalised ``(size, size, 3)`` float32 tensor.
    """

    size: int
    crop: str = "center"
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    pil_resize: bool = True
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.crop not in EVAL_CROPS:
            raise ValueError(f"Unknown eval crop {self.crop!r}; choose one of {EVAL_CROPS}.")
        if int(self.size) < 1 or not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"Need size >= 1 and 0 < crop_pct <= 1; received size={self.size}, "
                             f"crop_pct={self.crop_pct}.")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def _resize(self, image, height, width):
        import tensorflow as tf

        image = tf.image.resize(image, (height, width), method=self.interpolation, antialias=self.pil_resize)
        return tf.clip_by_value(image, 0.0, 255.0) if self.pil_resize else image

    def __call__(self, image):
        import tensorflow as tf

        size = self.size
        image = tf.cast(image, tf.float32)
        if self.crop == "crop_resize":
            image = self._resize(_center_crop(image, size / (size + 32.0)), size, size)
        elif self.crop == "resize":
            image = self._resize(image, size, size)
        else:
            if self.crop == "plus32":
                height = width = tf.constant(size + 32)
            else:
                scaled = tf.constant(math.floor(size / self.crop_pct))
                height = width = scaled
                if self.crop == "center":
                    shape = tf.shape(image)
                    short = tf.minimum(shape[0], shape[1])
                    ratio = tf.cast(scaled, tf.float64) / tf.cast(short, tf.float64)
                    height = tf.maximum(size, tf.cast(tf.round(tf.cast(shape[0], tf.float64) * ratio), tf.int32))
                    width = tf.maximum(size, tf.cast(tf.round(tf.cast(shape[1], tf.float64) * ratio), tf.int32))
            image = self._resize(image, height, width)
            top, left = (height - size) // 2, (width - size) // 2
            image = image[top:top + size, left:left + size]
        image = tf.ensure_shape(image, (size, size, 3))
        return normalize(image, self.mean, self.std)


def _center_crop(image, fraction):
    import tensorflow as tf

    shape = tf.shape(image)
    side = tf.cast(tf.cast(tf.minimum(shape[0], shape[1]), tf.float32) * fraction, tf.int32)
    side = tf.maximum(side, 1)
    top, left = (shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2
    return image[top:top + side, left:left + side]


def inception_crop(image, seed, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
                   min_object_covered=0.1, max_attempts=10):
    """A random crop as in Inception/DeepMind's ``_decode_and_random_crop``; when no box is
    found in ``max_attempts``, the centre crop used for evaluation (``224 / 256`` of the short side)."""
    import tensorflow as tf

    shape = tf.shape(image)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]), seed=seed,
        min_object_covered=min_object_covered, aspect_ratio_range=aspect_ratio_range, area_range=area_range,
        max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, size)
    failed = tf.reduce_all(tf.equal(size[:2], shape[:2]))  # DeepMind's test for "no box found"
    return tf.cond(failed, lambda: _center_crop(image, 224.0 / 256.0), lambda: crop)


def resize_bicubic(image, size):
    """Bicubic resize to ``size × size`` on the 0–255 scale (values may overshoot, as DeepMind's)."""
    import tensorflow as tf

    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bicubic")
    return tf.ensure_shape(image, (size, size, 3))


def train_image(image, size, seed, flip=True, area_range=(0.08, 1.0)):
    """One training image: random crop, flip, bicubic resize; float32 on the 0–255 scale."""
    import tensorflow as tf

    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = inception_crop(image, crop_seed, area_range=area_range)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return resize_bicubic(image, size)


def normalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """``(x − 255·mean) / (255·std)`` per channel for images on the 0–255 scale, with ``mean`` and
    ``std`` the statistics of [0, 1] RGB (DeepMind's MEAN_RGB / STDDEV_RGB)."""
    import tensorflow as tf

    scale = tf.constant(255.0, tf.float32)
    return (images - tf.constant(mean, tf.float32) * scale) / (tf.constant(std, tf.float32) * scale)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Batch-level augmentation (NFNet paper App. A.3).

    Args:
        mixup_alpha: MixUp's Beta(α, α) (0 disables); cutmix_alpha: CutMix's factor (0 disables).
            With both, CutMix mixes the first half of each batch and MixUp the second.
        randaugment: ``(num_layers, magnitude)`` with DeepMind's magnitude on its 0–10 scale
            (NFNet-F0 ``(4, 5)``); applied per image after mixing. ``None`` disables.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    randaugment: Optional[Tuple[int, float]] = None

    def __post_init__(self):
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0.")
        if self.randaugment is not None:
            layers, magnitude = self.randaugment
            if int(layers) < 1 or not 0 < magnitude:
                raise ValueError(f"randaugment must be (num_layers >= 1, magnitude > 0); received {self.randaugment!r}.")

    @property
    def mixes(self):
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @property
    def enabled(self):
        return self.mixes or self.randaugment is not None

    def randaugment_factor(self):
        """Keras' RandAugment ``factor`` (0–1) for DeepMind's magnitude: ``magnitude / 10``,
        capped at 1 (DeepMind's magnitude 15 extrapolates past its own maximum of 10)."""
        return min(1.0, float(self.randaugment[1]) / 10.0)

    def layers(self, seed=None):
        """Fresh Keras core layers ``(cutmix, mixup, randaugment)`` (``None`` where disabled),
        float32 whatever the global dtype policy."""
        import keras

        def child(offset):
            return None if seed is None else int(seed) * 7 + offset

        cutmix = keras.layers.CutMix(factor=self.cutmix_alpha, seed=child(1), dtype="float32") if self.cutmix_alpha else None
        mixup = keras.layers.MixUp(alpha=self.mixup_alpha, seed=child(2), dtype="float32") if self.mixup_alpha else None
        rand = None
        if self.randaugment is not None:
            rand = keras.layers.RandAugment(value_range=(0, 255), num_ops=int(self.randaugment[0]),
                                            factor=self.randaugment_factor(), interpolation="bilinear",
                                            seed=child(3), dtype="float32")
        return cutmix, mixup, rand


def mix_batch(images, labels, cutmix, mixup):
    """CutMix the first half of the batch and MixUp the second (either may be ``None``: then the
    other mixes the whole batch). ``labels`` are one-hot/soft and are mixed alike."""
    import tensorflow as tf

    def apply(layer, x, y):
        out = layer({"images": x, "labels": y}, training=True)
        mixed_images, mixed_labels = out["images"], out["labels"]
        mixed_images.set_shape(x.shape)
        mixed_labels.set_shape(y.shape)
        return mixed_images, mixed_labels

    if cutmix is not None and mixup is not None:
        half = tf.shape(images)[0] // 2
        x1, y1 = apply(cutmix, images[:half], labels[:half])
        x2, y2 = apply(mixup, images[half:], labels[half:])
        return tf.concat([x1, x2], 0), tf.concat([y1, y2], 0)
    layer = cutmix if cutmix is not None else mixup
    return apply(layer, images, labels) if layer is not None else (images, labels)
