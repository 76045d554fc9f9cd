"""The same models, weights and numbers on every Keras 3 backend (issue 14): TensorFlow here, JAX
and PyTorch each in a fresh process (``tests/backend_worker.py``, the backend is fixed when Keras
is imported). Weights are made under TensorFlow with every constant-initialised tensor (gains,
SkipInit gains, the zero classifier) randomised, so that every layer shows in the logits."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import HERE, REPO_ENV, needs_timm, offline_hub_env
from harness import build_named

import keras
from keras_nfnets import from_timm, signal_propagation
from keras_nfnets.applications import BUILDERS
from keras_nfnets.models import build_nf_model
from keras_nfnets.spp import figure_models
from keras_nfnets.training import SGDAGC

EACH_BACKEND = ("jax", "torch")
BACKENDS = [b for b in EACH_BACKEND if importlib.util.find_spec(b) is not None]
# the three families: NFNet-F0's blocks at toy widths (tests/harness.py; grouped convs, SE, GELU, the
# final conv: every layer type of F0), whose full 71M-parameter build dominated the workers' time
MODELS = ("NFResNet26", "NFRegNetB0", "toy_nfnet")
# folded on the other backends: SE, grouped convs, tanh-GELU from built-ins (NF-ResNet-26 folds like
# them minus those; all three families fold exactly under TensorFlow: test_export.py)
FOLDED = ("NFRegNetB0", "toy_nfnet")
# Under pytest-xdist (setup.cfg) this module's checks run on one worker, which makes the weights,
# inputs and TensorFlow's figures (the fixtures below) once and each backend's worker process once.
pytestmark = [pytest.mark.skipif(len(BACKENDS) < 2, reason="jax and torch are test extras"),
              pytest.mark.xdist_group("backends")]


def _randomised(name, shape, seed=0):
    from keras_nfnets.export.verification import randomise_weights

    keras.utils.set_random_seed(seed)
    return randomise_weights(build_named(name, input_shape=shape, classes=10), seed)


def _run_worker(backend, task, tmp_path, env=None):
    task = dict(task, backend=backend, dir=str(tmp_path), out=str(tmp_path / f"result_{backend}.json"))
    path = tmp_path / f"task_{backend}.json"
    path.write_text(json.dumps(task))
    env = dict(REPO_ENV, KERAS_BACKEND=backend, **(env or {}))
    result = subprocess.run([sys.executable, os.path.join(HERE, "backend_worker.py"), str(path)], capture_output=True,
                            text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((tmp_path / f"result_{backend}.json").read_text())


@pytest.fixture(scope="module")
def made_under_tensorflow(tmp_path_factory):
    """Weights, a .keras file, inputs and TensorFlow's logits for the three families at 64 px."""
    tmp_path = tmp_path_factory.mktemp("backends")
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    weights, reference = {}, {}
    for name in MODELS:
        model = _randomised(name, (64, 64, 3))
        weights[name] = str(tmp_path / f"{name}.weights.h5")
        model.save_weights(weights[name])
        reference[name] = keras.ops.convert_to_numpy(model(x, training=False))
        if name == "NFRegNetB0":
            model.save(tmp_path / "model.keras")
            _save_preset_and_its_reference(model, x, tmp_path)
    return tmp_path, x, weights, reference


def _save_preset_and_its_reference(model, x, folder):
    """A keras-hub preset of ``model`` (keras_nfnets.save_preset), its builder logits (the pooled
    features through the classifier: the builder ends in softmax) and raw images with our
    EvalTransform's output for them, for the workers' ``preset`` check."""
    from keras_nfnets import names, save_preset
    from keras_nfnets.export.verification import sample_images
    from keras_nfnets.preprocessing import eval_transform

    save_preset(model, folder / "preset")
    pooled = keras.Model(model.input, model.get_layer(names.CLASSIFIER).input)(x)
    kernel, bias = model.get_layer(names.CLASSIFIER).get_weights()
    np.save(folder / "preset_logits.npy", keras.ops.convert_to_numpy(pooled) @ kernel + bias)
    raw = np.clip(sample_images(2, 90, seed=3)[:, :, 5:85] * 58 + 120, 0, 255).astype("float32")  # 90 x 80
    np.save(folder / "preset_raw.npy", raw)
    transform = eval_transform("NFRegNetB0", 64)
    np.save(folder / "preset_images.npy", np.stack([transform(image).numpy() for image in raw]))


