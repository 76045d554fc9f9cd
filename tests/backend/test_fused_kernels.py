"""TensorFlow's fused kernels (keras_nfnets/backend/tf_fused.py, tf_conv.py) against the plain ops
they replace: Scaled WS's hand-made VJP against autodiff of Eq. 3, the WS convolution's hand-made
backward against TensorFlow's autodiff on every convolution path, the 1×1 matrix product against
``Conv2D``, the bfloat16 rounding against ``tf.cast``, the fused SGD step against Keras' own, and
the standardized kernels computed one layer at a time (the allocator's peak)."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_nfnets.backend import tf_backend, tf_conv, tf_fused
from keras_nfnets.layers import ScaledWSConv2D
from keras_nfnets.layers.ws_conv import standardize_kernel, standardize_kernel_vjp
from keras_nfnets.optimizers import SGDAGC


def relative(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


@pytest.fixture
def policy():
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("eps_mode,eps,gamma,spread", [("floor", 1e-4, 1.0, 1.0), ("add", 1e-5, 1.7, 1.0),
                                                       ("floor", 1e-4, 1.0, 1e-4)])  # last: the floor binds
def test_ws_vjp_equals_autodiff_of_eq3(eps_mode, eps, gamma, spread):
    """The analytic ``(∂L/∂W, ∂L/∂gain)`` of Scaled WS equals TensorFlow's autodiff of the forward
    formula, above DeepMind's floor and where it binds (σ² N below eps: the spread is constant)."""
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(0.01, spread, (3, 3, 8, 6)).astype("float32"))
    gain = tf.constant(rng.uniform(0.5, 1.5, (6,)).astype("float32"))
    upstream = tf.constant(rng.normal(0, 1, (3, 3, 8, 6)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch([kernel, gain])
        standardized = standardize_kernel(kernel, gain, eps, eps_mode, gamma)
    expected = tape.gradient(standardized, [kernel, gain], output_gradients=upstream)
    got = standardize_kernel_vjp(kernel, gain, upstream, eps, eps_mode, gamma)
    for a, b in zip(got, expected):
        assert relative(a, b) < 1e-5


CONVOLUTIONS = [
    dict(filters=8, kernel_size=3),
    dict(filters=8, kernel_size=3, groups=2, strides=2),
    dict(filters=12, kernel_size=1),
    dict(filters=12, kernel_size=1, strides=2),
    dict(filters=8, kernel_size=3, padding="symmetric", strides=2, eps_mode="add", eps=1e-5, gamma=1.7),
    dict(filters=12, kernel_size=1, strides=2, padding="symmetric", use_bias=False),
]


def _layer_gradients(layer, x):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        return [y, *tape.gradient(loss, [x] + layer.trainable_variables)]

    return [np.asarray(tf.cast(value, tf.float32)) for value in step(x)]


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("options", CONVOLUTIONS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()))
def test_ws_convolution_backward_equals_autodiff(options, precision, policy, monkeypatch):
    """The fused WS convolution (its kernel computed just in time, recomputed in the backward in
    float32, the convolution's gradients from TensorFlow's own ops) gives the outputs and the
    input, kernel, gain and bias gradients of TensorFlow's autodiff of the plain ops."""
    policy(precision)
    rng = np.random.default_rng(0)
    layer = ScaledWSConv2D(**options)
    x = tf.constant(rng.standard_normal((2, 9, 9, 4)).astype("float32"))
    layer.build(x.shape)
    layer.gain.assign(rng.uniform(0.5, 1.5, layer.gain.shape))
    if layer.bias is not None:
        layer.bias.assign(rng.standard_normal(layer.bias.shape))
    fused = _layer_gradients(layer, x)
    monkeypatch.setenv("KERAS_NFNETS_FUSED_KERNELS", "0")
    plain = _layer_gradients(layer, x)
    bound = 1e-5  # both precisions: the same roundings on both paths (a grouped bias is fused alike on both)
    for a, b in zip(fused, plain):
        assert relative(a, b) < bound


def test_pointwise_matmul_equals_conv2d():
    """A 1×1 convolution in bfloat16 on the CPU is a matrix product where oneDNN runs: the same
    numbers as TensorFlow's ``Conv2D`` (at strides 1 and 2, "same" and "valid"), within bfloat16's
    rounding of the output. Without oneDNN, Eigen's matrix product rounds partial sums (0.0044 of
    the largest output here), so the layer keeps TensorFlow's ``Conv2D`` there, bit for bit."""
    rng = np.random.default_rng(1)
    x = tf.cast(tf.constant(rng.standard_normal((2, 7, 7, 16)).astype("float32")), tf.bfloat16)
    kernel = tf.cast(tf.constant(rng.standard_normal((1, 1, 16, 24)).astype("float32")), tf.bfloat16)
    onednn = tf_backend.onednn_enabled()
    for strides in ((1, 1), (2, 2)):
        for padding in ("SAME", "VALID"):
            expected = tf.nn.conv2d(tf.cast(x, tf.float32), tf.cast(kernel, tf.float32), strides, padding)
            layer_path = tf_conv.conv2d(x, kernel, strides, padding.lower(), (1, 1), 1, "native")
            assert layer_path.shape == expected.shape
            if onednn:
                got = tf.cast(tf_conv.pointwise_as_matmul(x, kernel, strides), tf.float32)
                assert relative(got, expected) < 2**-8  # one bfloat16 rounding of the result
                np.testing.assert_array_equal(layer_path.numpy(), tf.cast(got, tf.bfloat16).numpy())
            else:
                np.testing.assert_array_equal(layer_path.numpy(), tf.nn.conv2d(x, kernel, strides, padding).numpy())


def test_bfloat16_rounding_equals_tensorflows_cast():
    """The integer round-to-nearest-even is TensorFlow's own float32 → bfloat16 conversion, bit for
    bit: ties, subnormals, infinities, the largest finite values (which round to ±inf) and NaN."""
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    special = np.array([0x3F808000, 0x3F818000, 0x00000001, 0x007FFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000,
                        0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001, 0x80000000], np.uint32)
    values = tf.bitcast(tf.constant(np.concatenate([bits, special])), tf.float32)
    expected = tf.bitcast(tf.cast(values, tf.bfloat16), tf.uint16).numpy()
    got_bf16 = tf.function(lambda v: tf_fused.rounded(v, tf.bfloat16), jit_compile=True)(values)
    got = tf.bitcast(got_bf16, tf.uint16).numpy()
    nan = np.isnan(values.numpy())
    np.testing.assert_array_equal(got[~nan], expected[~nan])
    assert np.isnan(tf.cast(got_bf16, tf.float32).numpy()[nan]).all()


def test_fused_sgd_step_equals_keras_sgd():
    """Three Nesterov steps of ``SGDAGC`` without AGC and decay (TensorFlow's in-place
    ``ResourceApplyKerasMomentum``) equal Keras' own ``SGD`` on the same gradients."""
    rng = np.random.default_rng(3)
    shapes = [(3, 3, 4, 8), (8,), (16, 5)]
    values = [rng.normal(0, 0.1, s).astype("float32") for s in shapes]
    grads = [[tf.constant(rng.normal(0, 1, s).astype("float32")) for s in shapes] for _ in range(3)]

    def run(optimizer):
        variables = [keras.Variable(v) for v in values]
        step = tf.function(lambda g: optimizer.apply(g, variables))
        for g in grads:
            step(g)
        return [v.numpy() for v in variables], step

    ours, step = run(SGDAGC(0.1, momentum=0.9, nesterov=True, clip_factor=0.0))
    keras_sgd, _ = run(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    for a, b in zip(ours, keras_sgd):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    graph_ops = {op.type for op in step.get_concrete_function(grads[0]).graph.get_operations()}
    assert "ResourceApplyKerasMomentum" in graph_ops  # the fused path ran, not Keras' own ops


def test_each_layers_standardized_kernel_lives_only_while_it_is_used():
    """One training step of wide 1×1 convolutions on a tiny input (the weights dominate): the
    allocator's peak above the weights and momentum stays below one weight copy (measured 0.75:
    the gradients, applied as they come, and one layer's kernel at a time). With the kernels
    computed as TensorFlow schedules them (all at the start of the step) it was 1.25, with
    TensorFlow's autodiff of the plain ops 2.48."""
    if not tf_backend.onednn_enabled():  # TensorFlow: "Cannot reset memory stats for device 'CPU:0'"
        pytest.skip("the CPU allocator's statistics exist only with oneDNN on (keras_nfnets' default on x86; "
                    "this run set TF_ENABLE_ONEDNN_OPTS=0)")
    inputs = keras.Input((2, 2, 256))
    x = inputs
    for i in range(8):
        x = ScaledWSConv2D(256, 1, name=f"conv{i}")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    model.compile(SGDAGC(0.01, clip_factor=0.0), "mse")
    x_batch, y_batch = np.ones((1, 2, 2, 256), "float32"), np.zeros((1, 256), "float32")
    model.train_on_batch(x_batch, y_batch)
    weights = sum(int(np.prod(w.shape)) * 4 for w in model.trainable_weights)
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    model.train_on_batch(x_batch, y_batch)
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    print(f"step's peak above the weights and momentum: {(peak - before) / weights:.2f} weight copies")
    assert (peak - before) < 1.0 * weights
