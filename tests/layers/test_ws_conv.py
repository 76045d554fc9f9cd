"""ScaledWSConv2D (NF paper §4.2, eq. 2; NFNet paper §3): the kernel standardized at call time,
its eps rules, grouped paths, gradients and float32 statistics."""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import keras
from harness import run_layer_test
from keras_nfnets.layers import (
    GroupConv2D,
    ScaledWSConv2D,
    conv2d,
    grouped_conv_implementation,
    native_grouped_conv_supported,
)


def numpy_ws(kernel, gain, eps, eps_mode, gamma=1.0):
    """Scaled WS by the formula: gamma * gain * (W - mean) / sqrt(N var), HWIO kernel."""
    fan_in = np.prod(kernel.shape[:-1])
    mean = kernel.mean(axis=(0, 1, 2), keepdims=True)
    var = kernel.var(axis=(0, 1, 2), keepdims=True)
    if eps_mode == "floor":
        denom = np.sqrt(np.maximum(fan_in * var, eps))
    else:
        denom = np.sqrt(var + eps) * np.sqrt(fan_in)
    return gamma * gain * (kernel - mean) / denom


def numpy_grouped_conv(x, w, groups, stride=1, pad=((1, 1), (1, 1))):
    """Direct NHWC grouped convolution with explicit zero padding."""
    x = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    kh, kw, cin_g, cout = w.shape
    cout_g = cout // groups
    n, h, wd, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, cout))
    for g in range(groups):
        xs = x[..., g * cin_g:(g + 1) * cin_g]
        ws = w[..., g * cout_g:(g + 1) * cout_g]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
                out[..., g * cout_g:(g + 1) * cout_g] += np.einsum("nhwc,co->nhwo", patch, ws[i, j])
    return out


def _randomised(layer, rng):
    layer.kernel.assign(rng.standard_normal(layer.kernel.shape).astype("float32") * 0.3 + 0.05)
    if getattr(layer, "gain", None) is not None:
        layer.gain.assign(rng.uniform(0.5, 1.5, layer.gain.shape).astype("float32"))
    if layer.bias is not None:
        layer.bias.assign(rng.standard_normal(layer.bias.shape).astype("float32") * 0.1)
    return layer


@pytest.mark.parametrize("eps_mode,eps", [("floor", 1e-4), ("add", 1e-5)])
@pytest.mark.parametrize("groups", [1, 4])
def test_standardized_kernel_matches_numpy(eps_mode, eps, groups):
    rng = np.random.default_rng(0)
    layer = ScaledWSConv2D(8, 3, groups=groups, eps=eps, eps_mode=eps_mode, gamma=1.7)
    layer.build((None, 6, 6, 8))
    _randomised(layer, rng)
    expected = numpy_ws(layer.kernel.numpy(), layer.gain.numpy(), eps, eps_mode, gamma=1.7)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.effective_kernel()), expected, rtol=1e-5, atol=1e-6)


def test_eps_rules_differ_where_variance_is_tiny():
    layer_floor = ScaledWSConv2D(2, 1, eps_mode="floor", eps=1e-4)
    layer_add = ScaledWSConv2D(2, 1, eps_mode="add", eps=1e-4)
    for layer in (layer_floor, layer_add):
        layer.build((None, 4, 4, 4))
        # N * var = 7.5e-5 < eps: the floor rule clamps, the additive rule does not.
        layer.kernel.assign(np.array([0.0, 0.0, 0.0, 0.01], "float32").reshape(1, 1, 4, 1).repeat(2, axis=-1))
    kernel = layer_floor.kernel.numpy().astype("float64")
    results = {}
    for layer, mode in ((layer_floor, "floor"), (layer_add, "add")):
        results[mode] = ops.convert_to_numpy(layer.effective_kernel())
        np.testing.assert_allclose(results[mode], numpy_ws(kernel, 1.0, 1e-4, mode), rtol=1e-5)
    np.testing.assert_allclose(results["floor"][0, 0, 3, 0], 0.0075 / 0.01, rtol=1e-5)  # (w - mean) / sqrt(eps)
    assert abs(results["floor"][0, 0, 3, 0] - results["add"][0, 0, 3, 0]) > 0.1


