"""The models (keras_nfnets.models): every variant's architecture, parameter and FLOP counts,
the keras.applications arguments, the builders and their stubs."""

import json
import math

import numpy as np
import pytest
from harness import run_variant_test, toy_config

import keras
import keras_nfnets
from keras_nfnets import (
    VARIANTS,
    NFNetF0,
    NFRegNetB0,
    NFResNet26,
    block_plan,
    build_nf_model,
    nf_regnet_config,
    nf_resnet_config,
    nfnet_config,
)
from keras_nfnets.layers import GroupConv2D, ScaledWSConv2D, SkipInitGain, SqueezeExcite, StochasticDepth
from keras_nfnets.applications import BUILDERS

from conftest import needs_timm


# ---------------------------------------------------------------------------------------------
# Parameter and FLOP counts against published figures and a peer implementation (timm).
def symbolic(builder, **kwargs):
    with keras.StatelessScope(initialize_variables=False):
        return builder(**kwargs)


# Published parameter counts (M) and the precision they were published with: DeepMind's nfnets
# README / NFNet paper Table 3 (F0–F6; F0 exactly: "71.49M" in DeepMind's colab, 71,489,284 in
# timm's dm_nfnet_f0) and the NF paper's Table 3 (NF-RegNet-B0–B5).
PUBLISHED_PARAMS_M = {
    "NFNetF0": (71.489284, 1e-6), "NFNetF1": (132.6, 0.05), "NFNetF2": (193.8, 0.05), "NFNetF3": (254.9, 0.05),
    "NFNetF4": (316.1, 0.05), "NFNetF5": (377.2, 0.05), "NFNetF6": (438.4, 0.05),
    "NFRegNetB0": (8.6, 0.05), "NFRegNetB1": (10.0, 0.05), "NFRegNetB2": (13.8, 0.05), "NFRegNetB3": (18.1, 0.05),
    "NFRegNetB4": (29.3, 0.05), "NFRegNetB5": (48.7, 0.05),
}
# Counted by timm's code for DeepMind's layout (tests/timm_reference.py), compared exactly.
PEER_COUNTED = ["NFResNet14", "NFResNet26", "NFResNet50", "NFResNet101", "NFResNet152", "NFResNet200",
                "NFResNet288", *(f"NFNetF{i}" for i in range(8)), "NFRegNetB5", "NFNetL0", "ECANFNetL0",
                "ECANFNetL1", "ECANFNetL2", "ECANFNetL3"]
# Neither published nor expressible in timm (timm rounds mid widths where DeepMind floors them):
# their counts follow from DeepMind's rules alone, checked through the geometry tests below.
DERIVED_ONLY = ["NFRegNetB6", "NFRegNetB7", "NFRegNetB8"]


# Building the largest variants (even shapes only) takes seconds each: those run in the slow set.
LARGE = {"NFResNet200", "NFResNet288", "NFRegNetB6", "NFRegNetB7", "NFRegNetB8", "ECANFNetL2", "ECANFNetL3",
         *(f"NFNetF{i}" for i in range(2, 8))}


def by_size(names):
    return [pytest.param(name, marks=pytest.mark.slow) if name in LARGE else name for name in names]


def test_every_variant_has_a_published_or_peer_count_or_is_listed_as_derived():
    covered = set(PUBLISHED_PARAMS_M) | set(PEER_COUNTED) | set(DERIVED_ONLY)
    assert covered == set(VARIANTS), set(VARIANTS) ^ covered


@pytest.mark.parametrize("name", by_size(sorted(PUBLISHED_PARAMS_M)))
def test_parameter_count_matches_published(name, built_counts):
    published, precision = PUBLISHED_PARAMS_M[name]
    assert built_counts(name)[0] / 1e6 == pytest.approx(published, abs=precision)


@needs_timm
@pytest.mark.parametrize("name", by_size(PEER_COUNTED))
def test_parameter_count_equals_timms_count_of_the_same_layout(name, timm_reference, built_counts):
    peer = json.loads((timm_reference / "peer_params.json").read_text())
    assert built_counts(name)[0] == peer[name]


