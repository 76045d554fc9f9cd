"""The NF blocks' layers (NF paper §4, App. C; NFNet paper §5): squeeze-excite ×2, ECA, stochastic
depth without rescaling, SkipInit gain, symmetric max pooling."""

import numpy as np
import pytest
from keras import ops

import keras
from harness import run_layer_test
from keras_nfnets.layers import ECA, SkipInitGain, SqueezeExcite, StochasticDepth, SymmetricMaxPooling2D, eca_kernel_size


def test_squeeze_excite_rescales_by_two():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5, 5, 16)).astype("float32")
    se = SqueezeExcite(8)
    y = ops.convert_to_numpy(se(x))
    pooled = x.mean(axis=(1, 2))
    hidden = np.maximum(pooled @ se.fc1.kernel.numpy() + se.fc1.bias.numpy(), 0)
    gate = 1 / (1 + np.exp(-(hidden @ se.fc2.kernel.numpy() + se.fc2.bias.numpy())))
    np.testing.assert_allclose(y, 2.0 * gate[:, None, None, :] * x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_squeeze_excite_variance_is_restored_by_the_gain(seed):
    """Unit-Gaussian input (paper §4.4, App. B.3): at initialisation the sigmoid gate sits near 0.5,
    so an unmodified SE keeps a quarter of the variance; the ×2 gain brings it back to ≈ 1."""
    keras.utils.set_random_seed(seed)
    x = np.random.default_rng(seed).standard_normal((64, 8, 8, 64)).astype("float32")
    assert ops.convert_to_numpy(SqueezeExcite(32, gain=1.0)(x)).var() == pytest.approx(0.25, abs=0.03)
    assert ops.convert_to_numpy(SqueezeExcite(32)(x)).var() == pytest.approx(1.0, abs=0.1)


def test_eca_kernel_size_and_output():
    assert [eca_kernel_size(c) for c in (64, 256, 1536, 2048)] == [3, 5, 5, 7]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 4, 32)).astype("float32")
    eca = ECA()
    y = ops.convert_to_numpy(eca(x))
    k = eca.kernel.numpy()[:, 0, 0]
    pooled = np.pad(x.mean(axis=(1, 2)), ((0, 0), (1, 1)))
    logits = np.stack([pooled[:, i:i + 32] for i in range(3)], -1) @ k
    np.testing.assert_allclose(y, 2.0 / (1 + np.exp(-logits))[:, None, None, :] * x, rtol=1e-5, atol=1e-6)


def test_stochastic_depth_has_no_rescale_and_is_identity_at_inference():
    x = np.ones((2000, 1, 1, 1), "float32")
    layer = StochasticDepth(0.3, seed=1)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x, training=False)), x)
    y = ops.convert_to_numpy(layer(x, training=True))
    assert set(np.unique(y)) <= {0.0, 1.0}  # kept examples are not divided by 0.7
    assert abs(1 - y.mean() - 0.3) < 0.04
    with pytest.raises(ValueError, match="rate"):
        StochasticDepth(1.0)


def test_skipinit_gain_starts_at_zero():
    layer = SkipInitGain()
    x = np.ones((1, 2, 2, 3), "float32")
    assert float(np.abs(ops.convert_to_numpy(layer(x))).max()) == 0.0
    assert layer.skip_gain.shape == ()
    layer.skip_gain.assign(0.5)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), 0.5 * x)


@pytest.mark.parametrize("layer_cls,kwargs,weights", [
    (SqueezeExcite, dict(hidden_channels=4), 4), (ECA, dict(kernel_size=5), 1), (StochasticDepth, dict(rate=0.1), 0),
    (SkipInitGain, dict(initial_value=0.5), 1), (SymmetricMaxPooling2D, dict(), 0)])
def test_each_block_layer_passes_the_layer_harness(layer_cls, kwargs, weights):
    out_shape = (2, 4, 4, 8) if layer_cls is SymmetricMaxPooling2D else (2, 8, 8, 8)
    run_layer_test(layer_cls, kwargs, (2, 8, 8, 8), out_shape, expected_trainable_weights=weights)
