import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ENV

import keras_nfnets
from keras_nfnets import decode_predictions, imagenet_classes, preprocess_input
from keras_nfnets.cli import main


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


def test_models_command_prints_counts(capsys):
    assert main(["models", "NFRegNetB0", "NFNetF0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:9] == ["model", "params", "(M)", "FLOPs", "(B)", "train", "px", "test", "px"]
    assert out[2].split() == ["NFRegNetB0", "8.595", "0.444", "192", "224", "-"]
    assert out[3].split() == ["NFNetF0", "71.489", "12.384", "192", "256", "dm_nfnet_f0.dm_in1k", "(83.47%)"]


def test_models_command_rejects_unknown_names():
    with pytest.raises(SystemExit, match="Unknown model"):
        main(["models", "ResNet50"])


def test_console_script_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "keras_nfnets.cli", "models", "NFResNet26"], capture_output=True, text=True, timeout=300,
        env=REPO_ENV,
    )
    assert result.returncode == 0, result.stderr
    assert "NFResNet26" in result.stdout and "15.995" in result.stdout


def test_public_api_is_reachable():
    for name in ("NFRegNetB1", "NFNetF7", "NFResNet288", "ScaledWSConv2D", "estimate_gamma", "preprocess_input",
                 "decode_predictions", "build_nf_model", "count_flops", "NFConfig"):
        assert hasattr(keras_nfnets, name), name


# --- evaluation preprocessing per checkpoint ---------------------------------------------------
from keras_nfnets import eval_transform, preprocess_image  # noqa: E402


@pytest.mark.parametrize("model_name", ["NFRegNetB1", "NFNetF0", "ECANFNetL0", "test_nfnet", "NFRegNetB0"])
def test_constant_image_maps_to_its_normalised_colour(model_name):
    transform = eval_transform(model_name)
    colour = np.array([124.0, 116.0, 104.0], "float32")
    out = preprocess_image(np.broadcast_to(colour, (300, 420, 3)), model_name)
    assert out.shape == (transform.test_size, transform.test_size, 3)
    expected = (colour / 255 - np.array(transform.mean)) / np.array(transform.std)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=1e-4)


def test_deepmind_rule_squashes_to_size_plus_32_and_crops_the_centre():
    assert eval_transform("NFNetF0").crop == "plus32" and eval_transform("NFNetF0").test_size == 256
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


def test_predict_command_prints_top5(tmp_path, timm_reference, capsys):
    import tensorflow as tf

    image = tmp_path / "image.png"
    tf.io.write_file(str(image), tf.io.encode_png(np.random.default_rng(0).integers(0, 255, (90, 120, 3), "uint8")))
    assert main(["predict", str(image), "--model", "test_nfnet", "--checkpoint",
                 str(timm_reference / "test_nfnet.safetensors")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{image}:" and len(lines) == 6
    assert lines[1].strip().startswith("1. ") and lines[1].strip().endswith(")") and "%" in lines[1]
