"""The paper's image preprocessing on tf.data (NF paper §5.1, App. C; NFNet paper App. A.3).

Per image, stateless and seeded by ``(seed, epoch, index)``: Inception-style random crop
(``sample_distorted_bounding_box``: min object covered 0.1, aspect 3/4–4/3, area 8–100%,
10 attempts, centre-crop fallback; a JPEG decoded inside the crop window alone), random flip,
bicubic resize. Per batch, stateless too: CutMix on one half, MixUp on the other, then
DeepMind's RandAugment per image (:mod:`keras_nfnets.data.randaugment`). Evaluation: one
:class:`EvalTransform` per checkpoint or recipe, used by ``preprocess_image`` and the tf.data
evaluation pipeline alike.
"""

import dataclasses
import functools
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


def crop_window(shape, seed, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3), min_object_covered=0.1,
                max_attempts=10):
    """``(offset_y, offset_x, height, width)`` of a random crop of an image of ``shape``, as
    Inception/DeepMind's ``_decode_and_random_crop``: when no box is found in ``max_attempts``,
    the centre crop used for evaluation (``224 / 256`` of the short side). Only the shape is
    needed, so a JPEG can be decoded inside the window alone."""
    import tensorflow as tf

    shape = tf.cast(shape, tf.int32)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]), seed=seed,
        min_object_covered=min_object_covered, aspect_ratio_range=aspect_ratio_range, area_range=area_range,
        max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
    failed = tf.reduce_all(tf.equal(size[:2], shape[:2]))  # DeepMind's test for "no box found"
    side = tf.maximum(tf.cast(tf.cast(tf.minimum(shape[0], shape[1]), tf.float32) * (224.0 / 256.0), tf.int32), 1)
    centre = tf.stack([(shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2, side, side])
    return tf.where(failed, centre, tf.stack([begin[0], begin[1], size[0], size[1]]))


def inception_crop(image, seed, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
                   min_object_covered=0.1, max_attempts=10):
    """The :func:`crop_window` of a decoded image, cut out."""
    import tensorflow as tf

    window = crop_window(tf.shape(image), seed, area_range, aspect_ratio_range, min_object_covered, max_attempts)
    return image[window[0]:window[0] + window[2], window[1]:window[1] + window[3]]


def decode_and_crop(encoded, seed, area_range=(0.08, 1.0), decode=None):
    """The :func:`crop_window` of an encoded image, decoded to uint8 RGB: a JPEG is decoded inside
    the window alone (``tf.io.decode_and_crop_jpeg``, from the shape in its header); other formats
    are decoded whole (by ``decode``, default ``tf.io.decode_image``) and cut. The window is the
    same either way, so the crops' distribution does not depend on the format."""
    import tensorflow as tf

    def full():
        image = decode(encoded) if decode is not None else tf.io.decode_image(encoded, channels=3,
                                                                              expand_animations=False)
        image = tf.ensure_shape(image, [None, None, 3])
        return inception_crop(image, seed, area_range=area_range)

    def jpeg():
        window = crop_window(tf.image.extract_jpeg_shape(encoded), seed, area_range=area_range)
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3)

    return tf.ensure_shape(tf.cond(tf.io.is_jpeg(encoded), jpeg, full), [None, None, 3])


def resize_bicubic(image, size):
    """Bicubic resize to ``size × size`` on the 0–255 scale (values may overshoot, as DeepMind's)."""
    import tensorflow as tf

    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bicubic")
    return tf.ensure_shape(image, (size, size, 3))


