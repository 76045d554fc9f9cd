"""The paper's image preprocessing on tf.data (NF paper §5.1, App. C; NFNet paper App. A.3).

Per image, stateless and seeded by ``(seed, epoch, index)``: Inception-style random crop
(``sample_distorted_bounding_box``: min object covered 0.1, aspect 3/4–4/3, area 8–100%,
10 attempts, centre-crop fallback), random flip, bicubic resize; evaluation: centre crop of
``S / (S + 32)`` of the short side then bicubic resize (``"crop_resize"``), or squash to
``S + 32`` then centre crop ``S`` (``"resize_crop_32"``, DeepMind's NFNet evaluation).
Per batch, Keras core layers: CutMix on one half, MixUp on the other, then RandAugment.
"""

import dataclasses
from typing import Optional, Tuple

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
EVAL_CROPS = ("crop_resize", "resize_crop_32", "resize")


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


def eval_image(image, size, crop="crop_resize"):
    """One evaluation image (see module docstring for the ``crop`` rules); 0–255 float32."""
    import tensorflow as tf

    if crop == "crop_resize":
        return resize_bicubic(_center_crop(image, size / (size + 32.0)), size)
    if crop == "resize_crop_32":
        image = tf.image.resize(tf.cast(image, tf.float32), (size + 32, size + 32), method="bicubic")
        return tf.ensure_shape(image[16:16 + size, 16:16 + size], (size, size, 3))
    if crop == "resize":
        return resize_bicubic(image, size)
    raise ValueError(f"Unknown eval crop {crop!r}; choose one of {EVAL_CROPS}.")


def normalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """``(x − mean) / std`` per channel on the 0–255 scale (DeepMind's MEAN_RGB / STDDEV_RGB)."""
    import tensorflow as tf

    return (images - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


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