# Published FLOPs (B, multiply-adds at the test size), with the precision they were published with:
# DeepMind's README (F0–F6, DeepMind's count_conv_flops) and the NF paper's Table 3 (B0–B5). For
# B2 and B5 the paper's figures are 4–5% below ours: DeepMind's counter sizes feature maps by
# dividing the input by the stride (272 / 32 = 8.5), where the network really computes the
# rounded-up 9 × 9 maps that we count; at sizes divisible by 32 the counts agree (B0, B1, B3, B4).
PUBLISHED_FLOPS_B = {
    "NFNetF0": (12.38, 0.005), "NFNetF1": (35.54, 0.005), "NFNetF2": (62.59, 0.005), "NFNetF3": (114.76, 0.005),
    "NFNetF4": (215.24, 0.005), "NFNetF5": (289.76, 0.005), "NFNetF6": (377.28, 0.005),
    "NFRegNetB0": (0.44, 0.005), "NFRegNetB1": (0.73, 0.005), "NFRegNetB2": (1.10, 0.05), "NFRegNetB3": (2.00, 0.005),
    "NFRegNetB4": (4.47, 0.005), "NFRegNetB5": (10.56, 0.55),
}


@pytest.mark.parametrize("name", by_size(sorted(PUBLISHED_FLOPS_B)))
def test_flops_match_published(name, built_counts):
    published, tolerance = PUBLISHED_FLOPS_B[name]
    assert built_counts(name)[1] / 1e9 == pytest.approx(published, abs=tolerance)


def test_exact_f0_parameter_count_equals_deepmind_and_timm(built_counts):
    assert built_counts("NFNetF0")[0] == 71_489_284


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


def test_preactivations_carry_one_over_expected_std_and_the_gains_alpha():
    """Each block's γ·g(x)/β is one layer (its ``scale`` is 1/β), α joins the SkipInit gain."""
    model = NFRegNetB0(input_shape=(64, 64, 3))
    scales = {layer.name: layer.scale for layer in model.layers if layer.name.endswith("_preact")}
    alpha = 0.2
    assert scales["stage1_block1_preact"] == pytest.approx(1.0)
    assert scales["stage2_block1_preact"] == pytest.approx(1 / math.sqrt(1 + alpha**2))  # after stage 1's only block
    assert scales["stage2_block3_preact"] == pytest.approx(1 / math.sqrt(1 + 2 * alpha**2))
    assert scales["stage3_block1_preact"] == pytest.approx(1 / math.sqrt(1 + 3 * alpha**2))
    gains = [layer.scale for layer in model.layers if isinstance(layer, SkipInitGain)]
    assert gains and gains == pytest.approx([alpha] * len(gains))


@pytest.mark.parametrize("builder", [NFResNet26, NFRegNetB0, NFNetF0])
def test_every_family_builds_and_gives_finite_outputs(builder):
    """Finite, input-dependent logits; deterministic at inference, stochastic (dropout, stochastic
    depth) in training."""
    model = builder(input_shape=(64, 64, 3), classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, SkipInitGain):
            layer.skip_gain.assign(rng.uniform(0.5, 1.0))
    head = model.get_layer("predictions")
    head.kernel.assign(rng.normal(0, 0.05, head.kernel.shape).astype("float32"))
    x = keras_nfnets.preprocess_input(rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32"))
    inference = keras.ops.convert_to_numpy(model(x, training=False))
    assert inference.shape == (2, 1000) and np.all(np.isfinite(inference))
    assert np.abs(inference[0] - inference[1]).max() > 1e-3  # the two images get different logits
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)), inference)
    training = keras.ops.convert_to_numpy(model(x, training=True))
    assert np.all(np.isfinite(training)) and np.abs(training - inference).max() > 1e-4


def test_layer_names_read_as_a_path():
    names = {layer.name for layer in NFNetF0(input_shape=(64, 64, 3)).layers}
    for expected in ("stem_conv1", "stem_conv4", "stage1_block1_shortcut_conv", "stage2_block1_shortcut_pool",
                     "stage3_block4_conv2b", "stage3_block4_attention", "stage4_block3_skip_gain",
                     "final_conv", "final_act", "avg_pool", "top_dropout", "predictions"):
        assert expected in names


