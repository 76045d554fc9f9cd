"""RandAugment as per-image TensorFlow ops, stateless (NFNet paper App. A.3; Cubuk et al. 2020).

The op set and the magnitude scale are DeepMind's (``nfnets/autoaugment.py``, the TensorFlow
RandAugment the NFNets were trained with): 16 ops, each of ``num_layers`` layers picks one
uniformly and always applies it; a magnitude ``m`` is a level on a 0–10 scale that extrapolates
above 10 (NFNet-F3–F7 train at 15). The pixel ops follow PIL's ``ImageOps``/``ImageEnhance``, as
DeepMind's docstrings say they do, with one deliberate difference: DeepMind's ``contrast`` takes
the pixel count / 256 as its grey level (a bug of that code); here it is the image's mean grey,
as PIL's ``ImageEnhance.Contrast``. Geometric ops use nearest-neighbour sampling and fill with
grey 128 (DeepMind's ``replace``).

Every random choice (op, sign, Cutout position) comes from the image's own seed, so a seeded
pipeline is deterministic in any parallel map, and an image's augmentation depends only on
``(seed, epoch, position)``.
"""

import dataclasses
import functools
import math

MAX_LEVEL = 10.0
RNG = "philox"  # named, not "auto_select": XLA would pick another generator and other choices
FILL = 128  # DeepMind's replace value for pixels that geometric ops leave empty
TRANSLATE_CONST = 100.0  # pixels at level 10 (DeepMind's RandAugment hparams)
CUTOUT_CONST = 40.0

# DeepMind's RandAugment op list, in its order (the op index a layer draws selects from it).
OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast", "Brightness",
       "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout", "SolarizeAdd")
SIGNED = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")  # negated with probability 1/2


def level_to_arg(op, level):
    """The argument of ``op`` at magnitude ``level`` (DeepMind's ``level_to_arg``), before the
    random sign of :data:`SIGNED` ops; ``None`` for ops without one."""
    fraction = float(level) / MAX_LEVEL
    if op in ("AutoContrast", "Equalize", "Invert"):
        return None
    if op == "Rotate":
        return fraction * 30.0  # degrees
    if op == "Posterize":
        return int(fraction * 4)  # bits kept
    if op == "Solarize":
        return int(fraction * 256)  # threshold
    if op == "SolarizeAdd":
        return int(fraction * 110)  # addition below 128
    if op in ("Color", "Contrast", "Brightness", "Sharpness"):
        return fraction * 1.8 + 0.1  # blend factor
    if op in ("ShearX", "ShearY"):
        return fraction * 0.3
    if op in ("TranslateX", "TranslateY"):
        return fraction * TRANSLATE_CONST  # pixels
    if op == "Cutout":
        return int(fraction * CUTOUT_CONST)  # half side of the grey square
    raise ValueError(f"Unknown RandAugment op {op!r}; ops: {', '.join(OPS)}.")


