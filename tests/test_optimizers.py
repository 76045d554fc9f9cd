"""Adaptive Gradient Clipping and the optimizer (NFNet paper §4, App. A)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ENV
from keras import ops

import keras
from keras_nfnets.training import SGDAGC, adaptive_grad_clip, unitwise_norm, warmup_cosine_decay

HERE = os.path.dirname(os.path.abspath(__file__))


def numpy_unitwise_norm(x):
    if np.squeeze(x).ndim <= 1:
        return np.sqrt(np.sum(x**2))
    axes = (0,) if x.ndim in (2, 3) else (0, 1, 2)
    return np.sqrt(np.sum(x**2, axis=axes, keepdims=True))


def numpy_agc(g, w, clip, eps=1e-3):
    max_norm = np.maximum(numpy_unitwise_norm(w), eps) * clip
    g_norm = numpy_unitwise_norm(g)
    return np.where(g_norm > max_norm, g * max_norm / np.maximum(g_norm, 1e-6), g)


@pytest.mark.parametrize("shape", [(3, 3, 8, 16), (32, 10), (16,), (), (5, 1, 1)])
def test_unitwise_norm_and_clip_match_numpy(shape):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape).astype("float32")
    g = (rng.standard_normal(shape) * rng.choice([0.001, 1.0], size=shape)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(unitwise_norm(w)), numpy_unitwise_norm(w), rtol=1e-5)
    for clip in (0.01, 0.1):
        np.testing.assert_allclose(
            ops.convert_to_numpy(adaptive_grad_clip(g, w, clip)), numpy_agc(g, w, clip), rtol=1e-5, atol=1e-7
        )


def test_conv_kernels_are_clipped_per_output_channel():
    w = np.ones((3, 3, 4, 2), "float32")  # every channel's norm is 6
    g = np.zeros_like(w)
    g[..., 0] = 1.0  # channel 0: norm 6 > 0.01 * 6 -> clipped; channel 1: zero, untouched
    clipped = ops.convert_to_numpy(adaptive_grad_clip(g, w, 0.01))
    np.testing.assert_allclose(np.sqrt((clipped[..., 0] ** 2).sum()), 0.06, rtol=1e-5)
    assert np.all(clipped[..., 1] == 0)


class Holder(keras.layers.Layer):
    """Owns weights so that their paths read ``<layer>/<weight>`` as in a model."""

    def __init__(self, arrays, **kwargs):
        super().__init__(**kwargs)
        for name, value in arrays.items():
            setattr(self, name, self.add_weight(name=name, shape=value.shape, initializer=keras.initializers.Constant(value)))


def _one_step(optimizer, weights, grads):
    holders = {}
    for path, value in weights.items():
        layer, name = path.split("/")
        holders.setdefault(layer, {})[name] = value
    layers = [Holder(arrays, name=layer) for layer, arrays in holders.items()]
    variables = {v.path: v for layer in layers for v in layer.weights}
    optimizer.apply([grads[path] for path in variables], list(variables.values()))
    return {path: v.numpy() for path, v in variables.items()}


def test_step_clips_then_adds_decay_and_skips_excluded():
    rng = np.random.default_rng(1)
    weights = {
        "stage1_block1_conv1/kernel": rng.standard_normal((1, 1, 4, 8)).astype("float32"),
        "stage1_block1_conv1/gain": np.ones(8, "float32"),
        "predictions/kernel": rng.standard_normal((8, 3)).astype("float32"),
        "predictions/bias": np.zeros(3, "float32"),
    }
    grads = {name: (10 * rng.standard_normal(w.shape)).astype("float32") for name, w in weights.items()}
    lr, wd, clip = 0.1, 0.01, 0.01
    new = _one_step(SGDAGC(lr, momentum=0.0, weight_decay=wd, clip_factor=clip), weights, grads)
    for name, w in weights.items():
        g = grads[name] if name == "predictions/kernel" else numpy_agc(grads[name], w, clip)  # classifier not clipped
        if not name.endswith(("gain", "bias")):
            g = g + wd * w  # decay after clipping, not on gains and biases
        np.testing.assert_allclose(new[name], w - lr * g, rtol=1e-5, atol=1e-6)


def test_nesterov_momentum_matches_deepmind_form():
    """DeepMind/PyTorch: buf = μ·buf + g; w -= lr·(g + μ·buf). Keras' form is equivalent."""
    w0 = np.array([1.0, -2.0], "float32")
    optimizer = SGDAGC(0.1, momentum=0.9, clip_factor=None)
    variable = keras.Variable(w0)
    buf, w = np.zeros(2), w0.astype("float64")
    for g in ([0.5, 0.1], [0.2, -0.3], [0.1, 0.1]):
        optimizer.apply([np.array(g, "float32")], [variable])
        buf = 0.9 * buf + np.array(g)
        w = w - 0.1 * (np.array(g) + 0.9 * buf)
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-5)