SPP_DEPTH = 36  # Figure 2's models (BN ReLU-BN-Conv, NF He init, NF Scaled WS) as ResNetV2-36 at 64 px


@pytest.fixture(scope="module")
def spp_under_tensorflow(made_under_tensorflow):
    """SPP inputs, the weights of Figure 2's models (BN ReLU-BN-Conv, NF He init, NF Scaled WS) and
    TensorFlow's SPP statistics of them. (The three families' layers are checked by the logits;
    these models cover what SPP adds: BatchNorm in training mode, plain and WS convolutions, the
    per-block statistics and the residual branches' ends.)"""
    folder, _, weights, _ = made_under_tensorflow
    inputs = np.random.default_rng(3).standard_normal((4, 64, 64, 3)).astype("float32")
    np.save(folder / "spp_x.npy", inputs)
    spp_weights, models = {}, {}
    for _, config, _ in figure_models(2, depth=SPP_DEPTH):
        keras.utils.set_random_seed(0)
        models[config.name] = build_nf_model(config, include_top=False, input_shape=(64, 64, 3))
        spp_weights[config.name] = str(folder / f"{config.name}.weights.h5")
        models[config.name].save_weights(spp_weights[config.name])
    return spp_weights, {name: signal_propagation(model, inputs=inputs) for name, model in models.items()}


CONV_CASES = [  # (input shape, kernel shape HWIO, strides, padding, dilation, groups)
    ((2, 9, 9, 8), (3, 3, 8, 12), (1, 1), "same", (1, 1), 1),
    ((2, 15, 15, 16), (3, 3, 4, 16), (2, 2), "same", (1, 1), 4),   # odd size, stride 2: TF's asymmetric SAME
    ((2, 16, 16, 16), (3, 3, 2, 24), (2, 2), "symmetric", (1, 1), 8),
    ((2, 10, 10, 12), (1, 1, 12, 20), (2, 2), "same", (1, 1), 1),  # 1x1 strided (a matmul on JAX's CPU)
    ((2, 10, 10, 12), (1, 1, 12, 20), (1, 1), "valid", (1, 1), 1),
    ((2, 12, 12, 8), (3, 3, 4, 8), (1, 1), "same", (2, 2), 2),      # dilated, grouped
    ((2, 13, 13, 6), (5, 5, 3, 6), (2, 2), "valid", (1, 1), 2),
    ((2, 14, 14, 3), (7, 7, 3, 8), (2, 2), "symmetric", (1, 1), 1),  # timm's ResNet stem
]
# timm checkpoints loaded on each backend: nf_regnet_b1 (also weights="imagenet" from the Hub cache)
# and eca_nfnet_l0 (ECA and timm's L layout, which no builder of the forward check has). The other
# parity models' layers are the forward check's three families on every backend, and their
# checkpoints' NumPy conversion is checked against timm's logits in test_weights.py.
TIMM_CHECKPOINTS = ("nf_regnet_b1", "eca_nfnet_l0")


