"""ImageNet helpers (keras_nfnets.imagenet): preprocess_input, class names, decode_predictions."""

import numpy as np
import pytest

from keras_nfnets import decode_predictions, imagenet_classes, preprocess_input


def test_preprocess_input_uses_imagenet_mean_std_on_0_255():
    x = np.array([[[[0.485 * 255, 0.456 * 255, 0.406 * 255], [255.0, 255.0, 255.0]]]], "float32")
    y = preprocess_input(x)
    np.testing.assert_allclose(y[0, 0, 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(y[0, 0, 1], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225], rtol=1e-5)
    import tensorflow as tf

    np.testing.assert_allclose(preprocess_input(tf.constant(x)).numpy(), y, rtol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        preprocess_input(np.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="channels_last"):
        preprocess_input(x, data_format="channels_first")


def test_class_names_ship_with_the_package():
    classes = imagenet_classes()
    assert len(classes) == 1000 and len({wnid for wnid, _ in classes}) == 1000
    assert classes[0] == ("n01440764", "tench") and classes[1] == ("n01443537", "goldfish")
    assert classes[999] == ("n15075141", "toilet_tissue")


def test_decode_predictions():
    preds = np.zeros((2, 1000), "float32")
    preds[0, 1], preds[0, 0], preds[1, 999] = 0.7, 0.2, 0.9
    decoded = decode_predictions(preds, top=2)
    assert decoded[0] == [("n01443537", "goldfish", pytest.approx(0.7)), ("n01440764", "tench", pytest.approx(0.2))]
    assert decoded[1][0][1] == "toilet_tissue"
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        decode_predictions(np.zeros((2, 10)))
