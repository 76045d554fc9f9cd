"""Issue 37: keras-hub's RetinaNetObjectDetector and DeepLabV3ImageSegmenter on an NFNetBackbone,
built from a builder name, a keras_nfnets model and a saved preset, trained with their own fit
on generated shapes (a short fit here; tools/dense_tasks.py is the long run with the quality
figures), and the refusals."""

import numpy as np
import pytest

import keras

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")
import keras_nfnets  # noqa: E402
from keras_nfnets.kerashub import NFNetBackbone, dense_tasks  # noqa: E402

SIZE = 64
TOY = keras_nfnets.nf_regnet_config("B0", widths=(16, 24, 32, 48), stem_width=16, depths=(1, 1, 1, 1),
                                    final_conv_channels=64)


def test_the_metrics_against_hand_counted_cases():
    boxes = np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], "float32")
    labels = np.array([[0, 1]])
    found = {"boxes": np.array([[[0, 0, 10, 9], [20, 20, 30, 30], [0, 0, 10, 10]]]),
             "labels": np.array([[0, 0, 0]]), "num_detections": np.array([3])}
    assert dense_tasks.detection_recall(found, boxes, labels) == 0.5  # the second object's detection has class 0
    assert dense_tasks.box_iou(boxes[0][:1], np.array([[0, 0, 10, 5]], "float32"))[0, 0] == pytest.approx(0.5)
    masks = np.array([[0, 1], [1, 2]])
    assert dense_tasks.mean_iou(np.array([[0, 1], [2, 2]]), masks, 3) == pytest.approx((1 + 0.5 + 0.5) / 3)
    images, boxes, labels, masks = dense_tasks.shapes_dataset(4, SIZE, seed=3)
    for i in range(4):
        for box, label in zip(boxes[i], labels[i]):
            if label >= 0:  # every box holds pixels of its class (a later shape may cover part of it)
                top, left, bottom, right = box.astype(int)
                assert np.any(masks[i, top:bottom, left:right] == label + 1)


@pytest.mark.slow
def test_retinanet_and_deeplab_take_an_nf_encoder_from_a_name_a_model_and_a_preset(tmp_path):
    images, boxes, labels, masks = dense_tasks.shapes_dataset(8, SIZE, seed=0)
    x = images / 127.5 - 1.0
    shape = (SIZE, SIZE, 3)
    named = dense_tasks.retinanet_detector("NFRegNetB0", num_classes=2, image_shape=shape)  # a builder name
    encoder = named.backbone.image_encoder
    assert isinstance(encoder, NFNetBackbone) and encoder.architecture == keras_nfnets.get_config("NFRegNetB0")
    assert named(x[:2])["cls_logits"].shape[-1] == 2  # (keras-hub's predict decodes; see dense_tasks.detect)

    model = keras_nfnets.build_nf_model(TOY, include_top=False, input_shape=shape)  # a keras_nfnets model
    detector = dense_tasks.retinanet_detector(model, num_classes=2, image_shape=shape)
    assert detector.backbone.image_encoder.get_layer("stem_conv") is model.get_layer("stem_conv")  # shared layers
    detector.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert np.isfinite(detector.fit(x, {"boxes": boxes, "labels": labels}, batch_size=4, epochs=1,
                                    verbose=0).history["loss"][0])
    decoded = dense_tasks.detect(detector, x)
    assert decoded["boxes"].shape[0] == 8 and decoded["boxes"].shape[-1] == 4
    segmenter = dense_tasks.deeplab_segmenter(model, num_classes=3, image_shape=shape)
    segmenter.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    segmenter.fit(x, masks[..., None], batch_size=4, epochs=1, verbose=0)
    assert segmenter.predict(x, verbose=0).shape == (8, SIZE, SIZE, 3)

    NFNetBackbone(TOY).save_to_preset(str(tmp_path / "toy"))  # a preset directory
    from_preset = dense_tasks.deeplab_segmenter(str(tmp_path / "toy"), num_classes=3, image_shape=shape)
    assert from_preset.backbone.image_encoder.architecture == TOY
    assert from_preset.predict(x[:2], verbose=0).shape == (2, SIZE, SIZE, 3)


@pytest.mark.slow
def test_a_short_fit_lowers_both_losses():
    """The CI form of tools/dense_tasks.py: a toy NF encoder, 48 images, 6 epochs."""
    images, boxes, labels, masks = dense_tasks.shapes_dataset(48, SIZE, seed=0)
    x = images / 127.5 - 1.0
    keras.utils.set_random_seed(0)
    segmenter = dense_tasks.deeplab_segmenter(NFNetBackbone(TOY), num_classes=3, image_shape=(SIZE, SIZE, 3))
    segmenter.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = segmenter.fit(x, masks[..., None], batch_size=8, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    detector = dense_tasks.retinanet_detector(NFNetBackbone(TOY), num_classes=2, image_shape=(SIZE, SIZE, 3))
    detector.compile(optimizer=keras.optimizers.Adam(1e-3))
    losses = detector.fit(x, {"boxes": boxes, "labels": labels}, batch_size=8, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses


def test_refusals_name_the_levels_and_the_layout():
    with pytest.raises(ValueError, match="pooling_level='P6'.*has the pyramid levels P1, P2, P3, P4, P5"):
        dense_tasks.deeplab_segmenter(NFNetBackbone(TOY), num_classes=3, pooling_level="P6")
    with pytest.raises(ValueError, match="min_level=0.*pyramid levels P1…P5"):
        dense_tasks.retinanet_detector(NFNetBackbone(TOY), num_classes=2, min_level=0)
    with pytest.raises(ValueError, match="channels_last"):
        NFNetBackbone(TOY, data_format="channels_first")
    with pytest.raises(ValueError, match="Unknown NF model 'NFNetF9'"):
        NFNetBackbone("NFNetF9")