@pytest.fixture(scope="module")
def conv_cases(tmp_path_factory):
    """Inputs, kernels and cotangents of :data:`CONV_CASES` (saved for the workers) and TensorFlow's
    conv and its gradients on them: its native grouped conv where it has gradients, else one conv
    per group (the probe's choice; both checked against NumPy and each other in test_ws_conv.py)."""
    import tensorflow as tf

    from keras_nfnets.layers.conv_ops import conv2d

    rng = np.random.default_rng(5)
    arrays, reference = {"cases": json.dumps([dict(strides=c[2], padding=c[3], dilation=c[4], groups=c[5])
                                              for c in CONV_CASES])}, {}
    for index, (x_shape, k_shape, strides, padding, dilation, groups) in enumerate(CONV_CASES):
        x = tf.constant(rng.standard_normal(x_shape).astype("float32"))
        k = tf.constant(rng.standard_normal(k_shape).astype("float32"))
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = conv2d(x, k, strides, padding, dilation, groups, implementation="auto")
        r = rng.standard_normal(y.shape).astype("float32")
        dx, dk = tape.gradient(y, [x, k], output_gradients=tf.constant(r))
        arrays.update({f"x{index}": x.numpy(), f"k{index}": k.numpy(), f"r{index}": r})
        reference.update({f"y{index}": y.numpy(), f"dx{index}": dx.numpy(), f"dk{index}": dk.numpy()})
    path = tmp_path_factory.mktemp("conv") / "conv_cases.npz"
    np.savez(path, **arrays)
    return path, reference


@pytest.fixture(scope="module")
def on_backend(made_under_tensorflow, spp_under_tensorflow, conv_cases, timm_reference, tmp_path_factory):
    """``on_backend(name)``: ONE worker process per backend (cached) runs every check of this module
    there: logits from .weights.h5 and .keras files, folding, SPP, one SGD+AGC step, a short
    ``train`` run and an augmented ``fit``, conv2d and its gradients on every path, timm checkpoints
    and ``weights="imagenet"`` from an offline Hub cache; on JAX also ``train`` on one device and on
    two (host devices forced by XLA_FLAGS). Returns ``(its folder, its results)``."""
    folder, _, weights, _ = made_under_tensorflow
    runs = {}

    def run(backend):
        if backend not in runs:
            place = tmp_path_factory.mktemp(f"on_{backend}")
            env, _ = offline_hub_env(place, timm_reference / "nf_regnet_b1.safetensors")
            timm = {}
            for name in TIMM_CHECKPOINTS:
                np.save(place / f"{name}_x.npy", np.load(timm_reference / f"{name}.npz")["x"])
                timm[name] = [str(timm_reference / f"{name}.safetensors"), str(place / f"{name}_x.npy")]
            task = {"x": str(folder / "x.npy"), "forward": weights, "keras_file": str(folder / "model.keras"),
                    "fold": {name: weights[name] for name in FOLDED},
                    "spp": {"depth": SPP_DEPTH, "weights": spp_under_tensorflow[0], "x": str(folder / "spp_x.npy")},
                    "agc_step": {"model": "NFResNet26", "weights": weights["NFResNet26"]},
                    "train": str(place / "run"), "conv": str(conv_cases[0]), "timm": timm,
                    "preset": {"dir": str(folder / "preset"), "raw_images": str(folder / "preset_raw.npy")},
                    "accumulation": True}
            if backend == "jax":
                task["initialization"] = True
                task["data_parallel"] = {"one_device": str(place / "one_device"), "auto": str(place / "two_devices")}
                # two host devices; LLVM's optimisation passes off: the worker compiles hundreds of eager ops
                # (initialisers, one op at a time) and runs each about once (274 -> 216 s on 2 cores, the
                # logits within 1.4e-6 of TensorFlow's). The README's JAX job runs with XLA's defaults.
                env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"
                task["train"] = None  # train() runs on JAX in data_parallel below and in the README's JAX job
            runs[backend] = place, _run_worker(backend, task, place, env=env)
        return runs[backend]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_models_give_tensorflows_logits_on_every_backend(backend, made_under_tensorflow, on_backend):
    folder, x, weights, reference = made_under_tensorflow
    tmp_path, result = on_backend(backend)
    print(backend, "worker seconds per check:", result["seconds"])
    assert result["backend"] == backend
    # building the models and loading .weights.h5 / .keras files needs no TensorFlow there
    assert result["tensorflow_imported_by_models"] is False
    for name in MODELS:
        logits = np.load(tmp_path / f"{name}_{backend}.npy")
        relative = np.abs(logits - reference[name]).max() / np.abs(reference[name]).max()
        print(f"{backend} {name}: {relative:.1e} of the logit scale")
        assert relative < 1e-4, name
    from_file = np.load(tmp_path / f"keras_file_{backend}.npy")
    assert np.abs(from_file - reference["NFRegNetB0"]).max() < 1e-4 * np.abs(reference["NFRegNetB0"]).max()


