"""The paper's augmentation as stateless tf.data ops (issue 21): DeepMind's RandAugment checked op
by op against PIL, its magnitude scale against DeepMind's formulas, uniform op choice, exact
CutMix/MixUp labels, JPEG crop-window decoding against the full decode, determinism and resume."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from keras_nfnets import data
from keras_nfnets.data import randaugment as ra


def natural_image(seed=0, shape=(64, 80)):
    """A smooth colour field with noise: all 256 levels are not equally likely, as in photos."""
    rng = np.random.default_rng(seed)
    base = tf.image.resize(rng.uniform(0, 255, (6, 6, 3)).astype("float32")[None], shape, "bicubic")[0].numpy()
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype("uint8")


def _solarize_add_lut(addition):  # timm's solarize_add on PIL: a lookup table per band
    return [min(255, i + addition) if i < 128 else i for i in range(256)] * 3


# op, argument, our function, PIL's peer; every pixel op equals PIL exactly (tolerance 0 levels).
PIXEL_OPS = [
    ("AutoContrast", None, ra.autocontrast, ImageOps.autocontrast),
    ("Equalize", None, ra.equalize, ImageOps.equalize),
    ("Invert", None, ra.invert, ImageOps.invert),
    *[("Posterize", bits, ra.posterize, lambda im, b=bits: ImageOps.posterize(im, b)) for bits in (1, 2, 4, 6)],
    *[("Solarize", t, ra.solarize, lambda im, t=t: ImageOps.solarize(im, t)) for t in (0, 128, 200, 256)],
    *[("SolarizeAdd", a, ra.solarize_add, lambda im, a=a: im.point(_solarize_add_lut(a))) for a in (55, 110, 165)],
    *[(name, f, fn, lambda im, f=f, e=enhancer: e(im).enhance(f))
      for name, fn, enhancer in (("Color", ra.color, ImageEnhance.Color), ("Contrast", ra.contrast, ImageEnhance.Contrast),
                                 ("Brightness", ra.brightness, ImageEnhance.Brightness),
                                 ("Sharpness", ra.sharpness, ImageEnhance.Sharpness))
      for f in (0.1, 1.0, 1.9, 2.8)],
]


@pytest.mark.parametrize("op,argument,ours,pil", PIXEL_OPS, ids=[f"{p[0]}-{p[1]}" for p in PIXEL_OPS])
def test_pixel_ops_equal_pil(op, argument, ours, pil):
    for seed in (0, 1):
        image = natural_image(seed)
        mine = np.asarray(ours(image) if argument is None else ours(image, argument))
        theirs = np.asarray(pil(Image.fromarray(image)))
        assert mine.dtype == np.uint8 and mine.shape == image.shape
        np.testing.assert_array_equal(mine, theirs, err_msg=f"{op}({argument})")


def test_posterize_below_one_bit_keeps_one_as_deepminds_tensorflow():
    """Levels below 2.5 map to 0 bits: PIL refuses them, DeepMind's code shifts by 8, which
    TensorFlow's bitwise ops clamp to a shift of 7: one bit kept."""
    image = natural_image()
    deepmind = tf.bitwise.left_shift(tf.bitwise.right_shift(tf.constant(image), 8), 8)
    np.testing.assert_array_equal(ra.posterize(image, 0), deepmind)
    np.testing.assert_array_equal(ra.posterize(image, 0), ImageOps.posterize(Image.fromarray(image), 1))


FILL = (128, 128, 128)


def _pil_affine(image, coefficients):
    """PIL's nearest-neighbour affine transform in TensorFlow's pixel convention: PIL reads
    ``floor(a (x + ½) + b (y + ½) + c)``, TensorFlow (and DeepMind's tfa transform)
    ``round(a x + b y + c)``, so PIL's offsets get ``(1 − a − b)/2`` and ``(1 − d − e)/2``."""
    a, b, c, d, e, f = coefficients
    c, f = c + (1 - a - b) / 2, f + (1 - d - e) / 2
    return np.asarray(Image.fromarray(image).transform(image.shape[1::-1], Image.AFFINE, (a, b, c, d, e, f),
                                                       Image.NEAREST, fillcolor=FILL))