def test_the_name_contract_parses_what_the_builder_names():
    """keras_nfnets.names: every block layer parses back to its stage, block and part; each block
    ends in its Add(shortcut, branch); the classifier is found by name (AGC leaves its kernel alone)."""
    from keras_nfnets import names
    from keras_nfnets.graph import producer
    from keras_nfnets.optimizers import DEFAULT_AGC_EXCLUDE

    model = NFNetF0(input_shape=(64, 64, 3))
    blocks = {}
    for layer in model.layers:
        parsed = names.parse_block_layer(layer.name)
        if parsed:
            stage, index, part = parsed
            assert layer.name == names.block_layer(names.block(stage, index), part)
            blocks.setdefault((stage, index), set()).add(part)
    assert sorted(blocks) == [(s, b) for s, depth in enumerate((1, 2, 6, 3), 1) for b in range(1, depth + 1)]
    assert all({"conv1", "conv2", "conv3", "add"} <= parts for parts in blocks.values())
    add = model.get_layer(names.block_output(names.block(2, 1)))
    assert producer(add.input[0]).name == "stage2_block1_shortcut_conv"  # input 0: the shortcut
    assert producer(add.input[1]).name == "stage2_block1_skip_gain"       # input 1: α · gain · branch
    assert names.has_classifier(model) and not names.has_classifier(NFNetF0(include_top=False))
    assert model.get_layer(names.CLASSIFIER).kernel.path in DEFAULT_AGC_EXCLUDE
    assert names.parse_block_layer("stem_conv1") is None and not names.is_block_output("stage1_block1_conv1")


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


def test_a_truncated_weights_file_is_named_in_the_error(tmp_path):
    model = NFResNet26(input_shape=(64, 64, 3))
    path = tmp_path / "nf.weights.h5"
    model.save_weights(str(path))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"Cannot load the weights file '.*nf\.weights\.h5' into 'nf_resnet26'.*truncated"):
        NFResNet26(input_shape=(64, 64, 3), weights=str(path))


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
    """The builders default to their row's test size (DeepMind's tables; timm's for the lighter
    NFNets); every row's evaluation crop is one EvalTransform knows."""
    from keras_nfnets import registry
    from keras_nfnets.data.transforms import EVAL_CROPS

    assert tuple(NFRegNetB0().input.shape) == (None, 224, 224, 3)  # DeepMind: B0 trains at 192, tests at 224
    with keras.StatelessScope(initialize_variables=False):  # shapes only
        assert keras_nfnets.NFNetF1().input.shape[1] == 320 and keras_nfnets.NFNetL0().input.shape[1] == 288
    assert all(row.eval_crop in EVAL_CROPS for row in registry.ROWS.values())


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


@pytest.mark.slow
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
    from keras_nfnets.registry import ModelRow

    with pytest.raises(ValueError, match="family"):
        ModelRow("NFResNet4", nf_resnet_config([1, 1, 1, 1]), "vgg", 224, 224, "center", 0.875)
    with pytest.raises(ValueError, match="crop_pct goes with eval_crop='center'"):
        ModelRow("NFResNet4", nf_resnet_config([1, 1, 1, 1]), "nf_resnet", 224, 224, "plus32", 0.875)
    with pytest.raises(TypeError, match="family"):  # an architecture has no recipe family
        nf_resnet_config([1, 1, 1, 1], family="nf_resnet")
    with pytest.raises(ValueError, match="one entry per stage"):
        nf_resnet_config([1, 1, 1])
    with pytest.raises(ValueError, match="activation"):
        nf_resnet_config([1] * 4, activation="glu")
    with pytest.raises(ValueError, match="stochastic_depth_rate"):
        NFResNet26(stochastic_depth_rate=1.5)
    with pytest.raises(ValueError, match="Unknown NF model"):
        keras_nfnets.get_config("NFNetF9")
    assert keras_nfnets.get_config("NFNetF1") is VARIANTS["NFNetF1"]
    assert keras_nfnets.get_config("nf_resnet14") is VARIANTS["NFResNet14"]  # a builder's config name


# ---------------------------------------------------------------------------------------------
# keras.applications argument rules
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(weights="no_such_file.weights.h5"), r"The `weights` argument should be either.*no file exists at that path"),
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


