"""bfloat16 (``mixed_bfloat16``): results within a bound derived from bfloat16's rounding, the dtype
every part of a training step computes in, and the advice where a CPU has no bfloat16 arithmetic.

The bound. bfloat16 keeps 8 significant bits: rounding to nearest moves a value by at most 2⁻⁸
of itself, uniformly, so by ``U = 2⁻⁸/√3`` (RMS, relative) per rounding. A tensor is rounded at
most once per layer on its way through the model (convolutions and matrix products accumulate
in float32, the fused kernels compute in float32 and round their result once), and a
normalizer-free network keeps the signal's scale from layer to layer (paper §4), so independent
roundings add up like a random walk: after ``n`` layers the RMS relative error is about
``U·√n``. The tests allow 4 times that; the backward pass rounds as often again (``U·√(2n)``)."""

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_nfnets.backend import cpu
from keras_nfnets.layers import SkipInitGain
from keras_nfnets.models import build_nf_model
from keras_nfnets.optimizers import SGDAGC

from harness import toy_config

SIZE = 32  # the toy variants' input side

ROUNDING_RMS = 2**-8 / math.sqrt(3)


@pytest.fixture
def policy():
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


def _model(family, weights=None):
    keras.utils.set_random_seed(0)
    model = build_nf_model(toy_config(family), input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
    if weights is not None:
        for variable, value in zip(model.weights, weights):
            variable.assign(value)
        return model
    rng = np.random.default_rng(0)  # gains, biases and SkipInit gains off their init values: every branch counts
    for layer in model.layers:
        if isinstance(layer, SkipInitGain):
            layer.skip_gain.assign(rng.uniform(0.5, 1.0))
        for name, (low, high) in (("gain", (0.5, 1.5)), ("bias", (-0.2, 0.2))):
            weight = getattr(layer, name, None)
            if weight is not None and hasattr(weight, "assign"):
                weight.assign(rng.uniform(low, high, weight.shape))
    head = model.get_layer("predictions")  # zero-initialised: the logits would be its bias alone
    head.kernel.assign(rng.normal(0, 0.3, head.kernel.shape))
    return model


def _logits_and_gradients(model, x, y):
    with tf.GradientTape() as tape:
        logits = model(x, training=False)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)(y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    return np.asarray(tf.cast(logits, tf.float32)), np.concatenate([np.ravel(tf.cast(g, tf.float32)) for g in grads])


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.mark.parametrize("family", ["nf_resnet", "nf_regnet", "nfnet"])
def test_bfloat16_stays_within_its_rounding_bound(family, policy):
    """Logits (every family) and the whole gradient (the families with smooth activations) of the
    same weights under ``mixed_bfloat16`` against float32: within ``4·U·√n`` and ``4·U·√(2n)``
    (module docstring), and not equal (bfloat16 ran). NF-ResNets' ReLU and max pooling send a
    gradient elsewhere when a rounding flips a sign or breaks a tie: no rounding bound covers that,
    so their gradient is not compared (measured 11-22% of its scale, at the stem)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, SIZE, SIZE, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 8)]
    reference = _model(family)
    layers = len(reference.layers)
    logits32, grads32 = _logits_and_gradients(reference, x, y)
    policy("mixed_bfloat16")
    logits16, grads16 = _logits_and_gradients(_model(family, [w.numpy() for w in reference.weights]), x, y)
    logit_error = _rms(logits16 - logits32) / _rms(logits32)
    grad_error = _rms(grads16 - grads32) / _rms(grads32)
    print(f"{family}: {layers} layers; logits {logit_error:.4f} (bound {4 * ROUNDING_RMS * math.sqrt(layers):.4f}), "
          f"gradient {grad_error:.4f} (bound {4 * ROUNDING_RMS * math.sqrt(2 * layers):.4f})")
    assert ROUNDING_RMS / 10 < logit_error < 4 * ROUNDING_RMS * math.sqrt(layers)
    if family != "nf_resnet":
        assert ROUNDING_RMS / 10 < grad_error < 4 * ROUNDING_RMS * math.sqrt(2 * layers)


def _xla_calls(graph):
    """``(input dtypes, output dtypes)`` of every XLA-compiled function a graph calls."""
    calls = []
    for op in graph.get_operations():
        attr = op.node_def.attr
        if "_XlaMustCompile" in attr and attr["_XlaMustCompile"].b:
            calls.append((tuple(t.dtype.name for t in op.inputs), tuple(t.dtype.name for t in op.outputs)))
    return calls


def test_what_computes_in_which_dtype(policy):
    """The traced training step of an NFNet under ``mixed_bfloat16``: convolutions, matrix products
    and their gradients in bfloat16; the Scaled-WS programs take the float32 kernel and gain and
    hand the convolution a bfloat16 kernel (and its backward float32 gradients); the optimizer's
    AGC + decay program and its in-place update are float32 (variables, momentum); the logits and
    the loss are float32."""
    policy("mixed_bfloat16")
    model = _model("nfnet")
    optimizer = SGDAGC(0.1, clip_factor=0.01, weight_decay=1e-4)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return logits, loss

    spec = (tf.TensorSpec((4, SIZE, SIZE, 3), tf.float32), tf.TensorSpec((4, 10), tf.float32))
    graph = step.get_concrete_function(*spec).graph
    convolutions = [op for op in graph.get_operations()
                    if op.type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")]
    assert convolutions and {op.get_attr("T").name for op in convolutions} == {"bfloat16"}
    products = [op for op in graph.get_operations() if op.type == "MatMul" and "predictions" not in op.name]
    assert products and {op.get_attr("T").name for op in products} == {"bfloat16"}  # 1×1 convolutions, SE
    calls = _xla_calls(graph)
    assert (("float32", "float32"), ("bfloat16",)) in calls  # WS forward: float32 in, bfloat16 kernel out
    assert (("float32", "float32", "bfloat16"), ("float32", "float32")) in calls  # WS backward
    assert (("float32", "resource"), ("float32",)) in calls  # AGC + decay: the gradient and the variable
    updates = [op for op in graph.get_operations() if op.type == "ResourceApplyKerasMomentum"]
    assert len(updates) == len(model.trainable_variables) and {op.get_attr("T").name for op in updates} == {"float32"}
    assert all(v.dtype == "float32" for v in model.trainable_variables + optimizer.momentums)
    assert model.output.dtype == "float32" and step.get_concrete_function(*spec).outputs[1].dtype == tf.float32


@pytest.fixture
def fresh_advice(monkeypatch):
    """The CPU facts as the test says, and the once-per-process advice forgotten."""
    monkeypatch.setattr(cpu, "_advised", set())

    def cpu_with(flags, model="Test CPU"):
        monkeypatch.setattr(cpu, "cpu_info", lambda: (model, None if flags is None else set(flags)))

    return cpu_with


def test_a_cpu_without_bfloat16_arithmetic_is_told_before_any_work(fresh_advice, tmp_path, monkeypatch):
    """``train`` (through its precision check, before data or a model) and a model's first call say
    that bfloat16 will be slower here and to use float32, once per process; a CPU with AVX512-BF16
    or AMX, an unknown CPU and float32 get no advice; float16 on any CPU gets its own."""
    from keras_nfnets.training import check_precision

    fresh_advice({"avx512f", "avx512_vnni"}, "AVX-512 CPU without BF16")
    assert cpu.bf16_hardware() is False
    with pytest.warns(UserWarning, match=r"mixed_bfloat16.*slower than float32 on this CPU \(AVX-512 CPU without BF16"
                                         r"\).*precision='float32'"):
        check_precision("mixed_bfloat16", [("CPU", None)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_precision("mixed_bfloat16", [("CPU", None)])  # said once
        check_precision("mixed_bfloat16", [("GPU", (8, 0))])  # a GPU: not this CPU's business
        check_precision("float32", [("CPU", None)])
    with pytest.warns(UserWarning, match="mixed_float16.*software"):
        check_precision("mixed_float16", [("CPU", None)])
    for flags in ({"avx512f", "avx512_bf16"}, {"amx_bf16", "amx_tile"}, {"bf16", "asimd"}, None):
        fresh_advice(flags)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_precision("mixed_bfloat16", [("CPU", None)])
    fresh_advice({"avx512f", "avx512_bf16", "amx_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # oneDNN held below the BF16 instructions
    assert cpu.bf16_hardware() is False


def test_a_models_first_bfloat16_call_gives_the_advice(fresh_advice, policy):
    fresh_advice({"avx2"}, "AVX2 laptop")
    policy("mixed_bfloat16")
    model = _model("nf_regnet")
    with pytest.warns(UserWarning, match=r"slower than float32 on this CPU \(AVX2 laptop\)"):
        model.predict(np.zeros((1, SIZE, SIZE, 3), "float32"), verbose=0)