GEOMETRIC_OPS = [
    *[("Rotate", deg, ra.rotate, lambda im, d=deg: np.asarray(Image.fromarray(im).rotate(d, Image.NEAREST,
                                                                                        fillcolor=FILL)))
      for deg in (7.5, 15.0, -30.0, 45.0)],
    *[("ShearX", s, ra.shear_x, lambda im, s=s: _pil_affine(im, (1, s, 0, 0, 1, 0))) for s in (0.15, -0.3, 0.45)],
    *[("ShearY", s, ra.shear_y, lambda im, s=s: _pil_affine(im, (1, 0, 0, s, 1, 0))) for s in (0.15, -0.3, 0.45)],
    *[("TranslateX", p, ra.translate_x, lambda im, p=p: _pil_affine(im, (1, 0, p, 0, 1, 0))) for p in (10.0, -25.0)],
    *[("TranslateY", p, ra.translate_y, lambda im, p=p: _pil_affine(im, (1, 0, 0, 0, 1, p))) for p in (10.0, -25.0)],
]


@pytest.mark.parametrize("op,argument,ours,pil", GEOMETRIC_OPS, ids=[f"{p[0]}{p[1]}" for p in GEOMETRIC_OPS])
def test_geometric_ops_equal_pil_on_interior_pixels(op, argument, ours, pil):
    """The image's pixels carry their own coordinates (row, column, 0), so the output says where
    each pixel was read. On interior pixels (4 from the border), at least 90% are read from
    PIL's position and the rest one pixel away: the two round ties (positions on .5, e.g. rows
    where 0.15·y is a half) to different neighbours. Grey fill stands where PIL fills, but for
    such ties at its edge."""
    rows, cols = np.mgrid[0:64, 0:80]
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype("uint8")
    mine, theirs = (np.asarray(x).astype(int)[4:-4, 4:-4] for x in (ours(image, argument), pil(image)))
    same = np.all(mine == theirs, axis=-1)
    assert same.mean() >= 0.9, f"{op}({argument}): {same.mean():.3f} read from PIL's position"
    both_read = (mine[..., 2] == 0) & (theirs[..., 2] == 0)
    distance = np.abs(mine[..., :2] - theirs[..., :2]).max(-1)
    assert (distance[both_read] <= 1).all(), f"{op}({argument}): reads more than one pixel from PIL's"
    filled_differently = ~same & ~both_read
    assert filled_differently.mean() < 0.02, f"{op}({argument}): fill differs at {filled_differently.sum()} pixels"


def test_magnitudes_are_deepminds_formulas_and_extrapolate_above_10():
    """DeepMind's level_to_arg at levels 0, 5, 10, 15 (nfnets/autoaugment.py, _MAX_LEVEL = 10,
    translate_const 100, cutout_const 40), written out by hand."""
    expected = {
        "Rotate": (0.0, 15.0, 30.0, 45.0), "Posterize": (0, 2, 4, 6), "Solarize": (0, 128, 256, 384),
        "SolarizeAdd": (0, 55, 110, 165), "Color": (0.1, 1.0, 1.9, 2.8), "Contrast": (0.1, 1.0, 1.9, 2.8),
        "Brightness": (0.1, 1.0, 1.9, 2.8), "Sharpness": (0.1, 1.0, 1.9, 2.8), "ShearX": (0.0, 0.15, 0.3, 0.45),
        "ShearY": (0.0, 0.15, 0.3, 0.45), "TranslateX": (0.0, 50.0, 100.0, 150.0),
        "TranslateY": (0.0, 50.0, 100.0, 150.0), "Cutout": (0, 20, 40, 60),
        "AutoContrast": (None,) * 4, "Equalize": (None,) * 4, "Invert": (None,) * 4,
    }
    assert set(expected) == set(ra.OPS) and len(ra.OPS) == 16
    for op, values in expected.items():
        got = tuple(ra.level_to_arg(op, level) for level in (0, 5, 10, 15))
        assert got == pytest.approx(values) if values[0] is not None else got == values, op


