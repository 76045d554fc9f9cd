"""Evaluation preprocessing per checkpoint (keras_nfnets.preprocessing): DeepMind's size+32 rule,
timm's centre crop, the pretrained input sizes."""

import numpy as np
import pytest

import keras_nfnets
from keras_nfnets import eval_transform, preprocess_image


# --- the evaluation size each path uses -------------------------------------------------------------------
def test_preprocess_image_size_is_the_pretrained_builders_input_size():
    """preprocess_image(path, NAME) prepares images for NAME(weights="imagenet"): the checkpoint's
    test size (288 px for NFRegNetB1); NAME(weights=None) builds at the paper's test size (256 px),
    as the README says."""
    from keras_nfnets.applications import _pretrained_config
    from keras_nfnets.models import VARIANTS
    from keras_nfnets.weights import IMAGENET_PRESETS
    from keras_nfnets.weights.presets import variant

    for name in IMAGENET_PRESETS:  # the builders' default input with weights="imagenet": the checkpoint's size
        _, checkpoint = _pretrained_config(name, VARIANTS[name])
        assert keras_nfnets.eval_transform(name).size == checkpoint.test_size, name
    assert keras_nfnets.eval_transform("NFRegNetB1").size == 288 and variant("NFRegNetB1").test_size == 256
    assert keras_nfnets.NFRegNetB1().input.shape[1] == 256


@pytest.mark.parametrize("model_name", ["NFRegNetB1", "NFNetF0", "ECANFNetL0", "test_nfnet", "NFRegNetB0"])
def test_constant_image_maps_to_its_normalised_colour(model_name):
    transform = eval_transform(model_name)
    colour = np.array([124.0, 116.0, 104.0], "float32")
    out = preprocess_image(np.broadcast_to(colour, (300, 420, 3)), model_name)
    assert out.shape == (transform.size, transform.size, 3)
    expected = (colour / 255 - np.array(transform.mean)) / np.array(transform.std)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=1e-4)


def test_deepmind_rule_squashes_to_size_plus_32_and_crops_the_centre():
    assert eval_transform("NFNetF0").crop == "plus32" and eval_transform("NFNetF0").size == 256
    image = np.random.default_rng(0).uniform(0, 255, (288, 288, 3)).astype("float32")  # already S + 32
    out = preprocess_image(image, "NFNetF0")
    mean, std = np.array(eval_transform("NFNetF0").mean), np.array(eval_transform("NFNetF0").std)
    np.testing.assert_allclose(out, (image[16:272, 16:272] / 255 - mean) / std, atol=1e-4)


def test_center_crop_keeps_the_aspect_ratio():
    image = np.zeros((200, 400, 3), "float32")
    image[:, 200:] = 255.0  # left half black, right half white
    out = preprocess_image(image, "NFRegNetB1")  # 288 px, crop_pct 0.9: short side to 320, centre 288
    white = (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    black = -np.array([0.485, 0.456, 0.406]) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[:, :136], np.broadcast_to(black, out[:, :136].shape), atol=1e-3)
    np.testing.assert_allclose(out[:, 152:], np.broadcast_to(white, out[:, 152:].shape), atol=1e-3)


def test_preprocess_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        preprocess_image(tmp_path / "none.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Cannot decode"):
        preprocess_image(bad)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        preprocess_image(np.zeros((10, 10)))
