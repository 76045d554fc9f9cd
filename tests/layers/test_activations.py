"""Activations scaled by γ (NF paper §4.1, App. D): the γ table, GammaActivation, the fused kernels."""

import math

import numpy as np
import pytest
from keras import ops

from harness import run_layer_test
from keras_nfnets.layers import GAMMA, GammaActivation, estimate_gamma, get_activation_fn


@pytest.mark.parametrize("name", ["relu", "silu", "gelu", "tanh", "elu", "softplus", "sigmoid", "leaky_relu"])
def test_estimate_gamma_reproduces_the_table(name):
    gamma = estimate_gamma(get_activation_fn(name), num_samples=4096, width=256, seed=0)
    assert gamma == pytest.approx(GAMMA[name], rel=5e-3)


def test_estimate_gamma_matches_analytic_relu():
    analytic = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))  # NFNet paper §3
    assert estimate_gamma(np.vectorize(lambda v: max(v, 0.0)), num_samples=512, width=256) == pytest.approx(
        analytic, rel=1e-2
    )


def test_estimate_gamma_accepts_numpy_and_is_seeded():
    fn = lambda x: np.maximum(x, 0.0) ** 2  # noqa: E731 - a made-up nonlinearity
    assert estimate_gamma(fn, seed=3) == estimate_gamma(fn, seed=3)
    assert estimate_gamma(fn, seed=3) != estimate_gamma(fn, seed=4)


@pytest.mark.parametrize(
    "fn,match", [(lambda x: 0.0 * x, "zero"), ("relu", "callable"), (lambda x: x[:1], "batch dimension")]
)
def test_estimate_gamma_errors(fn, match):
    with pytest.raises((ValueError, TypeError), match=match):
        estimate_gamma(fn)


def test_gamma_activation_scales_and_serialises():
    x = np.linspace(-3, 3, 13, dtype="float32")
    layer = GammaActivation("silu")
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), GAMMA["silu"] * ops.convert_to_numpy(ops.silu(x)), rtol=1e-6
    )
    clone = GammaActivation.from_config(layer.get_config())
    assert clone.gamma == layer.gamma and clone.activation == "silu"
    assert GammaActivation("relu", gamma=1.0).gamma == 1.0


@pytest.mark.parametrize("activation", ["relu", "silu", "gelu"])
def test_gamma_activation_passes_the_layer_harness(activation):
    run_layer_test(GammaActivation, dict(activation=activation), (2, 4, 4, 8), (2, 4, 4, 8),
                   expected_trainable_weights=0)


def test_gelu_is_the_tanh_approximation_and_gelu_exact_is_erf():
    x = np.array([-2.0, -0.5, 0.5, 2.0], "float32")
    tanh_gelu = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(ops.convert_to_numpy(get_activation_fn("gelu")(x)), tanh_gelu, rtol=1e-5)
    erf_gelu = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    np.testing.assert_allclose(ops.convert_to_numpy(get_activation_fn("gelu_exact")(x)), erf_gelu, rtol=1e-5)


def test_unknown_activation():
    with pytest.raises(ValueError, match="Unknown activation"):
        GammaActivation("swish")
    with pytest.raises(ValueError, match="estimate_gamma"):
        from keras_nfnets.layers import get_gamma

        get_gamma("swish")


@pytest.mark.parametrize("name", ["silu", "gelu", "relu", "tanh", "elu"])
def test_fused_kernel_matches_plain_ops_forward_and_backward(name, monkeypatch):
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).standard_normal((4, 6, 6, 8)).astype("float32"))
    results = {}
    for fused in ("1", "0"):
        monkeypatch.setenv("KERAS_NFNETS_FUSED_KERNELS", fused)
        layer = GammaActivation(name)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.sin(x))
        results[fused] = (y.numpy(), tape.gradient(loss, x).numpy())
    for fused_value, plain_value in zip(results["1"], results["0"]):
        np.testing.assert_allclose(fused_value, plain_value, rtol=1e-5, atol=1e-6)


def test_fused_kernel_under_mixed_precision():
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = GammaActivation("silu")
    y = layer(np.ones((2, 3), "float32"))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    np.testing.assert_allclose(np.asarray(y, "float32"), GAMMA["silu"] * 0.7310586, rtol=1e-2)


def test_eager_calls_at_new_sizes_do_not_retrace_or_warn(capfd):
    """A plain forward pass, called eagerly at several input sizes (as SPP and users do), prints no
    TensorFlow retracing warnings: the fused kernels trace once with relaxed shapes."""
    import keras_nfnets

    model = keras_nfnets.build_nf_model(keras_nfnets.nf_regnet_config("B0", depths=(1, 1, 1, 1)), include_top=False)
    capfd.readouterr()
    for size in (32, 40, 48, 56, 64, 72, 80):
        model(np.zeros((1, size, size, 3), "float32"))
    assert "retracing" not in capfd.readouterr().err