@dataclasses.dataclass(frozen=True)
class RandAugment:
    """``num_layers`` ops per image at DeepMind's magnitude (0–10 scale, extrapolating above).

    Call it on one ``(H, W, 3)`` uint8 image and a stateless seed (shape ``[2]``); it returns
    the augmented uint8 image. ``compiled``: each layer runs as one XLA computation (the same
    results as the op-by-op graph, which ``compiled=False`` runs).
    """

    num_layers: int
    magnitude: float
    compiled: bool = True

    def __post_init__(self):
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"RandAugment needs num_layers >= 1 (an integer); received {self.num_layers!r}.")
        if not isinstance(self.magnitude, (int, float)) or isinstance(self.magnitude, bool) or \
                not math.isfinite(self.magnitude) or self.magnitude < 0:
            raise ValueError(f"RandAugment needs a magnitude >= 0 (DeepMind's 0–10 scale, above 10 extrapolates); "
                             f"received {self.magnitude!r}.")

    def __call__(self, image, seed):
        import tensorflow as tf

        image = tf.convert_to_tensor(image)
        if image.dtype != tf.uint8:
            raise TypeError(f"RandAugment works on uint8 images; received {image.dtype.name}.")
        seeds = tf.random.experimental.stateless_split(seed, self.num_layers, alg=RNG)
        apply_layer = _compiled_layer(float(self.magnitude)) if self.compiled else self.apply_layer
        for layer in range(self.num_layers):
            image = apply_layer(image, seeds[layer])
        return image

    def choose(self, seed):
        """A layer's random choices from its seed: ``(op index into OPS, sign ±1 for the signed ops,
        the Cutout position's seed)``; the op is uniform over the 16."""
        import tensorflow as tf

        op_seed, sign_seed, where_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3, alg=RNG))
        index = tf.random.stateless_uniform([], op_seed, 0, len(OPS), dtype=tf.int32, alg=RNG)
        # integer draws only: XLA turns Philox's bits into floats differently, not into integers
        sign = tf.cast(2 * tf.random.stateless_uniform([], sign_seed, 0, 2, dtype=tf.int32, alg=RNG) - 1, tf.float32)
        return index, sign, where_seed

    def apply_layer(self, image, seed):
        """One layer: the op :meth:`choose` draws, applied."""
        import tensorflow as tf

        index, sign, where_seed = self.choose(seed)
        branches = [self._branch(op, image, sign, where_seed) for op in OPS]
        out = tf.switch_case(index, branches)
        return tf.ensure_shape(out, image.shape)

    def _branch(self, op, image, sign, where_seed):
        argument = level_to_arg(op, self.magnitude)
        if op in SIGNED:
            return lambda: OP_FUNCTIONS[op](image, sign * argument)
        if op == "Cutout":
            return lambda: cutout(image, argument, where_seed)
        if argument is None:
            return lambda: OP_FUNCTIONS[op](image)
        return lambda: OP_FUNCTIONS[op](image, argument)


@functools.lru_cache(maxsize=None)
def _compiled_layer(magnitude):
    """One RandAugment layer at ``magnitude``, compiled by XLA (``jit_compile``): XLA fuses each
    op's casts, arithmetic and clipping into one loop, 2.5–4× faster per image on CPU than the
    op-by-op graph (tools/benchmark_pipeline.py). A layer per call: one call for all layers
    compiles to a slower conditional."""
    import tensorflow as tf

    layer = RandAugment(1, magnitude, compiled=False)
    return tf.function(layer.apply_layer, jit_compile=True, reduce_retracing=True)


# --- the ops, on one (H, W, 3) uint8 image ------------------------------------------------------------
def blend(image1, image2, factor):
    """``image1 + factor · (image2 − image1)``, clipped to 0–255 and truncated to uint8 (PIL's
    ``Image.blend``; factors above 1 extrapolate)."""
    import tensorflow as tf

    a, b = tf.cast(image1, tf.float32), tf.cast(image2, tf.float32)
    return tf.cast(tf.clip_by_value(a + factor * (b - a), 0.0, 255.0), tf.uint8)


def grayscale(image):
    """PIL's ``convert("L")``: ``(19595 R + 38470 G + 7471 B + 2^15) >> 16`` (ITU-R 601-2 luma)."""
    import tensorflow as tf

    rgb = tf.cast(image, tf.int32)
    return (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 32768) // 65536


def autocontrast(image):
    """PIL's ``ImageOps.autocontrast``: each channel stretched from its min/max to 0–255."""
    import tensorflow as tf

    x = tf.cast(image, tf.float32)
    lo = tf.reduce_min(x, axis=[0, 1], keepdims=True)
    hi = tf.reduce_max(x, axis=[0, 1], keepdims=True)
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1.0), 1.0)
    offset = tf.where(hi > lo, -lo * scale, 0.0)
    return tf.cast(tf.clip_by_value(x * scale + offset, 0.0, 255.0), tf.uint8)