@pytest.mark.slow
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_keras_hub_loads_a_preset_with_the_builders_logits_on_every_backend(backend, made_under_tensorflow,
                                                                            on_backend):
    """A preset written under TensorFlow (save_preset), loaded by keras-hub's own
    ImageClassifier.from_preset on JAX and PyTorch: the builder's logits within 1e-5 of the logit
    scale, and the preprocessor's images (the converter's keras.ops) against our EvalTransform's:
    equal on JAX; on PyTorch Keras' resize is torch's antialiased bicubic, whose kernel differs
    from TensorFlow's/PIL's (measured: mean 2.9e-3, max 9.3e-2 in normalised units, about 5/255)."""
    folder = made_under_tensorflow[0]
    tmp_path, result = on_backend(backend)
    assert result["preset_classes"] == ["NFNetImageClassifier", "NFNetImageClassifierPreprocessor"]
    expected = np.load(folder / "preset_logits.npy")
    got = np.load(tmp_path / f"preset_logits_{backend}.npy")
    print(f"{backend} preset: {np.abs(got - expected).max() / np.abs(expected).max():.1e} of the logit scale")
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    images, ours = np.load(tmp_path / f"preset_images_{backend}.npy"), np.load(folder / "preset_images.npy")
    difference = np.abs(images - ours)
    print(f"{backend} converter vs EvalTransform: mean {difference.mean():.1e}, max {difference.max():.1e}")
    assert images.shape == ours.shape
    if backend == "jax":
        assert difference.max() < 1e-3
    else:
        assert difference.mean() < 1e-2 and difference.max() < 0.15


@pytest.mark.slow
def test_tensorflows_own_floor_with_onednn_off(made_under_tensorflow, tmp_path):
    """The floor the cross-backend figures are compared with: TensorFlow against itself, oneDNN
    on (this process) and off (a fresh one). Reported; bounded only loosely."""
    folder, x, weights, reference = made_under_tensorflow
    _run_worker("tensorflow", {"x": str(folder / "x.npy"), "forward": weights}, tmp_path,
                env={"TF_ENABLE_ONEDNN_OPTS": "0"})
    for name in MODELS:
        logits = np.load(tmp_path / f"{name}_tensorflow.npy")
        relative = np.abs(logits - reference[name]).max() / np.abs(reference[name]).max()
        print(f"tensorflow oneDNN off vs on {name}: {relative:.1e} of the logit scale")
        assert relative < 1e-4, name