def test_op_choice_is_uniform_and_the_layer_applies_the_chosen_op():
    """A chi-square test of 3,200 layers' op choices (16 ops, 15 degrees of freedom: 37.7 is the
    0.1% critical value); and a layer's output is the chosen op's output."""
    augment = ra.RandAugment(1, 10)
    seeds = tf.stack([tf.range(3200, dtype=tf.int64), tf.fill([3200], tf.constant(7, tf.int64))], axis=1)
    chosen = tf.function(lambda s: tf.map_fn(lambda seed: tf.cast(augment.choose(seed)[0], tf.int64), s))(seeds)
    counts = np.bincount(chosen.numpy(), minlength=len(ra.OPS))
    expected = 3200 / len(ra.OPS)
    assert ((counts - expected) ** 2 / expected).sum() < 37.7, counts
    image = natural_image()
    for i in range(6):
        seed = tf.constant([i, 7], tf.int64)
        index, sign, where = augment.choose(seed)
        op = ra.OPS[int(index)]
        argument = ra.level_to_arg(op, 10)
        expected_image = (ra.cutout(image, argument, where) if op == "Cutout" else
                          ra.OP_FUNCTIONS[op](image, float(sign) * argument) if op in ra.SIGNED else
                          ra.OP_FUNCTIONS[op](image) if argument is None else ra.OP_FUNCTIONS[op](image, argument))
        np.testing.assert_array_equal(augment.apply_layer(tf.constant(image), seed), expected_image, err_msg=op)


def test_the_xla_compiled_layers_equal_the_op_by_op_graph():
    """The pipeline runs each layer through XLA; over 64 seeds (every op several times) the
    images equal the op-by-op results that the PIL tests check, the same ops chosen, but for
    nearest-neighbour ties: XLA fuses the multiply-adds of a shear's or rotation's coordinates,
    so a coordinate that lands on .5 may round the other way (at most 1% of an image's pixels,
    measured 0.08% at level 15)."""
    compiled, plain = ra.RandAugment(2, 15), ra.RandAugment(2, 15, compiled=False)
    identical = 0
    for seed in range(64):
        image = tf.constant(natural_image(seed % 4))
        seed = tf.constant([seed, 11], tf.int64)
        different = np.any(np.asarray(compiled(image, seed)) != np.asarray(plain(image, seed)), axis=-1)
        assert different.mean() <= 0.01, f"seed {seed}: {different.mean():.4f} of the pixels differ"
        identical += not different.any()
    assert identical >= 48  # most op pairs have no tie at all


def test_cutout_is_a_grey_square_clipped_at_the_edges():
    image = natural_image()
    for i in range(8):
        out = np.asarray(ra.cutout(image, 20, tf.constant([i, 1], tf.int64)))
        changed = np.any(out != image, axis=-1)
        rows, cols = np.nonzero(np.all(out == 128, axis=-1) & changed)
        assert (out[changed] == 128).all() and rows.size
        assert rows.max() - rows.min() + 1 <= 40 and cols.max() - cols.min() + 1 <= 40


def test_bad_augmentation_settings_are_refused():
    with pytest.raises(ValueError, match="num_layers >= 1"):
        data.Augmentation(randaugment=(0, 5))
    with pytest.raises(ValueError, match="magnitude >= 0"):
        data.Augmentation(randaugment=(4, -1))
    with pytest.raises(ValueError, match="mixup_alpha"):
        data.Augmentation(mixup_alpha=-0.2)
    with pytest.raises(TypeError, match="uint8"):
        ra.RandAugment(2, 5)(tf.zeros((8, 8, 3)), tf.constant([0, 0], tf.int64))


