"""Issue 37: a model knows what it is (its NFConfig and checkpoint row travel with it through
.keras files, clone_model, weights files and keras-hub presets), and its multi-scale features
(pyramid_outputs P1…P5) equal timm's features_only maps."""

import json

import numpy as np
import pytest

import keras
import keras_nfnets
from keras_nfnets.models.model import NFModel, pyramid_layers, pyramid_model
from keras_nfnets.weights.presets import CHECKPOINTS

from conftest import needs_timm

FEATURE_INPUT = (96, 160)  # tests/timm_reference.py's non-square input


def test_a_model_records_its_architecture_through_save_load_clone_and_weights_files(tmp_path):
    model = keras_nfnets.from_timm("test_nfnet", pretrained=False, input_shape=(64, 64, 3))
    assert type(model) is NFModel and model.architecture == keras_nfnets.timm_config("test_nfnet")
    model.with_checkpoint(CHECKPOINTS["test_nfnet.r160_in1k"])
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))

    model.save(tmp_path / "model.keras")
    loaded = keras_nfnets.load_model(tmp_path / "model.keras")
    assert type(loaded) is NFModel and loaded.architecture == model.architecture
    assert loaded.checkpoint == CHECKPOINTS["test_nfnet.r160_in1k"]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), expected)
    config = json.loads(json.dumps(model.get_config()))  # JSON only: no pickled objects
    assert config["architecture"]["name"] == "test_nfnet" and config["checkpoint"]["tag"] == "test_nfnet.r160_in1k"

    clone = keras.models.clone_model(model)
    assert type(clone) is NFModel and clone.architecture == model.architecture and clone.checkpoint == model.checkpoint
    assert clone.get_layer("stem_conv1") is not model.get_layer("stem_conv1")  # a clone: new layers

    model.save_weights(tmp_path / "w.weights.h5")
    other = keras_nfnets.NFNetF0(input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="holds test_nfnet weights"):
        keras_nfnets.NFNetF0(weights=str(tmp_path / "w.weights.h5"))
    with pytest.raises(ValueError, match="the architecture 'test_nfnet', not 'nfnet_f0'"):
        keras_nfnets.models.builder.load_weights_file(other, tmp_path / "w.weights.h5")


def test_builders_record_their_architecture_and_the_checkpoints_eval_transform():
    """A builder's model is its variant's config (overrides of regularisation included); the eval
    transform follows the recorded checkpoint, else the variant's crop rule."""
    model = keras_nfnets.NFRegNetB0(input_shape=(64, 64, 3), drop_rate=0.5)
    assert model.architecture == keras_nfnets.get_config("NFRegNetB0").replace(drop_rate=0.5)
    assert model.checkpoint is None
    assert keras_nfnets.eval_transform(model).crop == "crop_resize" and keras_nfnets.eval_transform(model).size == 64
    timm_model = keras_nfnets.from_timm("nf_regnet_b1", pretrained=False, input_shape=(64, 64, 3))
    assert keras_nfnets.eval_transform(timm_model).crop == "center"
    timm_model.with_checkpoint(CHECKPOINTS["nf_regnet_b1.ra2_in1k"])
    assert keras_nfnets.eval_transform(timm_model) == CHECKPOINTS["nf_regnet_b1.ra2_in1k"].eval_transform(64)
    with pytest.raises(ValueError, match="not a keras_nfnets model"):
        keras_nfnets.eval_transform(keras.Model(model.input, model.output))


@pytest.mark.parametrize("builder", ["NFResNet26", "NFRegNetB0", "NFNetF0", "BNResNetV2"])
def test_pyramid_outputs_have_keras_hubs_levels_at_strides_two_to_thirty_two(builder):
    model = getattr(keras_nfnets, builder)(include_top=False)
    height, width = FEATURE_INPUT
    features = pyramid_model(model)(np.zeros((1, height, width, 3), "float32"))
    assert list(features) == ["P1", "P2", "P3", "P4", "P5"]
    for level, tensor in features.items():
        stride = 2 ** int(level[1:])
        assert tensor.shape[1:3] == (-(-height // stride), -(-width // stride)), (level, tensor.shape)
    assert features["P5"].shape[-1] == model.output.shape[-1]  # the last level: the features before the final act
    with pytest.raises(ValueError, match="no pyramid level 'P6'; its levels are P1 \\(stride 2\\)"):
        pyramid_model(model, ["P3", "P6"])
    with pytest.raises(ValueError, match="not a keras_nfnets model"):
        pyramid_model(keras.Model(model.input, model.output))


def test_pyramid_refuses_channels_first():
    previous = keras.config.image_data_format()
    model = keras_nfnets.NFRegNetB0(include_top=False)
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last"):
            pyramid_model(model)
        with pytest.raises(ValueError, match="channels_last"):
            keras_nfnets.NFRegNetB0(include_top=False)
    finally:
        keras.config.set_image_data_format(previous)


@pytest.mark.slow
@needs_timm
@pytest.mark.parametrize("name", ["nf_resnet50", "nf_regnet_b1", "test_nfnet", "dm_nfnet_f0"])
def test_pyramid_outputs_equal_timms_features_only_maps(timm_reference, name):
    """One model of each family (NF-ResNet, NF-RegNet, timm's and DeepMind's NFNet layouts) at a
    non-square input: every level equals timm's ``features_only=True`` map (< 1e-5 of its scale),
    and timm's feature_info reductions are ours."""
    reference = np.load(timm_reference / f"{name}_features.npz")
    model = keras_nfnets.from_timm(name, checkpoint=str(timm_reference / f"{name}.safetensors"), include_top=False)
    levels = [f"P{int(np.log2(r))}" for r in reference["reductions"]]
    assert levels == list(pyramid_layers(model.architecture))
    features = pyramid_model(model)(reference["x"])
    for index, level in enumerate(levels):
        expected, got = reference[f"feature{index}"], keras.ops.convert_to_numpy(features[level])
        assert got.shape == expected.shape, (level, got.shape, expected.shape)
        error = np.abs(got - expected).max() / np.abs(expected).max()
        assert error < 1e-5, (name, level, error)


def test_a_keras_hub_preset_keeps_the_architecture_and_the_checkpoint(tmp_path):
    pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")
    import keras_hub

    from keras_nfnets.kerashub import NFNetBackbone, save_preset

    model = keras_nfnets.from_timm("test_nfnet", pretrained=False, input_shape=(64, 64, 3))
    model.with_checkpoint(CHECKPOINTS["test_nfnet.r160_in1k"])
    save_preset(model, tmp_path / "preset")
    backbone = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    assert type(backbone) is NFNetBackbone and backbone.architecture == model.architecture
    assert backbone.checkpoint == CHECKPOINTS["test_nfnet.r160_in1k"]
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["architecture"] == "test_nfnet" and metadata["checkpoint"] == "test_nfnet.r160_in1k"


def test_image_sizes_come_from_one_place():
    """A builder's sizes are its variant row's, a timm name's its checkpoint's (the paper's and
    timm's published sizes: NF-RegNet-B1 224/256; timm's nf_regnet_b1 checkpoint 256/288)."""
    from keras_nfnets.weights.presets import image_sizes

    assert image_sizes("NFRegNetB1") == (224, 256) and image_sizes("NFNetF3") == (320, 416)
    assert image_sizes("nf_regnet_b1") == (256, 288) and image_sizes("dm_nfnet_f1.dm_in1k") == (224, 320)
    assert keras_nfnets.from_timm("nf_regnet_b1", pretrained=False).input.shape[1] == 288
    assert keras_nfnets.NFRegNetB1().input.shape[1] == 256