@pytest.mark.parametrize("groups,stride", [(1, 1), (4, 1), (4, 2), (8, 2)])
def test_forward_matches_numpy_conv(groups, stride):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 8, 16)).astype("float32")
    layer = ScaledWSConv2D(16, 3, strides=stride, groups=groups, padding="symmetric")
    layer(x)
    _randomised(layer, rng)
    w_hat = numpy_ws(layer.kernel.numpy(), layer.gain.numpy(), 1e-4, "floor")
    expected = numpy_grouped_conv(x, w_hat, groups, stride) + layer.bias.numpy()
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), expected, rtol=1e-4, atol=1e-4)


def test_same_padding_is_tensorflow_same():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 8, 8, 4)).astype("float32")
    layer = ScaledWSConv2D(4, 3, strides=2, padding="same")
    layer(x)
    _randomised(layer, rng)
    w_hat = numpy_ws(layer.kernel.numpy(), layer.gain.numpy(), 1e-4, "floor")
    # TF SAME for 3x3/2 on even input pads 0 before and 1 after.
    expected = numpy_grouped_conv(x, w_hat, 1, 2, pad=((0, 1), (0, 1))) + layer.bias.numpy()
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), expected, rtol=1e-4, atol=1e-4)
    assert layer.compute_output_shape((1, 8, 8, 4)) == (1, 4, 4, 4)


def test_gradient_flows_through_standardization():
    """Call-time WS: the kernel gradient is the gradient through the standardization."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((2, 5, 5, 3)).astype("float32"))
    layer = ScaledWSConv2D(4, 3)
    layer(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2)
    grad_kernel, grad_gain = tape.gradient(loss, [layer.kernel, layer.gain])
    # The standardized kernel is invariant to shifting and scaling W per output channel,
    # so the gradient is orthogonal to both directions.
    g = grad_kernel.numpy().reshape(-1, 4)
    w = layer.kernel.numpy().reshape(-1, 4)
    np.testing.assert_allclose(g.sum(axis=0), 0.0, atol=1e-3 * np.abs(g).max())
    np.testing.assert_allclose((g * (w - w.mean(axis=0))).sum(axis=0), 0.0, atol=1e-3 * np.abs(g).max())
    assert np.all(np.isfinite(grad_gain.numpy())) and np.abs(grad_gain.numpy()).max() > 0


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_statistics_in_float32_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    rng = np.random.default_rng(4)
    layer = ScaledWSConv2D(8, 3, groups=2)
    x = rng.standard_normal((2, 6, 6, 8)).astype("float32")
    y = layer(x)
    assert layer.kernel.dtype == "float32" and layer.gain.dtype == "float32"
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    # A kernel with an offset and a small spread: float16 statistics (ulp 0.008 at 10) would lose it.
    kernel = (10.0 + rng.standard_normal(layer.kernel.shape) * 1e-2).astype("float32")
    assert np.std(kernel.astype("float16").astype("float64") - kernel) > 1e-3
    layer.kernel.assign(kernel)
    expected = numpy_ws(kernel.astype("float64"), 1.0, 1e-4, "floor")
    np.testing.assert_allclose(ops.convert_to_numpy(layer.effective_kernel()), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("activation_gamma", [("relu", 1.7139588594436646), ("silu", 1.7881293296813965)])
def test_variance_preserved_at_initialisation(activation_gamma):
    """A wide Scaled-WS conv fed gamma*g(x), x ~ N(0,1), outputs unit variance and zero mean (§4.2)."""
    name, gamma = activation_gamma
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 16, 16, 512)).astype("float32")
    h = gamma * ops.convert_to_numpy(keras.activations.get(name)(x))
    layer = ScaledWSConv2D(256, 3, padding="valid")
    y = ops.convert_to_numpy(layer(h))
    channel_means = y.mean(axis=(0, 1, 2))
    assert abs(y.var() - 1.0) < 0.1, y.var()
    assert np.mean(channel_means**2) < 0.05


def _conv2d_ops(implementation, groups):
    """The Conv2D ops in the traced graph of a grouped conv2d: 1 for the native path, one per group split."""
    x = tf.TensorSpec((2, 9, 9, 24), tf.float32)
    k = tf.TensorSpec((3, 3, 24 // groups, 24), tf.float32)
    fn = tf.function(lambda a, b: conv2d(a, b, groups=groups, implementation=implementation))
    return sum(op.type == "Conv2D" for op in fn.get_concrete_function(x, k).graph.get_operations())


def test_the_probe_answers_what_a_native_grouped_gradient_does():
    """The probe's answer is what computing a grouped convolution's gradient natively does in this
    process (tested here with another shape, outside the probe), and on x86 it is oneDNN's state:
    TensorFlow's other CPU kernels (Eigen) have no grouped gradient. ``auto`` follows it."""
    import platform

    from keras_nfnets.backend import tf_backend

    x = tf.constant(np.random.default_rng(3).standard_normal((1, 6, 6, 16)).astype("float32"))
    k = tf.constant(np.random.default_rng(4).standard_normal((3, 3, 2, 8)).astype("float32"))
    try:
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = tf.nn.conv2d(x, k, 1, "SAME")
        computes = all(g is not None for g in tape.gradient(y, [x, k]))
    except tf.errors.InvalidArgumentError:
        computes = False
    supported = native_grouped_conv_supported("CPU")
    assert supported is computes
    if platform.machine() in ("x86_64", "AMD64"):
        assert supported is tf_backend.onednn_enabled()
    assert grouped_conv_implementation("auto") == ("native" if supported else "split")
    assert _conv2d_ops("auto", 8) == (1 if supported else 8)
    assert _conv2d_ops("split", 8) == 8 and _conv2d_ops("native", 8) == 1
    with pytest.raises(ValueError, match="implementation"):
        grouped_conv_implementation("fast")