@pytest.mark.slow
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_one_sgd_agc_step_updates_the_weights_alike(backend, made_under_tensorflow, on_backend):
    import dataclasses

    from keras_nfnets.models import build_nf_model

    folder, x, weights, _ = made_under_tensorflow
    # without dropout and stochastic depth (their random masks differ between backends), with logits out
    # (on TensorFlow alone Keras' from_logits=True digs the logits out from under a softmax)
    config = dataclasses.replace(BUILDERS["NFResNet26"].config, drop_rate=0.0, stochastic_depth_rate=0.0)
    model = build_nf_model(config, input_shape=(64, 64, 3), classes=10, classifier_activation=None)
    model.load_weights(weights["NFResNet26"])
    before = {w.path: keras.ops.convert_to_numpy(w.value) for w in model.weights}
    model.compile(SGDAGC(0.4, momentum=0.9, clip_factor=0.01, weight_decay=1e-3),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, np.eye(10, dtype="float32")[np.arange(len(x)) % 10])
    after = {w.path: keras.ops.convert_to_numpy(w.value) for w in model.weights}
    place, _ = on_backend(backend)
    other = np.load(place / f"agc_step_{backend}.npz")
    assert set(other.files) == set(after)
    differences = {k: np.abs(other[k] - after[k]).max() / max(np.abs(after[k]).max(), 1e-12) for k in after}
    worst = max(differences.values())
    moved = [k for k in after if np.abs(after[k] - before[k]).max() > 1e-4 * np.abs(before[k]).max()]
    print(f"{backend}: worst relative weight difference after one step {worst:.1e}; {len(moved)} tensors moved")
    assert len(moved) > 50  # a real step (AGC clips, decay, momentum)
    assert worst < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_train_runs_on_every_backend_with_agc_ema_and_cutmix_mixup(backend, on_backend):
    """A short ``train`` run with AGC and EMA (PyTorch; on JAX the README's digits run reaches 95%
    there and its model.keras evaluates under TensorFlow, test_readme.py, and the
    data-parallel runs below train with AGC and EMA), then ``model.fit`` with NFNet's recipe fed by CutMix +
    MixUp + RandAugment batches (both backends)."""
    tmp_path, result = on_backend(backend)
    if backend == "torch":
        history, test = result["train"]["history"], result["train"]["test"]
        print(backend, history["loss"], test)
        assert len(history["loss"]) == 3 and np.all(np.isfinite(history["loss"]))
        assert history["loss"][-1] < history["loss"][0]  # it learns
        assert test["accuracy"] > 0.2  # 10 classes, 24 steps at batch 32
        # the run's files are the same as on TensorFlow, and the saved model loads here (TensorFlow)
        assert {"model.keras", "run.json", "history.json", "backup"} <= set(os.listdir(tmp_path / "run"))
        model = keras.saving.load_model(tmp_path / "run" / "model.keras")
        assert model.output.shape[-1] == 10
    else:
        assert "train" not in result
    # model.fit with NFNet's recipe fed by CutMix + MixUp + RandAugment batches on that backend
    fit = result["augmented_fit"]
    print(backend, fit)
    assert "CutMix 1 / MixUp 0.2, RandAugment (4, 5)" in fit["recipe"] and "label smoothing 0.1" in fit["recipe"]
    assert len(fit["loss"]) == 1 and np.isfinite(fit["loss"][0])
    np.testing.assert_allclose(fit["label_sums"], 1.0, atol=1e-5)  # mixed labels still sum to one
    assert np.mean(np.array(fit["labels_per_row"]) == 2) > 0.5  # most rows mix two classes


@pytest.mark.slow
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_accumulated_steps_equal_the_large_batch_and_remat_the_plain_step(backend, on_backend):
    """On JAX and PyTorch (TensorFlow: test_accumulation.py, which also shows that AGC on each
    micro-batch gives another step): N micro-batches with Keras' accumulation equal the batch N
    times larger after K optimizer steps (weights and EMA, AGC clipping the mean); remat leaves the
    step's update unchanged with stochastic depth drawing masks (other masks change it)."""
    _, result = on_backend(backend)
    accumulation, remat = result["accumulation"], result["remat"]
    print(backend, accumulation, remat)
    assert accumulation["accumulated"] < 1e-5 and accumulation["accumulated_ema"] < 1e-5
    assert accumulation["optimizer_steps"] == [3, 3] and accumulation["ema_steps"] == [3, 3]
    assert remat["blocks_under_remat"] >= 2 and remat["remat"] < 1e-6 and remat["other_masks"] > 1e-2


