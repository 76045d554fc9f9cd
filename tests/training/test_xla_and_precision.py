"""What an accelerator needs, proven on the CPU (issue 23): XLA-compiled training steps equal the
uncompiled ones, stochastic depth and dropout compile with no host round trip, AGC clips the
unscaled gradients under ``mixed_float16``'s loss scaling, and ``mixed_bfloat16`` keeps the WS
statistics, the AGC norms and the EMA in float32.

The models are the three families' block types at toy widths (one block per stage, 32 px), so
that each XLA compile takes seconds."""


import numpy as np
import pytest

import keras
from keras_nfnets import _compat, backend
from keras_nfnets.models import build_nf_model
from keras_nfnets.training import SGDAGC, ExponentialMovingAverage, set_precision, train
from keras_nfnets import optimizers as optimizers_module

from harness import toy_config

SIZE, BATCH, STEPS = 32, 8, 4


def _batch(seed=0, classes=10):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH * STEPS // 2, SIZE, SIZE, 3)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, len(x))]
    return x, y


def _dtype(tensor):
    return keras.backend.standardize_dtype(tensor.dtype)


@pytest.fixture
def policy():
    """Sets a dtype policy for one test and restores float32 after it."""
    yield set_precision
    set_precision("float32")


def _fit(config, initial, jit_compile, x, y, epochs=2):
    model = build_nf_model(config, input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
    model.set_weights(initial)
    model.compile(SGDAGC(0.2, momentum=0.9, clip_factor=0.01, weight_decay=1e-3),
                  keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                        callbacks=[ExponentialMovingAverage(0.9, swap_on_end=True)]).history
    return model, history["loss"]


# Compiled against uncompiled: XLA reorders and fuses float arithmetic, so the two differ by
# rounding that four SGD steps carry along (float32: 1.1e-6 measured; bfloat16 rounds each
# activation to 8 bits of mantissa: 5e-3 to 4.3e-2 of the weight scale, losses within 1%). A wrong step (a missed clip, decay or EMA
# update) moves weights by ~the update itself, 1e-1 to 1 of it.
TOLERANCE = {"float32": 1e-4, "mixed_bfloat16": 1e-1}


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_xla_steps_equal_uncompiled_steps(precision, policy):
    """SGD + AGC + weight decay + EMA, ``fit`` with ``jit_compile=True`` against ``False`` from the
    same weights on the same batches: losses and final (EMA) weights within :data:`TOLERANCE`.
    On the NFNet toy, whose layers (WS convs plain and grouped, SE, γ-activations, the skip gain,
    the final conv) are the layer types of the other families' blocks too: XLA compiles ops, not
    families (the NF-ResNet and NF-RegNet toys, run as well until December 2026, took 155 s of
    CI's time and agreed as closely). NF-ResNet-14 trains compiled in
    test_train_with_jit_compile_records_it, and every family's step is compiled on JAX
    (tests/backend/test_backends.py)."""
    policy(precision)
    config = toy_config("nfnet")
    keras.utils.set_random_seed(0)
    start = build_nf_model(config, input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
    rng = np.random.default_rng(1)  # the zero-initialised classifier and SkipInit gains randomised: every layer acts
    initial = [w + rng.normal(0, 0.1, w.shape).astype(w.dtype) if not w.any() else w for w in start.get_weights()]
    x, y = _batch()
    eager, eager_loss = _fit(config, initial, False, x, y)
    compiled, compiled_loss = _fit(config, initial, True, x, y)
    assert compiled.jit_compile is True and eager.jit_compile is False
    tolerance = TOLERANCE[precision]
    np.testing.assert_allclose(compiled_loss, eager_loss, rtol=tolerance / 2)
    moved = worst = 0.0
    for a, b, w0 in zip(compiled.get_weights(), eager.get_weights(), initial):
        update = np.abs(b - w0).max()
        moved = max(moved, update)
        if update > 0:
            worst = max(worst, np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
    print(f"toy NFNet {precision}: losses {eager_loss} / {compiled_loss}; worst weight difference {worst:.1e}")
    assert moved > 1e-3  # the steps moved the weights
    assert worst < tolerance


@pytest.mark.slow
def test_stochastic_depth_and_dropout_compile_without_a_host_round_trip():
    """A toy NFNet with dropout and stochastic depth trains under ``jit_compile=True``: TensorFlow's
    must-compile XLA function accepts no op that would leave the device (a py_function or a host
    random number generator fails the compile), and the random masks still change per step."""
    config = toy_config("nfnet", drop_rate=0.5, stochastic_depth_rate=0.5)
    keras.utils.set_random_seed(0)
    model = build_nf_model(config, input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
    model.compile(SGDAGC(0.0, clip_factor=0.01), keras.losses.CategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    x, y = _batch()
    losses = [float(model.train_on_batch(x[:BATCH], y[:BATCH])) for _ in range(3)]  # lr 0: only the masks change
    assert model.jit_compile is True
    assert len(set(np.round(losses, 6))) == 3, losses  # a new draw each step, inside the compiled step


def test_jit_compile_is_checked_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="`jit_compile` must be"):
        train("NFResNet14", "digits", jit_compile="yes", output_dir=str(tmp_path / "a"))
    # the PyTorch backend's answer comes from its table entry, before any model is built
    torch_table = backend.for_backend("torch")
    with pytest.raises(ValueError, match="torch.compile"):
        torch_table.jit_compile(True, None)
    assert torch_table.jit_compile("auto", None) == "auto"
    assert backend.for_backend("jax").jit_compile("auto", None) == "auto"
    # the command line: --jit-compile auto | true | false, and the library's words in its flags
    from keras_nfnets import cli

    parser = cli.build_parser()
    assert parser.parse_args(["train", "--jit-compile", "true"]).jit_compile is True
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--jit-compile", "yes"])
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    assert "`--jit-compile true`" in cli.as_flags("`jit_compile=True` is refused", train_parser)


@pytest.mark.slow
def test_train_with_jit_compile_records_it(tmp_path):
    """``train(jit_compile=True)`` compiles the step (run.json says so); ``"auto"`` resolves to
    Keras' rule, off on this CPU-only TensorFlow machine (test_run.py's runs check that)."""
    run = train("NFResNet14", "digits", epochs=1, steps_per_epoch=2, batch_size=16, jit_compile=True,
                output_dir=str(tmp_path / "xla"), verbose=0, tensorboard=False, input_report=False)
    assert run.settings["jit_compile"] is True and run.model.jit_compile is True
    assert np.isfinite(run.history["loss"]).all()


# --- reduced precision -------------------------------------------------------------------------
LOSS_SCALE = 2.0 ** 15  # Keras' LossScaleOptimizer starts at 2**15


def _toy_with_random_gains(family="nf_resnet"):
    """A toy model whose zero-initialised tensors (SkipInit gains, classifier) are randomised."""
    config = toy_config(family)
    keras.utils.set_random_seed(0)
    model = build_nf_model(config, input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
    rng = np.random.default_rng(1)
    return config, [w + rng.normal(0, 0.1, w.shape).astype(w.dtype) if not w.any() else w for w in model.get_weights()]


def test_loss_scaled_agc_step_equals_the_float32_step():
    """Keras' ``LossScaleOptimizer`` around ``SGDAGC``, given the loss-scaled gradients ``2**15·g``
    (what ``train_step`` computes under ``mixed_float16``), makes exactly the step plain ``SGDAGC``
    makes from ``g``: it unscales before AGC clips. Clipping ``2**15·g`` and unscaling after would
    give another step, shown here to be far from it."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shapes = [(3, 3, 8, 16), (16,), (32, 10)]  # a conv kernel (clipped per output channel), a bias, a dense kernel
    values = [rng.normal(0, 0.05, shape).astype("float32") for shape in shapes]
    gradients = [rng.normal(0, 1.0, shape).astype("float32") for shape in shapes]  # large: λ‖W‖ binds

    def step(scaled):
        variables = [keras.Variable(v, name=f"w{i}") for i, v in enumerate(values)]
        optimizer = SGDAGC(0.5, momentum=0.9, clip_factor=0.01, weight_decay=1e-3, agc_exclude=())
        if scaled:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=LOSS_SCALE)
            optimizer.apply([tf.constant(g * LOSS_SCALE) for g in gradients], variables)
        else:
            optimizer.apply([tf.constant(g) for g in gradients], variables)
        return [v.numpy() - v0 for v, v0 in zip(variables, values)]

    plain, scaled = step(False), step(True)
    wrong = [-0.5 * (optimizers_module.adaptive_grad_clip(tf.constant(g * LOSS_SCALE), v, 0.01).numpy() / LOSS_SCALE
                     + 1e-3 * v) * (1 + 0.9) for g, v in zip(gradients, values)]  # Nesterov: lr·(1+m)·g on step 1
    for a, b, c in zip(scaled, plain, wrong):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
        assert np.abs(c - b).max() > 0.5 * np.abs(b).max()  # the other order: another step
    clipped = optimizers_module.adaptive_grad_clip(tf.constant(gradients[0]), values[0], 0.01).numpy()
    assert not np.allclose(clipped, gradients[0])  # AGC binds on these tensors


@pytest.mark.slow
def test_mixed_float16_training_hands_agc_the_unscaled_gradients(policy, monkeypatch):
    """A training step under ``mixed_float16``: Keras wraps ``SGDAGC`` in a ``LossScaleOptimizer``
    (loss scaled by 2**15), and the gradients that reach AGC have the float32 run's size (per
    tensor, within float16 noise), not 2**15 times it. With the exact step above (same gradients,
    scaled and not), this is the whole path."""
    config, initial = _toy_with_random_gains()
    x, y = _batch()
    x, y = x[:BATCH], y[:BATCH]
    reaching_agc = {}
    prepared = SGDAGC._prepared_gradient

    def spy(self, gradient, variable, value):
        reaching_agc[_compat.variable_index(self, variable)] = float(np.linalg.norm(keras.ops.convert_to_numpy(gradient)))
        return prepared(self, gradient, variable, value)

    monkeypatch.setattr(SGDAGC, "_prepared_gradient", spy)
    norms = {}
    for precision in ("mixed_float16", "float32"):
        policy(precision)
        model = build_nf_model(config, input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
        model.set_weights(initial)
        model.compile(SGDAGC(0.5, momentum=0.0, clip_factor=0.01), keras.losses.CategoricalCrossentropy(from_logits=True),
                      run_eagerly=True)  # eager: the spy sees values
        reaching_agc.clear()
        model.train_on_batch(x, y)
        norms[precision] = dict(reaching_agc)
        if precision == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
            assert float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale)) == LOSS_SCALE  # applied, not skipped
    ratios = np.array([norms["mixed_float16"][k] / norms["float32"][k] for k in norms["float32"] if norms["float32"][k]])
    print(f"gradient norm reaching AGC, mixed_float16 / float32: {ratios.min():.2f} to {ratios.max():.2f} "
          f"over {len(ratios)} tensors")
    assert len(ratios) > 40
    # float16 noise (measured: most tensors within 5%, a few scalar gains down to 0.23); loss-scaled
    # gradients would be ~32768x
    assert 0.9 < np.median(ratios) < 1.1 and 0.1 < ratios.min() and ratios.max() < 10.0


@pytest.mark.slow
def test_bfloat16_keeps_ws_statistics_agc_norms_and_ema_in_float32(policy, monkeypatch):
    """Under ``mixed_bfloat16`` the traced training step computes the kernels' WS moments and
    AGC's unit-wise norms in float32 (recorded while the step is traced), and the EMA averages
    and their updates are float32, while activations are bfloat16."""
    policy("mixed_bfloat16")
    table = backend.current()
    seen = {"moments": set(), "norms": set(), "ema": set(), "activations": set()}
    moments = table.kernel_moments

    def spy_moments(kernel, *args, **kwargs):
        result = moments(kernel, *args, **kwargs)
        seen["moments"].update({_dtype(kernel), *(_dtype(r) for r in result)})
        return result

    norm = optimizers_module.unitwise_norm

    def spy_norm(x):
        result = norm(x)
        seen["norms"].update({_dtype(x), _dtype(result)})
        return result

    updater = table.ema_updater

    def spy_updater(update, weights):
        def recording(d, current):  # the decay and the model's weights the averages follow
            seen["ema"].update({_dtype(d), *(_dtype(w) for w in current)})
            return update(d, current)

        return updater(recording, weights)

    monkeypatch.setattr(table, "kernel_moments", spy_moments)
    if keras.backend.backend() == "tensorflow":  # Scaled WS's XLA programs are traced once per shape and kept
        from keras_nfnets.backend import tf_fused

        tf_fused._standardization_programs.cache_clear()
        tf_fused._compiled.cache_clear()  # AGC's program: a toy of the same shapes may have traced it in an earlier test
    monkeypatch.setattr(optimizers_module, "unitwise_norm", spy_norm)
    monkeypatch.setattr(table, "ema_updater", spy_updater)
    config = toy_config("nfnet")
    keras.utils.set_random_seed(0)
    model = build_nf_model(config, input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
    model.compile(SGDAGC(0.1, clip_factor=0.01), keras.losses.CategoricalCrossentropy(from_logits=True))
    x, y = _batch()
    inner = keras.Model(model.input, model.get_layer("stage1_block1_conv1").output)
    seen["activations"].add(_dtype(keras.ops.convert_to_tensor(inner(x[:1]))))
    ema = ExponentialMovingAverage(0.9)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[ema])
    seen["ema"].update(_dtype(average) for average in ema.averages)
    print(seen)
    assert seen["activations"] == {"bfloat16"}
    for what in ("moments", "norms", "ema"):
        assert seen[what] == {"float32"}, (what, seen[what])


def test_mixed_precision_is_refused_where_the_device_cannot_compute_it(tmp_path, monkeypatch):
    """Known hardware: TPUs have no float16 units; GPUs compute bfloat16 from Ampere (8.0) and
    float16 from Pascal (6.0); CPUs run both. ``train`` asks before it loads data or builds."""
    from keras_nfnets.training import check_precision

    with pytest.raises(ValueError, match="cannot run on a TPU.*mixed_bfloat16"):
        check_precision("mixed_float16", [("TPU", None)])
    with pytest.raises(ValueError, match="compute capability 8.0 or newer; this one is 7.5.*mixed_float16"):
        check_precision("mixed_bfloat16", [("GPU", (8, 0)), ("GPU", (7, 5))])  # a T4 among A100s
    with pytest.raises(ValueError, match="6.0 or newer; this one is 5.2"):
        check_precision("mixed_float16", [("GPU", (5, 2))])
    for precision, devices in [("mixed_bfloat16", [("TPU", None)]), ("mixed_bfloat16", [("GPU", (9, 0))]),
                               ("mixed_float16", [("GPU", (7, 0))]), ("mixed_float16", [("CPU", None)]),
                               ("mixed_bfloat16", [("CPU", None)]), ("float32", [("TPU", None)])]:
        check_precision(precision, devices)  # these run
    with pytest.raises(ValueError, match="Unknown precision 'float16'"):
        check_precision("float16", [("CPU", None)])
    assert backend.current().compute_devices(None) == [("CPU", None)]  # this machine, as the table reports it
    # train() refuses before it reads the dataset or builds a model
    from keras_nfnets import data
    from keras_nfnets.training import run as run_module

    table = backend.current()
    monkeypatch.setattr(table, "compute_devices", lambda strategy: [("GPU", (7, 0))])
    monkeypatch.setattr(data, "load_source", lambda *a, **k: pytest.fail("data was read before the refusal"))
    monkeypatch.setattr(run_module, "_build_and_compile", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(ValueError, match="compute capability 8.0"):
        train("NFResNet14", "digits", precision="mixed_bfloat16", output_dir=str(tmp_path / "b"))