def test_a_build_without_a_grouped_kernel_is_detected_and_auto_splits(monkeypatch):
    """Where TensorFlow's Conv2D rejects grouped inputs (builds without a grouped CPU kernel) the
    probe says no and ``auto`` takes the per-group path."""
    real_conv2d = tf.nn.conv2d

    def conv2d_without_groups(inputs, filters, *args, **kwargs):
        if inputs.shape[-1] != filters.shape[2]:
            raise tf.errors.UnimplementedError(None, None, "Grouped convolution is not supported")
        return real_conv2d(inputs, filters, *args, **kwargs)

    from keras_nfnets.backend import tf_backend

    def forget():  # the probe's answer is kept per process
        tf_backend.grouped_conv_probe.cache_clear()

    forget()
    monkeypatch.setattr(tf.nn, "conv2d", conv2d_without_groups)
    try:
        assert native_grouped_conv_supported("CPU") is False
        assert "Grouped convolution is not supported" in tf_backend.grouped_conv_probe()["reason"]
        assert grouped_conv_implementation("auto") == "split"
        assert _conv2d_ops("auto", 8) == 8
    finally:
        monkeypatch.undo()
        forget()


def test_a_native_kernel_with_other_numbers_is_not_taken(monkeypatch):
    """The probe compares values, not only that the ops run: a grouped kernel that computes
    something else (here: its groups' outputs in the wrong order) is refused."""
    real_conv2d = tf.nn.conv2d

    def misrouted(inputs, filters, *args, **kwargs):
        groups = inputs.shape[-1] // filters.shape[2]
        if groups == 1:
            return real_conv2d(inputs, filters, *args, **kwargs)
        parts = [real_conv2d(x, k, *args, **kwargs)  # one conv per group: a gradient on every CPU
                 for x, k in zip(tf.split(inputs, groups, axis=-1), tf.split(filters, groups, axis=-1))]
        return tf.concat(parts[::-1], axis=-1)

    from keras_nfnets.backend import tf_backend

    tf_backend.grouped_conv_probe.cache_clear()
    monkeypatch.setattr(tf.nn, "conv2d", misrouted)
    try:
        answer = tf_backend.grouped_conv_probe()
        assert answer["native"] is False and "differ" in answer["reason"], answer
    finally:
        monkeypatch.undo()
        tf_backend.grouped_conv_probe.cache_clear()