@pytest.mark.slow
def test_jax_builds_draw_keras_own_initial_values_by_size_class(on_backend):
    """On JAX the builder draws Keras' random initialisers once per size class (a power of two)
    instead of once per weight shape (``backend.variable_initialization``, through
    ``_compat.keras_random_draws_replaced``): every initialiser the models and Keras' layers use,
    at shapes of every kind, gives Keras' own values and leaves the seed where Keras leaves it,
    and a toy NFNet (WS convs, SE, gains, skip gains, classifier) is built with Keras' weights.
    A Keras or JAX change that breaks the equivalence (the draws' bounds or scaling, the seed
    handling, JAX's Threefry layout) fails here by name."""
    initialization = on_backend("jax")[1]["initialization"]
    print(initialization)
    assert len(initialization["draws"]) == 21 and max(initialization["draws"].values()) == 0.0
    assert initialization["weights"] > 50 and initialization["random_weights"] >= 15
    assert initialization["model"] == 0.0


@pytest.mark.slow
def test_jax_data_parallel_over_two_devices_equals_one(on_backend):
    """train(strategy="auto") on JAX with two (host) devices uses keras.distribution.DataParallel;
    the gradient is the whole batch's, so AGC clips the averaged gradient and the run (EMA on too)
    equals the one-device run (strategy="one_device" in the same process)."""
    runs = on_backend("jax")[1]["data_parallel"]
    runs = {1: runs["one_device"], 2: runs["auto"]}
    print(runs)
    assert "AGC λ=0.01" in runs[1]["recipe"] and "EMA 0.9" in runs[1]["recipe"]  # train() with AGC and EMA on JAX
    assert runs[2]["replicas"] == 2 and runs[2]["distribution"] == "DataParallel"
    assert runs[1]["replicas"] == 1 and runs[1]["distribution"] == "NoneType"
    np.testing.assert_allclose(runs[2]["history"]["loss"], runs[1]["history"]["loss"], rtol=1e-5)
    assert runs[2]["test"]["accuracy"] == pytest.approx(runs[1]["test"]["accuracy"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_conv2d_and_its_gradients_equal_tensorflows_on_every_path(backend, conv_cases, on_backend):
    """The conv paths of each backend (auto, native, per-group split; the channels-last view on
    PyTorch, the matmul for 1x1 convs and im2col on JAX's CPU), forward and backward, and an eager
    call (on JAX one compiled native conv), against TensorFlow's (:func:`conv_cases`)."""
    reference = conv_cases[1]
    tmp_path, _ = on_backend(backend)
    other = np.load(tmp_path / f"conv_{backend}.npz")
    worst = 0.0
    for index in range(len(CONV_CASES)):
        for name in ("y", "dx", "dk"):
            expected = reference[f"{name}{index}"]
            for implementation in ("auto", "native", "split"):
                got = other[f"{name}{index}_{implementation}"]
                assert got.shape == expected.shape, (index, name, implementation)
                relative = np.abs(got - expected).max() / np.abs(expected).max()
                worst = max(worst, relative)
                assert relative < 1e-5, (CONV_CASES[index], name, implementation, relative)
        got = other[f"y{index}_eager"]  # an eager call (JAX: one compiled native conv, no gradient to serve)
        relative = np.abs(got - reference[f"y{index}"]).max() / np.abs(reference[f"y{index}"]).max()
        worst = max(worst, relative)
        assert got.shape == reference[f"y{index}"].shape and relative < 1e-5, (CONV_CASES[index], "eager", relative)
    print(f"{backend}: worst conv2d / gradient difference to TensorFlow {worst:.1e} (relative)")


@pytest.mark.slow
@needs_timm
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_timm_checkpoints_and_imagenet_weights_give_timms_logits(backend, timm_reference, on_backend):
    """from_timm (safetensors -> NumPy -> Keras) and weights="imagenet" (an offline Hub cache holding
    a local checkpoint) on JAX and PyTorch, against timm's own logits; no TensorFlow imported."""
    tmp_path, result = on_backend(backend)
    assert result["tensorflow_imported_by_weights"] is False
    outputs = {name: np.load(tmp_path / f"timm_{name}_{backend}.npy") for name in TIMM_CHECKPOINTS}
    outputs["weights='imagenet'"] = np.load(tmp_path / f"imagenet_nf_regnet_b1_{backend}.npy")
    for name, logits in outputs.items():
        reference = np.load(timm_reference / f"{name if name in TIMM_CHECKPOINTS else 'nf_regnet_b1'}.npz")["logits"]
        relative = np.abs(logits - reference).max() / np.abs(reference).max()
        print(f"{backend} {name}: {relative:.1e} of timm's logit scale")
        assert relative < 1e-4, name
    cached = tmp_path / "keras" / "models" / "keras_nfnets" / "nf_regnet_b1.ra2_in1k.weights.h5"
    assert cached.exists()  # the converted cache, written on that backend, loads here (TensorFlow)
    model = from_timm("nf_regnet_b1", pretrained=False, input_shape=(64, 64, 3), classifier_activation=None)
    model.load_weights(cached)
    x = np.load(tmp_path / "nf_regnet_b1_x.npy")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), outputs["weights='imagenet'"], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_signal_propagation_statistics_agree_across_backends(backend, spp_under_tensorflow, on_backend):
    """SPP (paper §3) of Figure 2's models, BatchNorm in training mode included, with weights made
    under TensorFlow: every statistic within 1e-4 (relative)."""
    reference = spp_under_tensorflow[1]
    tmp_path, _ = on_backend(backend)
    worst = 0.0
    for name, stats in reference.items():
        other = np.load(tmp_path / f"spp_{name}_{backend}.npz")
        for field in ("avg_sq_mean", "avg_var", "residual_avg_var"):
            expected = getattr(stats, field)
            assert other[field].shape == expected.shape and expected.size >= 4, (name, field)
            relative = np.abs(other[field] - expected).max() / np.abs(expected).max()
            worst = max(worst, relative)
            assert relative < 1e-4, (name, field, relative)
    print(f"{backend}: worst SPP statistic difference {worst:.1e} (relative), {len(reference)} models")


@pytest.mark.slow
@pytest.mark.parametrize("backend", EACH_BACKEND)
def test_folding_runs_on_every_backend_and_exports_under_tensorflow(backend, made_under_tensorflow, on_backend,
                                                                    tmp_path):
    """fold_weight_standardization on JAX/PyTorch gives the unfolded TensorFlow logits; the folded
    .keras file it writes loads under TensorFlow (without keras_nfnets layers) and exports to TFLite
    with the same logits: the documented export path from another backend."""
    from keras_nfnets.export import export_tflite, run_exported

    folder, x, weights, reference = made_under_tensorflow
    place, _ = on_backend(backend)
    for name in FOLDED:
        folded_logits = np.load(place / f"folded_{name}_{backend}.npy")
        relative = np.abs(folded_logits - reference[name]).max() / np.abs(reference[name]).max()
        print(f"{backend} {name} folded there vs unfolded on TensorFlow: {relative:.1e}")
        assert relative < 1e-4, name
    folded = keras.saving.load_model(place / f"folded_NFRegNetB0_{backend}.keras")
    assert all(type(layer).__module__.startswith("keras.") for layer in folded.layers)
    if backend == "jax":  # the export below is TensorFlow's work, the same for either file: once is enough
        return
    export_tflite(folded, tmp_path / "model.tflite")
    exported = run_exported(str(tmp_path / "model.tflite"), x)
    relative = np.abs(exported - reference["NFRegNetB0"]).max() / np.abs(reference["NFRegNetB0"]).max()
    print(f"TFLite of the model folded on {backend}: {relative:.1e}")
    assert relative < 1e-4