@pytest.mark.parametrize("builder", [keras_nfnets.NFRegNetB1, keras_nfnets.NFNetF0])
def test_pretrained_weights_need_three_channels_before_anything_loads(builder, monkeypatch):
    """keras.applications' rule and message, raised before any download is tried."""
    import keras_nfnets.applications as applications

    monkeypatch.setattr(applications, "load_pretrained", lambda *a: pytest.fail("tried to load weights"))
    with pytest.raises(ValueError, match=r"The input must have 3 channels; Received `input_shape=\(None, None, 1\)`"):
        builder(weights="imagenet", include_top=False, input_shape=(None, None, 1))
    with pytest.raises(ValueError, match="The input must have 3 channels"):
        keras_nfnets.from_timm("nf_regnet_b1", include_top=False, input_shape=(64, 64, 4))


def test_block_layout_comes_from_the_config_not_the_family():
    """extra_conv and attention_position are config fields: a ResNet-family config can ask for both."""
    config = nf_resnet_config([1, 1, 1, 1], attention="se", attention_position="mid", extra_conv=True)
    names = [layer.name for layer in build_nf_model(config, include_top=False, input_shape=(64, 64, 3)).layers]
    block = [n for n in names if n.startswith("stage1_block1_")]
    assert "stage1_block1_conv2b" in block
    assert block.index("stage1_block1_attention") < block.index("stage1_block1_conv3")
    plain = [layer.name for layer in build_nf_model(nf_resnet_config([1, 1, 1, 1], attention="se"), include_top=False,
                                                    input_shape=(64, 64, 3)).layers]
    assert "stage1_block1_conv2b" not in plain
    assert plain.index("stage1_block1_attention") > plain.index("stage1_block1_conv3")


def test_models_package_imports_in_one_direction():
    """config <- timm_configs <- variants <- builder: no module imports one further down the line."""
    import ast
    import pathlib

    order = ["config", "timm_configs", "variants", "builder"]
    root = pathlib.Path(keras_nfnets.__file__).parent / "models"
    for position, module in enumerate(order):
        tree = ast.parse((root / f"{module}.py").read_text())
        imported = {node.module.rsplit(".", 1)[-1] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_nfnets.models")}
        later = imported & set(order[position:])
        assert not later, f"models/{module}.py imports {later}"


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


@pytest.mark.slow
def test_the_stored_counts_are_the_built_models(built_counts):
    """`nfnets models` and the README's table print models/counts.py without building; every row
    equals a shapes-only build of its variant (a changed architecture fails here; the builds are
    shared with the published-count tests above)."""
    from keras_nfnets.models.counts import COUNTS

    assert list(COUNTS) == list(VARIANTS)
    for name in VARIANTS:
        assert built_counts(name) == COUNTS[name], name


def test_builders_and_their_stubs_come_from_the_variant_table():
    """One builder per variant row with the keras.applications signature written once
    (models/arguments.py); the .pyi stubs IDEs read are the generated ones (tools/write_stubs.py)."""
    import inspect
    import pathlib

    from keras_nfnets import applications

    from conftest import tool_module

    _stubs = tool_module("write_stubs")
    from keras_nfnets.models.arguments import ApplicationArgs
    from keras_nfnets.models.variants import VARIANTS

    assert list(applications.BUILDERS) == list(VARIANTS) and set(VARIANTS) <= set(keras_nfnets.__all__)
    fields = [f.name for f in __import__("dataclasses").fields(ApplicationArgs)]
    for name, builder in applications.BUILDERS.items():
        assert getattr(keras_nfnets, name) is builder and builder.__name__ == name
        parameters = inspect.signature(builder).parameters
        assert list(parameters) == fields and all(p.kind is p.KEYWORD_ONLY for p in parameters.values())
        assert f"Instantiates the {name} architecture" in builder.__doc__ and "stochastic_depth_rate:" in builder.__doc__
    with pytest.raises(TypeError, match=r"NFNetF0\(\) got an unexpected keyword argument 'input_size'"):
        keras_nfnets.NFNetF0(input_size=64)
    package = pathlib.Path(keras_nfnets.__file__).parent
    for file, make in _stubs.STUBS.items():
        assert (package / file).read_text() == make(), f"{file} is stale: run python tools/write_stubs.py"


@pytest.mark.parametrize("family", ["nf_resnet", "nf_regnet", "nfnet"])
def test_each_family_passes_the_variant_harness(family):
    """Each family's blocks at toy size (tests/harness.py): logits, parameters, .keras file,
    clone_model and get_config keep the model and what it is; the features have the config's width."""
    run_variant_test(toy_config(family))