@pytest.mark.slow
def test_agc_after_the_all_reduce_under_mirrored_strategy():
    result = subprocess.run([sys.executable, os.path.join(HERE, "distributed_agc.py")], capture_output=True,
                            text=True, timeout=600, env=REPO_ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(figures)
    assert figures["one_vs_two"] < 1e-5 * figures["update_size"]  # two replicas == one device, same global batch
    # per-replica clipping gives another update of the clipped layer (the unclipped classifier agrees)
    assert figures["hidden_vs_per_replica"] > 0.1 * figures["hidden_update"]
    assert figures["classifier_vs_per_replica"] < 1e-5 * figures["update_size"]


@pytest.mark.slow
def test_train_with_mirrored_strategy_on_two_logical_cpus():
    result = subprocess.run([sys.executable, os.path.join(HERE, "distributed_agc.py"), "train"], capture_output=True,
                            text=True, timeout=600, env=REPO_ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["replicas"] == 2  # both replicas used, a finite loss
    assert np.isfinite(figures["loss"])
    # the mirrored evaluation of the final weights equals a one-device evaluation of the saved model
    assert figures["accuracy"] == pytest.approx(figures["single_device_accuracy"], abs=1e-6)


def test_schedule_values():
    schedule = warmup_cosine_decay(1.6, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    np.testing.assert_allclose(values, [0.0, 0.8, 1.6, 0.8, 0.0], atol=1e-5)
    with pytest.raises(ValueError):
        warmup_cosine_decay(0.1, total_steps=10, warmup_steps=10)


@pytest.mark.slow
def test_fit_with_agc_and_serialisation():
    from keras_nfnets import build_nf_model, nf_regnet_config

    # NF-RegNet-B0's layers (grouped convs, SE, average-pool shortcuts), one block per stage
    model = build_nf_model(nf_regnet_config("B0").replace(depths=(1, 1, 1, 1)), input_shape=(32, 32, 3), classes=4)
    model.compile(optimizer=SGDAGC(0.1, weight_decay=5e-5), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((8, 32, 32, 3)).astype("float32")
    history = model.fit(x, np.arange(8) % 4, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    clone = SGDAGC.from_config(model.optimizer.get_config())
    assert clone.clip_factor == 0.01 and clone.l2 == 5e-5 and clone.agc_exclude == ("predictions/kernel",)
    with pytest.raises(ValueError, match="clip_factor"):
        SGDAGC(clip_factor=-1)


def test_ema_warmup_values():
    from keras_nfnets.training import ema_decay

    assert [ema_decay(t, 0.99999) for t in (0, 1, 10, 90)] == pytest.approx([0.1, 2 / 11, 11 / 20, 91 / 100])
    assert ema_decay(10**7, 0.999) == 0.999


def test_ema_tracks_the_weights_and_is_used_for_evaluation():
    from keras_nfnets.training import ExponentialMovingAverage, ema_decay

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="predictions")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).standard_normal((12, 3)).astype("float32")
    y = np.random.default_rng(1).standard_normal((12, 2)).astype("float32")

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.history = []

        def on_train_batch_end(self, batch, logs=None):
            self.history.append([w.numpy().copy() for w in self.model.weights])

    record, ema = Record(), ExponentialMovingAverage(decay=0.9, swap_on_end=False)
    initial = [w.numpy().copy() for w in model.weights]
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[record, ema])
    expected = initial
    for t, weights in enumerate(record.history):
        d = ema_decay(t, 0.9)
        expected = [d * e + (1 - d) * w for e, w in zip(expected, weights)]
    for average, value in zip(ema.averages, expected):
        np.testing.assert_allclose(average.numpy(), value, rtol=1e-5)
    raw = [w.numpy().copy() for w in model.weights]
    averaged_loss = model.evaluate(x, y, verbose=0, callbacks=[ema])
    model.set_weights(expected)
    assert averaged_loss == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    model.set_weights(raw)
    ema.on_train_end()  # swap_on_end=False: the model keeps its raw weights
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(raw, model.weights))


def test_keras_data_parallel_refuses_what_it_cannot_do(monkeypatch):
    """On JAX/PyTorch `train(strategy=...)` maps to Keras' engine; TPUStrategy, multi-process
    training on PyTorch and mirrored over several GPUs there (Keras has no engine for either), and
    a malformed JAX cluster are errors."""
    import torch

    from keras_nfnets.backend import for_backend

    for name in ("jax", "torch"):
        with pytest.raises(ValueError, match="tf.distribute strategy"):
            for_backend(name).make_strategy("tpu")
    with pytest.raises(ValueError, match="no multi-process training engine"):
        for_backend("torch").make_strategy("multi_worker")
    # JAX runs multi_worker as a keras.distribution cluster (tests/training/test_jax_multi_process.py); an
    # inconsistent cluster is refused before jax.distributed starts
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "127.0.0.1:1234")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "5")
    with pytest.raises(ValueError, match="inconsistent"):
        for_backend("jax").make_strategy("multi_worker")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="no data-parallel engine for PyTorch"):
        for_backend("torch").make_strategy("mirrored")
    assert for_backend("torch").make_strategy("one_device").num_replicas_in_sync == 1
