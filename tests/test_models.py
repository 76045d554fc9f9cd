import math

import numpy as np
import pytest

import keras
import keras_nfnets
from keras_nfnets import (
    VARIANTS,
    NFNetF0,
    NFRegNetB0,
    NFResNet26,
    block_plan,
    build_nf_model,
    count_flops,
    count_params,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
)
from keras_nfnets.layers import GroupConv2D, ScaledWSConv2D, SkipInitGain, SqueezeExcite, StochasticDepth
from keras_nfnets.applications import BUILDERS


# ---------------------------------------------------------------------------------------------
# Parameter counts derived independently from the config formulas (DeepMind's rules).
def conv_params(k, cin, cout, groups=1):
    return k * k * (cin // groups) * cout + 2 * cout  # kernel + gain + bias


def round_to(value, divisor):
    """timm's make_divisible, written out: nearest multiple, never >10% below."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def expected_params(cfg, classes=1000):
    total = 0
    if cfg.stem == "deep_quad":
        chans = [3, cfg.stem_width // 8, cfg.stem_width // 4, cfg.stem_width // 2, cfg.stem_width]
        total += sum(conv_params(3, a, b) for a, b in zip(chans, chans[1:]))
    else:
        total += conv_params(7 if cfg.stem == "7x7_pool" else 3, 3, cfg.stem_width)
    cin, first = cfg.stem_width, True
    for depth, width, stride in zip(cfg.depths, cfg.widths, cfg.strides):
        for b in range(depth):
            ratio = 1.0 if (first and cfg.first_block_ratio) else cfg.bottleneck_ratio
            mid = (cin if cfg.bottleneck_from == "in" else width) * ratio
            mid = int(mid) if cfg.mid_channel_divisor is None else round_to(mid, cfg.mid_channel_divisor)
            groups = 1
            if cfg.group_width:
                groups = mid // cfg.group_width
                mid = groups * cfg.group_width
            total += conv_params(1, cin, mid) + conv_params(3, mid, mid, groups) + conv_params(1, mid, width)
            if cfg.family == "nfnet":
                total += conv_params(3, mid, mid, groups)
            if cin != width or (b == 0 and stride > 1):
                total += conv_params(1, cin, width)
            if cfg.attention == "se":
                c = mid if cfg.family == "nf_regnet" else width
                h = int(c * cfg.se_ratio)
                total += c * h + h + h * c + c
            elif cfg.attention == "eca":
                t = int(abs(math.log2(width) + 1) / 2)
                total += max(t if t % 2 else t + 1, 3)
            total += 1 if cfg.skipinit else 0  # skip gain
            cin, first = width, False
    if cfg.final_conv_channels:
        total += conv_params(1, cin, cfg.final_conv_channels)
        cin = cfg.final_conv_channels
    return total + cin * classes + classes


def symbolic(builder, **kwargs):
    with keras.StatelessScope(initialize_variables=False):
        return builder(**kwargs)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_count_matches_formula(name):
    model = symbolic(BUILDERS[name])
    assert count_params(model) == expected_params(VARIANTS[name])


# Published counts: DeepMind README / timm results csv (NFNets), DeepMind code (NF-RegNets).
PUBLISHED_PARAMS_M = {
    "NFNetF0": 71.489284, "NFNetF1": 132.63, "NFNetF2": 193.78, "NFNetF3": 254.92, "NFNetF4": 316.07,
    "NFNetF5": 377.21, "NFNetF6": 438.36, "NFNetF7": 499.50, "NFRegNetB0": 8.595, "NFRegNetB5": 48.707,
}
# DeepMind README (F0–F6, test resolution) and DeepMind's counter at 224 for B0 (paper: 0.44B).
PUBLISHED_FLOPS_B = {
    "NFNetF0": 12.38, "NFNetF1": 35.54, "NFNetF2": 62.59, "NFNetF3": 114.76, "NFNetF4": 215.24,
    "NFNetF5": 289.76, "NFNetF6": 377.28, "NFRegNetB0": 0.444, "NFRegNetB1": 0.734,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_M))
def test_parameter_count_matches_published(name):
    assert count_params(symbolic(BUILDERS[name])) / 1e6 == pytest.approx(PUBLISHED_PARAMS_M[name], abs=0.006)


@pytest.mark.parametrize("name", sorted(PUBLISHED_FLOPS_B))
def test_flops_match_published(name):
    assert count_flops(symbolic(BUILDERS[name])) / 1e9 == pytest.approx(PUBLISHED_FLOPS_B[name], rel=2e-3)


def test_exact_f0_parameter_count_equals_deepmind_and_timm():
    assert count_params(symbolic(NFNetF0)) == 71_489_284


# ---------------------------------------------------------------------------------------------
def test_regnet_geometry_is_deepmind_s():
    plan = block_plan(nf_regnet_config("B0"))
    assert nf_regnet_config("B0").widths == (36, 78, 156, 330)
    assert (plan[0]["in_channels"], plan[0]["mid_channels"], plan[0]["groups"]) == (36, 32, 4)  # floor(36/8)*8
    assert plan[1]["mid_channels"] == 80 and plan[1]["groups"] == 10  # int(36*2.25)=81 -> 80
    assert plan[2]["mid_channels"] == 168 and plan[2]["groups"] == 21  # int(78*2.25)=175 -> 168
    assert nf_regnet_config("B0").final_conv_channels == 960
    assert [p["stride"] for p in plan if p["block"] == 1] == [2, 2, 2, 2]


def test_expected_variance_resets_at_transitions():
    alpha = 0.2
    config = nfnet_config("F1")
    plan = block_plan(config)
    for spec in plan:
        if spec["block"] == 1:  # input of a transition: everything the previous stage accumulated
            previous_depth = config.depths[spec["stage"] - 2] if spec["stage"] > 1 else 0
            assert spec["beta"] == pytest.approx(math.sqrt(1 + alpha**2 * previous_depth))
        else:  # reset to 1 after the transition, then + alpha^2 per block
            assert spec["beta"] == pytest.approx(math.sqrt(1 + alpha**2 * (spec["block"] - 1)))
    # stochastic depth grows linearly: rate * i / N, starting at 0
    n = len(plan)
    assert [p["stochastic_depth_rate"] for p in plan] == pytest.approx([0.25 * i / n for i in range(n)])


def test_beta_layers_carry_one_over_expected_std():
    model = NFRegNetB0(input_shape=(64, 64, 3))
    scales = {layer.name: layer.scale for layer in model.layers if layer.name.endswith("_beta")}
    alpha = 0.2
    assert scales["stage1_block1_beta"] == pytest.approx(1.0)
    assert scales["stage2_block1_beta"] == pytest.approx(1 / math.sqrt(1 + alpha**2))  # after stage 1's only block
    assert scales["stage2_block3_beta"] == pytest.approx(1 / math.sqrt(1 + 2 * alpha**2))
    assert scales["stage3_block1_beta"] == pytest.approx(1 / math.sqrt(1 + 3 * alpha**2))


@pytest.mark.parametrize("builder", [NFResNet26, NFRegNetB0, NFNetF0])
def test_every_family_builds_and_gives_finite_outputs(builder):
    model = builder(input_shape=(64, 64, 3))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, SkipInitGain):
            layer.skip_gain.assign(rng.uniform(0.5, 1.0))
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    x = keras_nfnets.preprocess_input(x)
    for training in (False, True):
        y = keras.ops.convert_to_numpy(model(x, training=training))
        assert y.shape == (2, 1000) and np.all(np.isfinite(y))
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-4)


def test_layer_names_read_as_a_path():
    names = {layer.name for layer in NFNetF0(input_shape=(64, 64, 3)).layers}
    for expected in ("stem_conv1", "stem_conv4", "stage1_block1_shortcut_conv", "stage2_block1_shortcut_pool",
                     "stage3_block4_conv2b", "stage3_block4_attention", "stage4_block3_skip_gain",
                     "final_conv", "final_act", "avg_pool", "top_dropout", "predictions"):
        assert expected in names


def _randomise_skip_gains(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, SkipInitGain):
            layer.skip_gain.assign(rng.uniform(0.2, 1.0))


def test_keras_file_round_trip_with_safe_mode(tmp_path):
    model = NFRegNetB0(input_shape=(64, 64, 3), classifier_activation=None)
    _randomise_skip_gains(model)
    dense = model.get_layer("predictions")
    dense.kernel.assign(np.random.default_rng(1).normal(0, 0.05, dense.kernel.shape).astype("float32"))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).standard_normal((2, 64, 64, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), expected)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]


def test_weights_path_loads(tmp_path):
    model = NFResNet26(input_shape=(64, 64, 3))
    _randomise_skip_gains(model)
    path = str(tmp_path / "nf.weights.h5")
    model.save_weights(path)
    clone = NFResNet26(input_shape=(64, 64, 3), weights=path)
    x = np.random.default_rng(3).standard_normal((1, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(x)), keras.ops.convert_to_numpy(model(x)))


@pytest.mark.parametrize("pooling,shape", [(None, (None, 2, 2, 3072)), ("avg", (None, 3072)), ("max", (None, 3072))])
def test_notop_pooling(pooling, shape):
    model = NFNetF0(include_top=False, pooling=pooling, input_shape=(64, 64, 3))
    assert tuple(model.output.shape) == shape


def test_notop_default_shape_is_dynamic_and_any_channels():
    model = NFRegNetB0(include_top=False, input_shape=(None, None, 1))
    assert tuple(model.output.shape) == (None, None, None, 960)
    y = model(np.zeros((1, 96, 80, 1), "float32"))
    assert y.shape == (1, 3, 3, 960)
    assert tuple(NFRegNetB0(include_top=False).input.shape) == (None, None, None, 3)


def test_default_input_shape_is_the_test_size():
    assert tuple(NFRegNetB0().input.shape) == (None, 224, 224, 3)


def test_input_tensor_and_custom_classes_and_logits():
    inputs = keras.Input((72, 72, 4))
    x = keras.layers.Conv2D(3, 1)(inputs)
    model = NFRegNetB0(input_tensor=x, classes=7, classifier_activation=None, drop_rate=0.0)
    assert model.inputs[0] is inputs
    assert tuple(model.output.shape) == (None, 7)
    assert model.get_layer("predictions").activation.__name__ == "linear"
    assert "top_dropout" not in {layer.name for layer in model.layers}


def test_classifier_activation_is_applied():
    assert NFResNet26(input_shape=(64, 64, 3)).layers[-1].activation.__name__ == "softmax"


def test_rate_overrides_reach_the_layers():
    model = NFRegNetB0(input_shape=(64, 64, 3), drop_rate=0.35, stochastic_depth_rate=0.2)
    assert model.get_layer("top_dropout").rate == 0.35
    rates = [layer.rate for layer in model.layers if isinstance(layer, StochasticDepth)]
    assert max(rates) == pytest.approx(0.2 * 15 / 16)


def test_classifier_init():
    regnet = NFRegNetB0(input_shape=(64, 64, 3))
    assert np.all(regnet.get_layer("predictions").kernel.numpy() == 0)  # NF-RegNets: zeros
    nfnet_kernel = NFNetF0(input_shape=(64, 64, 3)).get_layer("predictions").kernel.numpy()
    assert np.std(nfnet_kernel) == pytest.approx(0.01, rel=0.05)


def test_ablation_switches():
    deep = nf_resnet_config([50] * 4, name="nf_resnet600")
    model = symbolic(lambda: build_nf_model(deep, include_top=False))
    assert sum(isinstance(layer, SkipInitGain) for layer in model.layers) == 200

    plain = nf_resnet_config([2, 2, 2, 2], conv_type="plain", skipinit=False, activation="tanh", alpha=0.5,
                             attention="se", attention_gain=1.0, gamma=1.0)
    model = build_nf_model(plain, input_shape=(64, 64, 3))
    convs = [layer for layer in model.layers if isinstance(layer, GroupConv2D)]
    assert convs and not any(isinstance(layer, ScaledWSConv2D) for layer in convs)
    assert not any(isinstance(layer, SkipInitGain) for layer in model.layers)
    se = [layer for layer in model.layers if isinstance(layer, SqueezeExcite)]
    assert len(se) == 8 and se[0].gain == 1.0 and se[0].hidden_channels == 64  # 0.25 * 256
    assert model.get_layer("stage1_block2_alpha").scale == 0.5
    assert model.get_layer("stage1_block1_preact").gamma == 1.0
    assert model.get_layer("stage1_block1_preact").activation == "tanh"


def test_config_validation():
    with pytest.raises(ValueError, match="family"):
        nf_resnet_config([1, 1, 1, 1], family="vgg")
    with pytest.raises(ValueError, match="one entry per stage"):
        nf_resnet_config([1, 1, 1])
    with pytest.raises(ValueError, match="activation"):
        nf_resnet_config([1] * 4, activation="glu")
    with pytest.raises(ValueError, match="stochastic_depth_rate"):
        NFResNet26(stochastic_depth_rate=1.5)
    with pytest.raises(ValueError, match="Unknown NF model"):
        keras_nfnets.get_config("NFNetF9")
    assert keras_nfnets.get_config("nfnet_f1") is VARIANTS["NFNetF1"]


# ---------------------------------------------------------------------------------------------
# keras.applications argument rules
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(weights="no_such_file.weights.h5"), "The `weights` argument should be either"),
        (dict(weights="imagenet", classes=10), "`classes` should be 1000"),
        (dict(weights="imagenet", classifier_activation="relu"), "Only `None` and `softmax`"),
        (dict(weights="imagenet"), "No ImageNet weights exist for NFRegNetB0"),
        (dict(include_top=False, pooling="sum"), "`pooling` must be one of"),
        (dict(include_top=True, pooling="avg"), "only applies when `include_top=False`"),
        (dict(input_shape=(16, 16, 3)), "at least 32x32"),
        (dict(include_top=False, input_shape=(64, 31, 3)), "at least 32x32"),
        (dict(input_shape=(None, None, 3)), "static `input_shape`"),
        (dict(input_shape=(64, 64)), "tuple of three integers"),
        (dict(classes=0), "positive integer"),
    ],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NFRegNetB0(**kwargs)


def test_positional_arguments_are_rejected():
    with pytest.raises(TypeError):
        NFRegNetB0(False)


def test_channels_first_is_rejected():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last"):
            NFRegNetB0()
    finally:
        keras.config.set_image_data_format("channels_last")


def test_docstrings_state_sizes():
    assert "192px for training, 224px for evaluation" in NFRegNetB0.__doc__
    assert NFNetF0.__name__ == "NFNetF0"