def test_mixed_labels_are_exactly_the_mixed_pixel_fractions():
    """Each image is one flat grey level (30·k + 10) and carries its one-hot class k, so every
    mixed pixel tells which images it came from and in what proportion. CutMix (first half): the
    label weights are the exact fractions of pixels from each image; MixUp (second half): the
    pixel value fixes λ and the labels carry the same λ."""
    count, classes = 8, 8
    images = tf.constant(np.stack([np.full((16, 20, 3), 30.0 * k + 10.0, "float32") for k in range(count)]))
    labels = tf.one_hot(tf.range(count), classes)
    for s in range(5):
        mixed, mixed_labels = data.mix_batch(images, labels, tf.constant([s, 0], tf.int64), cutmix_alpha=1.0,
                                             mixup_alpha=0.2)
        mixed, mixed_labels = mixed.numpy()[..., 0], mixed_labels.numpy()
        np.testing.assert_allclose(mixed_labels.sum(1), 1.0, atol=1e-6)
        for i in range(count // 2):  # CutMix: pixels are whole images' levels
            levels = np.round((mixed[i] - 10.0) / 30.0).astype(int)
            fractions = np.bincount(levels.ravel(), minlength=classes) / levels.size
            np.testing.assert_allclose(mixed_labels[i], fractions, atol=1e-6)
            assert set(np.unique(levels)) <= {i, *range(count // 2)}  # partners from the same half
        for i in range(count // 2, count):  # MixUp: one level λ·a + (1 − λ)·b everywhere
            assert np.ptp(mixed[i]) < 1e-3
            weights = mixed_labels[i]
            assert np.count_nonzero(weights > 1e-6) <= 2 and set(np.nonzero(weights > 1e-6)[0]) <= set(range(4, 8))
            np.testing.assert_allclose(mixed[i, 0, 0], (weights * (30.0 * np.arange(classes) + 10.0)).sum(), rtol=1e-5)


# --- the JPEG crop window --------------------------------------------------------------------------
def test_decoding_the_crop_window_gives_the_full_decodes_crops():
    """The same windows from the header's shape and from the decoded image, so the crops'
    distribution cannot change; their pixels agree to JPEG's block-edge upsampling (mean < 1
    level). PNG goes through the full decode."""
    rng = np.random.default_rng(0)
    shapes, jpeg_means, full_means, diffs = [], [], [], []
    for k in range(40):
        h, w = rng.integers(100, 300, 2)
        picture = tf.cast(tf.clip_by_value(tf.image.resize(rng.uniform(0, 255, (6, 6, 3)).astype("float32")[None],
                                                           (h, w), "bicubic")[0], 0, 255), tf.uint8)
        encoded = tf.io.encode_jpeg(picture, quality=90)
        seed = tf.constant([k, 3], tf.int64)
        windowed = data.transforms.decode_and_crop(encoded, seed)
        full = data.transforms.inception_crop(tf.io.decode_jpeg(encoded, channels=3), seed)
        assert windowed.shape == full.shape
        shapes.append(tuple(full.shape))
        jpeg_means.append(float(tf.reduce_mean(tf.cast(windowed, tf.float32))))
        full_means.append(float(tf.reduce_mean(tf.cast(full, tf.float32))))
        diffs.append(float(tf.reduce_mean(tf.abs(tf.cast(windowed, tf.float32) - tf.cast(full, tf.float32)))))
    assert len(set(shapes)) > 30  # the windows vary
    assert np.mean(diffs) < 1.0 and np.abs(np.array(jpeg_means) - np.array(full_means)).max() < 1.0
    png = tf.io.encode_png(tf.zeros((50, 60, 3), tf.uint8) + 7)
    crop = data.transforms.decode_and_crop(png, tf.constant([1, 3], tf.int64))
    assert crop.shape[0] <= 50 and crop.shape[1] <= 60 and int(tf.reduce_max(crop)) == 7


# --- the pipeline -------------------------------------------------------------------------------------
def _jpeg_folder(root, classes=3, per_class=8):
    rng = np.random.default_rng(1)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            h, w = rng.integers(60, 90, 2)
            pixels = rng.integers(0, 255, (h, w, 3)).astype("uint8")
            (root / f"c{c}" / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(pixels).numpy())
    return data.load_source(str(root), "train")


PAPER_F3 = data.Augmentation(mixup_alpha=0.2, cutmix_alpha=1.0, randaugment=(4, 15))


def test_seeded_pipeline_is_deterministic_resumes_exactly_and_has_no_python_ops(tmp_path):
    source = _jpeg_folder(tmp_path / "photos")
    assert source.encoded

    def batches(**kwargs):
        kwargs = dict(dict(epochs=2, seed=0, augmentation=PAPER_F3), **kwargs)
        return [(x.numpy(), y.numpy()) for x, y in data.train_dataset(source, 32, 8, **kwargs)]

    first, again = batches(), batches()
    assert len(first) == 2 * (source.num_examples // 8)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    per_epoch = source.num_examples // 8
    for (x1, y1), (x2, y2) in zip(first[per_epoch:], batches(start_epoch=1)):  # a resumed second epoch
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    other = batches(seed=1)
    assert not any(np.array_equal(x1, x2) for (x1, _), (x2, _) in zip(first, other))
    mixed = np.concatenate([y for _, y in first])
    assert (np.count_nonzero(mixed > 1e-6, axis=1) == 2).mean() > 0.5  # most rows mix two classes

    dataset = data.train_dataset(source, 32, 8, epochs=1, seed=0, augmentation=PAPER_F3)
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())  # noqa: SLF001
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert "SwitchCase" in ops or "StatelessCase" in ops or "Case" in ops  # RandAugment is in the graph
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}, ops & {"PyFunc", "EagerPyFunc"}


# --- nfnets train says when it is input-bound ------------------------------------------------------------
def _report(pipeline_rate, step_seconds, plain_rate=None):
    """Drive an InputBoundReport with a fake clock: training steps of ``step_seconds`` each."""
    import io

    from keras_nfnets.training.callbacks import InputBoundReport

    now = [0.0]
    out = io.StringIO()
    report = InputBoundReport(pipeline_rate, 32, plain_rate=plain_rate, augmentation="RandAugment 4 layers, magnitude 5",
                              stream=out, clock=lambda: now[0])
    for batch in range(40):
        now[0] += step_seconds
        report.on_train_batch_end(batch)
    assert out.getvalue() == ""  # inside the epoch: printed between epochs (test_the_input_report_…_terminal)
    report.on_train_end()
    return report.report, out.getvalue()


def test_the_input_report_names_the_bottleneck_and_its_cause():
    text, printed = _report(pipeline_rate=100.0, step_seconds=32 / 98.0, plain_rate=900.0)  # 98 of 100 img/s
    assert printed.strip() == text
    assert text.startswith("Input-bound: input pipeline 100 images/s (measured alone), training 98 images/s")
    assert "The cause: the augmentation (RandAugment 4 layers, magnitude 5): without it the pipeline delivers 900" in text
    assert "`augment='none'`" in text and "more CPU cores" in text and "`randaugment=(2, 5)`" in text
    # run by the nfnets command, the same report names its flags
    from keras_nfnets import messages
    from keras_nfnets.cli import as_flags, build_parser

    with messages.translated(lambda message: as_flags(message, build_parser().subcommands["train"])):
        _, printed = _report(pipeline_rate=100.0, step_seconds=32 / 98.0, plain_rate=900.0)
    assert "`--augment none`" in printed and "`--randaugment 2,5`" in printed and "augment=" not in printed
    text, _ = _report(pipeline_rate=100.0, step_seconds=32 / 98.0, plain_rate=110.0)
    assert "The cause: decoding and cropping the images" in text
    text, _ = _report(pipeline_rate=1000.0, step_seconds=32 / 200.0, plain_rate=1200.0)
    assert text == ("Throughput: input pipeline 1,000 images/s (measured alone), training 200 images/s: the model "
                    "sets the pace, the input pipeline keeps up.")


def test_the_input_report_keeps_off_the_progress_bar_on_a_terminal(capsys, monkeypatch):
    """On a terminal Keras redraws the epoch's bar in place: the report comes after epoch 1's bar
    is finished and before epoch 2's first line, on a line of its own, and epoch 1's bar is not
    drawn again after it (issue 44: `…top5: 0.5292Throughput: input pipeline…`)."""
    import io
    import sys

    import keras

    from keras_nfnets.training.callbacks import InputBoundReport

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x, y = np.zeros((64, 4), "float32"), np.zeros((64, 2), "float32")
    report = InputBoundReport(1e6, 8, skip=1, seconds=0.0, max_batches=3)
    model.fit(x, y, batch_size=8, epochs=2, verbose=1, callbacks=[report])
    text = terminal.getvalue()
    assert report.report and text.count(report.report) == 1
    before, after = text.split(report.report)
    assert before.endswith("\n") and after.startswith("\n")  # a line of its own
    assert "Epoch 2/2" in after and "Epoch 2/2" not in before and "8/8" in before
    assert "8/8" not in after.split("Epoch 2/2")[0]  # epoch 1's bar is not drawn again