def train_image(image, size, seed, flip=True, area_range=(0.08, 1.0), decode=None):
    """One training image: random crop, flip, bicubic resize; float32 on the 0–255 scale.
    ``image`` is a decoded ``(H, W, 3)`` image or encoded bytes (a string tensor: see
    :func:`decode_and_crop`; ``decode`` decodes non-JPEG bytes)."""
    import tensorflow as tf

    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if image.dtype == tf.string:
        image = decode_and_crop(image, crop_seed, area_range=area_range, decode=decode)
    else:
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
    """The NFNets' batch augmentation (NFNet paper App. A.3), stateless: CutMix on the first half
    of each batch, MixUp on the second, then RandAugment on every image (DeepMind's order,
    ``augment_before_mix=False``).

    Args:
        mixup_alpha: MixUp's Beta(α, α) (0 disables); cutmix_alpha: CutMix's Beta(α, α) for the
            kept area (1: uniform, as the paper; 0 disables). With only one, it mixes the whole batch.
        randaugment: ``(num_layers, magnitude)``, DeepMind's RandAugment (magnitude on its 0–10
            scale, extrapolating above 10: NFNet-F0 ``(4, 5)``, F3–F7 ``(4, 15)``). ``None`` disables.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    randaugment: Optional[Tuple[int, float]] = None

    def __post_init__(self):
        for name in ("mixup_alpha", "cutmix_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"`{name}` must be a number >= 0 (0 disables it); received {value!r}.")
        if self.randaugment is not None:
            if not isinstance(self.randaugment, (tuple, list)) or len(self.randaugment) != 2:
                raise ValueError(f"`randaugment` must be (num_layers, magnitude) or None; received {self.randaugment!r}.")
            self.rand_augment()  # validates num_layers >= 1 and magnitude >= 0

    @property
    def mixes(self):
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @property
    def enabled(self):
        return self.mixes or self.randaugment is not None

    def rand_augment(self):
        """The :class:`~keras_nfnets.data.randaugment.RandAugment` of this augmentation (or ``None``)."""
        from keras_nfnets.data.randaugment import RandAugment

        return None if self.randaugment is None else RandAugment(*self.randaugment)

    def mix(self, images, labels, seed):
        """Mix one batch of float images on the 0–255 scale and their one-hot labels (see
        :func:`mix_batch`)."""
        return mix_batch(images, labels, seed, cutmix_alpha=self.cutmix_alpha, mixup_alpha=self.mixup_alpha)


def _beta(shape, alpha, seed):
    """Beta(α, α) samples from two stateless Gamma(α) draws."""
    import tensorflow as tf

    first, second = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    a = tf.random.stateless_gamma(shape, first, alpha)
    b = tf.random.stateless_gamma(shape, second, alpha)
    return a / tf.maximum(a + b, 1e-12)


def _partners(count, seed):
    """Each image's mixing partner: ``(i + shift) mod count`` with a stateless random shift in
    ``1 … count − 1``, so no image is mixed with itself (an image alone keeps itself)."""
    import tensorflow as tf

    shift = tf.random.stateless_uniform([], seed, 1, tf.maximum(count, 2), dtype=tf.int32)
    return (tf.range(count) + shift) % count


def cutmix(images, labels, seed, alpha=1.0):
    """CutMix (Yun et al. 2019), as DeepMind's ``cutmix_padding``: per image a box of side ratio
    ``sqrt(1 − λ)``, λ ~ Beta(α, α), centred uniformly and clipped at the edges, filled from a
    partner image; the labels are weighted by the exact areas kept."""
    import tensorflow as tf

    count = tf.shape(images)[0]
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    partner_seed, ratio_seed, y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    partners = _partners(count, partner_seed)
    ratio = tf.sqrt(1.0 - _beta([count], alpha, ratio_seed))
    cy = tf.random.stateless_uniform([count], y_seed, 0, height, dtype=tf.int32)
    cx = tf.random.stateless_uniform([count], x_seed, 0, width, dtype=tf.int32)
    half_h = tf.cast(ratio * tf.cast(height, tf.float32), tf.int32) // 2
    half_w = tf.cast(ratio * tf.cast(width, tf.float32), tf.int32) // 2
    top, bottom = tf.clip_by_value(cy - half_h, 0, height), tf.clip_by_value(cy + half_h, 0, height)
    left, right = tf.clip_by_value(cx - half_w, 0, width), tf.clip_by_value(cx + half_w, 0, width)
    mixed = _compiled("paste")(images, partners, top, bottom, left, right)
    area = tf.cast((bottom - top) * (right - left), tf.float32) / tf.cast(height * width, tf.float32)
    kept = 1.0 - area
    return mixed, kept[:, None] * labels + (1.0 - kept[:, None]) * tf.gather(labels, partners)


def _xla(function):
    """``function`` compiled by XLA once per process, which fuses its whole-batch pixel
    arithmetic into one loop (random draws stay outside: XLA would draw other numbers)."""
    import tensorflow as tf

    return tf.function(function, jit_compile=True, reduce_retracing=True)


@functools.lru_cache(maxsize=None)
def _compiled(name):
    return _xla({"paste": _paste_boxes_graph, "blend": _blend_pairs_graph}[name])


def _paste_boxes_graph(images, partners, top, bottom, left, right):
    """Each image with the box ``[top, bottom) × [left, right)`` taken from its partner."""
    import tensorflow as tf

    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rows, cols = tf.range(height)[None, :, None], tf.range(width)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < bottom[:, None, None])
              & (cols >= left[:, None, None]) & (cols < right[:, None, None]))
    return tf.where(inside[..., None], tf.gather(images, partners), images)


def _blend_pairs_graph(images, partners, ratio):
    """``ratio · x + (1 − ratio) · x_partner`` per image."""
    import tensorflow as tf

    ratio = ratio[:, None, None, None]
    return ratio * images + (1.0 - ratio) * tf.gather(images, partners)


def mixup(images, labels, seed, alpha=0.2):
    """MixUp (Zhang et al. 2018): per image λ ~ Beta(α, α), ``λ·x + (1 − λ)·x_partner`` and the
    labels alike."""
    import tensorflow as tf

    partner_seed, ratio_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    partners = _partners(tf.shape(images)[0], partner_seed)
    ratio = _beta([tf.shape(images)[0]], alpha, ratio_seed)
    mixed = _compiled("blend")(images, partners, ratio)
    return mixed, ratio[:, None] * labels + (1.0 - ratio[:, None]) * tf.gather(labels, partners)


def mix_batch(images, labels, seed, cutmix_alpha=1.0, mixup_alpha=0.2):
    """CutMix the first half of the batch and MixUp the second (DeepMind's ``my_mixup_cutmix``
    order of halves aside); with only one enabled (alpha > 0), it mixes the whole batch. Partners
    come from the same half. Stateless: the same ``seed`` gives the same mix."""
    import tensorflow as tf

    cut_seed, mix_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if cutmix_alpha > 0 and mixup_alpha > 0:
        half = tf.shape(images)[0] // 2
        x1, y1 = cutmix(images[:half], labels[:half], cut_seed, cutmix_alpha)
        x2, y2 = mixup(images[half:], labels[half:], mix_seed, mixup_alpha)
        return tf.concat([x1, x2], 0), tf.concat([y1, y2], 0)
    if cutmix_alpha > 0:
        return cutmix(images, labels, cut_seed, cutmix_alpha)
    if mixup_alpha > 0:
        return mixup(images, labels, mix_seed, mixup_alpha)
    return images, labels