@pytest.mark.parametrize("implementation", ["native", "split"])
def test_each_grouped_path_matches_a_numpy_convolution(implementation):
    """Forward: TensorFlow's grouped CPU kernel exists with and without oneDNN."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 9, 9, 24)).astype("float32")
    k = rng.standard_normal((3, 3, 3, 24)).astype("float32")
    y = conv2d(tf.constant(x), tf.constant(k), strides=(2, 2), padding="symmetric", groups=8,
               implementation=implementation)
    np.testing.assert_allclose(ops.convert_to_numpy(y), numpy_grouped_conv(x, k, 8, stride=2), rtol=1e-4, atol=1e-4)


def test_split_and_native_gradients_agree():
    """Where the native grouped gradient exists (oneDNN), it equals the per-group one; where it
    does not, TensorFlow refuses it (what the probe detects)."""
    rng = np.random.default_rng(7)
    x = tf.constant(rng.standard_normal((2, 6, 6, 16)).astype("float32"))
    k = tf.Variable(rng.standard_normal((3, 3, 4, 16)).astype("float32"))
    grads = {}
    for implementation in ("split", "native"):
        assert _conv2d_ops(implementation, 4) == (1 if implementation == "native" else 4)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(conv2d(x, k, groups=4, implementation=implementation) ** 2)
        if implementation == "native" and not native_grouped_conv_supported("CPU"):
            with pytest.raises(tf.errors.InvalidArgumentError, match="grouped convolutions are not supported"):
                tape.gradient(loss, [x, k])
            return
        grads[implementation] = [g.numpy() for g in tape.gradient(loss, [x, k])]
    for a, b in zip(grads["native"], grads["split"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_plain_group_conv_takes_the_native_path_and_is_he_initialised():
    layer = GroupConv2D(64, 3, groups=8)
    y = layer(np.ones((1, 8, 8, 64), "float32"))
    assert y.shape == (1, 8, 8, 64)
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec((1, 8, 8, 64), tf.float32)).graph
    convs = sum(op.type == "Conv2D" for op in graph.get_operations())
    assert convs == (1 if grouped_conv_implementation() == "native" else 8)
    fan_in = 3 * 3 * 8
    assert abs(np.std(layer.kernel.numpy()) - np.sqrt(2.0 / fan_in)) < 0.2 * np.sqrt(2.0 / fan_in)


@pytest.mark.parametrize("kwargs,out_shape", [
    (dict(filters=12, kernel_size=(3, 1), strides=2, padding="symmetric", groups=3, eps=1e-5, eps_mode="add",
          gamma=1.5), (2, 4, 4, 12)),
    (dict(filters=8, kernel_size=3, padding="same"), (2, 8, 8, 8))])
def test_scaled_ws_conv_passes_the_layer_harness(kwargs, out_shape):
    """Kernel, gain and bias are its three trainable weights (the standardized kernel is computed
    at call time, never stored)."""
    run_layer_test(ScaledWSConv2D, kwargs, (2, 8, 8, 6), out_shape, expected_trainable_weights=3)


def test_config_round_trip():
    layer = ScaledWSConv2D(
        12, (3, 1), strides=2, padding="symmetric", groups=3, eps=1e-5, eps_mode="add", gamma=1.5, name="c"
    )
    clone = ScaledWSConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = np.random.default_rng(8).standard_normal((1, 8, 8, 6)).astype("float32")
    layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(ops.convert_to_numpy(clone(x)), ops.convert_to_numpy(layer(x)))
    assert [w.name for w in layer.weights] == ["kernel", "gain", "bias"]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(filters=8, kernel_size=3, padding="causal"), "padding"),
        (dict(filters=8, kernel_size=3, eps_mode="max"), "eps_mode"),
        (dict(filters=10, kernel_size=3, groups=4), "divisible"),
        (dict(filters=8, kernel_size=3, strides=2, dilation_rate=2), "dilation"),
        (dict(filters=8, kernel_size=3, eps=-1.0), "eps"),
        (dict(filters=0, kernel_size=3), "filters"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScaledWSConv2D(**kwargs)


def test_input_channels_must_divide_by_groups():
    with pytest.raises(ValueError, match="divisible by groups"):
        ScaledWSConv2D(8, 3, groups=4)(np.ones((1, 4, 4, 6), "float32"))