def equalize(image):
    """PIL's ``ImageOps.equalize``: each channel through its histogram's cumulative lookup table
    (static shapes only, so that XLA compiles it)."""
    import tensorflow as tf

    values = tf.cast(tf.reshape(image, [-1, 3]), tf.int32)
    channel_bins = values + tf.constant([0, 256, 512])
    histograms = tf.reshape(tf.math.unsorted_segment_sum(tf.ones_like(channel_bins), channel_bins, 768), [3, 256])
    levels = tf.range(256)
    last = tf.reduce_max(tf.where(histograms > 0, levels[None, :], -1), axis=1)  # highest level present
    last_count = tf.gather(histograms, last, batch_dims=1)
    step = (tf.reduce_sum(histograms, axis=1) - last_count) // 255
    safe = tf.maximum(step, 1)[:, None]
    luts = tf.concat([tf.zeros([3, 1], tf.int32), (tf.cumsum(histograms, axis=1) + safe // 2)[:, :-1] // safe], 1)
    luts = tf.where((step > 0)[:, None], tf.clip_by_value(luts, 0, 255), levels[None, :])
    equalized = tf.gather(tf.reshape(luts, [-1]), channel_bins)
    return tf.cast(tf.reshape(equalized, tf.shape(image)), tf.uint8)


def invert(image):
    return 255 - image


def posterize(image, bits):
    """PIL's ``ImageOps.posterize``: keep the ``bits`` high bits. Levels below 2.5 give 0 bits,
    which PIL refuses; DeepMind's TensorFlow shifts by 8, which TensorFlow clamps to 7, so they
    keep 1 bit, as here."""
    import tensorflow as tf

    bits = max(int(bits), 1)
    if bits >= 8:
        return image
    mask = tf.constant((0xFF << (8 - bits)) & 0xFF, tf.uint8)
    return tf.bitwise.bitwise_and(image, mask)


def solarize(image, threshold):
    """PIL's ``ImageOps.solarize``: invert the pixels at or above ``threshold``."""
    import tensorflow as tf

    return tf.where(tf.cast(image, tf.int32) < threshold, image, 255 - image)


def solarize_add(image, addition, threshold=128):
    """Add ``addition`` to the pixels below ``threshold`` (clipped to 255), as timm's and
    DeepMind's ``solarize_add``."""
    import tensorflow as tf

    x = tf.cast(image, tf.int32)
    return tf.cast(tf.where(x < threshold, tf.clip_by_value(x + addition, 0, 255), x), tf.uint8)


def color(image, factor):
    """PIL's ``ImageEnhance.Color``: blend with the image's grey version."""
    import tensorflow as tf

    grey = tf.cast(grayscale(image), tf.uint8)
    return blend(tf.stack([grey] * 3, -1), image, factor)


def contrast(image, factor):
    """PIL's ``ImageEnhance.Contrast``: blend with a flat image of the mean grey (rounded)."""
    import tensorflow as tf

    mean = tf.floor(tf.reduce_mean(tf.cast(grayscale(image), tf.float32)) + 0.5)
    return blend(tf.fill(tf.shape(image), tf.cast(mean, tf.uint8)), image, factor)


def brightness(image, factor):
    """PIL's ``ImageEnhance.Brightness``: blend with black."""
    import tensorflow as tf

    return blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor):
    """PIL's ``ImageEnhance.Sharpness``: blend with PIL's SMOOTH filter (3×3, centre 5, sum 13,
    rounded; the one-pixel border keeps the original). The filter is nine shifted slices, which
    XLA fuses (its depthwise convolution on CPU is 40× slower)."""
    import tensorflow as tf

    x = tf.cast(image, tf.float32)
    height, width = tf.shape(x)[0], tf.shape(x)[1]
    total = 4.0 * x[1:-1, 1:-1]  # the centre weighs 5: 4 here and 1 among the nine slices
    for dy in range(3):
        for dx in range(3):
            total += x[dy:height - 2 + dy, dx:width - 2 + dx]
    smooth = tf.clip_by_value(tf.floor(total / 13.0 + 0.5), 0.0, 255.0)
    degenerate = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    border = tf.pad(tf.zeros([height - 2, width - 2], tf.bool), [[1, 1], [1, 1]], constant_values=True)
    degenerate = tf.where(border[..., None], x, degenerate)
    return tf.cast(tf.clip_by_value(degenerate + factor * (x - degenerate), 0.0, 255.0), tf.uint8)


def _round_half_away(values):
    """``std::round``: halves away from zero (TensorFlow's nearest-neighbour image kernels)."""
    import tensorflow as tf

    return tf.sign(values) * tf.floor(tf.abs(values) + 0.5)


def _transform(image, matrix):
    """Nearest-neighbour affine transform: output ``(x, y)`` reads input ``(round(a x + b y + c),
    round(d x + e y + f))``, empty pixels grey (as TensorFlow's ``ImageProjectiveTransformV3``
    with ``NEAREST`` and ``CONSTANT`` fill, which DeepMind's tfa transforms call), written with
    a gather so that XLA compiles it."""
    import tensorflow as tf

    a, b, c, d, e, f = tf.unstack(tf.cast(matrix, tf.float32))
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    source_x = tf.cast(_round_half_away(a * xs + b * ys + c), tf.int32)
    source_y = tf.cast(_round_half_away(d * xs + e * ys + f), tf.int32)
    inside = (source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)
    flat = tf.reshape(image, [-1, 3])
    index = tf.clip_by_value(source_y, 0, height - 1) * width + tf.clip_by_value(source_x, 0, width - 1)
    picked = tf.gather(flat, tf.reshape(index, [-1]))
    picked = tf.reshape(picked, shape)
    return tf.where(inside[..., None], picked, tf.constant(FILL, image.dtype))


def rotate(image, degrees):
    """Rotate by ``degrees`` counter-clockwise about the centre (PIL's ``Image.rotate``)."""
    import tensorflow as tf

    radians = degrees * (math.pi / 180.0)
    height, width = (tf.cast(d, tf.float32) for d in tf.unstack(tf.shape(image)[:2]))
    cos, sin = tf.cos(radians), tf.sin(radians)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    return _transform(image, tf.stack([cos, -sin, x_offset, sin, cos, y_offset]))


def shear_x(image, level):
    import tensorflow as tf

    return _transform(image, tf.stack([1.0, level, 0.0, 0.0, 1.0, 0.0]))


def shear_y(image, level):
    import tensorflow as tf

    return _transform(image, tf.stack([1.0, 0.0, 0.0, level, 1.0, 0.0]))


def translate_x(image, pixels):
    import tensorflow as tf

    return _transform(image, tf.stack([1.0, 0.0, pixels, 0.0, 1.0, 0.0]))


def translate_y(image, pixels):
    import tensorflow as tf

    return _transform(image, tf.stack([1.0, 0.0, 0.0, 0.0, 1.0, pixels]))


def cutout(image, half_side, seed):
    """A grey ``2·half_side`` square, centred uniformly in the image and clipped at its edges."""
    import tensorflow as tf

    shape = tf.shape(image)
    centre = tf.random.stateless_uniform([2], seed, 0, tf.int32.max, dtype=tf.int32, alg=RNG) % shape[:2]
    rows, cols = tf.range(shape[0])[:, None], tf.range(shape[1])[None, :]
    inside = ((rows >= centre[0] - half_side) & (rows < centre[0] + half_side)
              & (cols >= centre[1] - half_side) & (cols < centre[1] + half_side))
    return tf.where(inside[..., None], tf.constant(FILL, image.dtype), image)


OP_FUNCTIONS = {
    "AutoContrast": autocontrast, "Equalize": equalize, "Invert": invert, "Rotate": rotate, "Posterize": posterize,
    "Solarize": solarize, "Color": color, "Contrast": contrast, "Brightness": brightness, "Sharpness": sharpness,
    "ShearX": shear_x, "ShearY": shear_y, "TranslateX": translate_x, "TranslateY": translate_y, "Cutout": cutout,
    "SolarizeAdd": solarize_add,
}
