"""Recipes, data pipelines, precision, resume, NaN handling and the digits run (issue 6)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_nfnets.cli import main
from conftest import HERE, ON_QUICK_RUN, QUICK, REPO_ENV
import keras_nfnets
from keras_nfnets import data
from keras_nfnets.training import (
    ExponentialMovingAverage,
    StopOnNaN,
    evaluate,
    make_strategy,
    paper_hyperparameters,
    recipe,
    set_precision,
    train,
)



# --- recipes ------------------------------------------------------------------------------------
def test_nfnet_recipe_is_the_papers_scaled_to_the_batch():
    plan = recipe("NFNetF1", batch_size=512, epochs=36, steps_per_epoch=100)
    h = plan.hyperparameters
    assert plan.learning_rate == pytest.approx(0.1 * 512 / 256)  # 1.6 at 4096
    assert h.clip_factor == 0.01 and plan.optimizer.clip_factor == 0.01 and plan.optimizer.eps == 1e-3
    assert h.weight_decay == 2e-5 and plan.loss.label_smoothing == 0.1
    assert h.randaugment == (4, 10) and h.mixup_alpha == 0.2 and h.cutmix_alpha == 1.0
    assert plan.warmup_steps == round(5 * 36 / 360 * 100)  # the paper's warmup fraction
    assert 0.99 < plan.ema_decay < 0.99999
    assert any(isinstance(c, ExponentialMovingAverage) for c in plan.callbacks)
    assert any(isinstance(c, StopOnNaN) for c in plan.callbacks)
    assert [paper_hyperparameters(f"NFNetF{i}").randaugment[1] for i in range(8)] == [5, 10, 10, 15, 15, 15, 15, 15]
    assert recipe("NFNetF0", 4096, 360, 312).ema_decay == 0.99999  # the paper's own run keeps its decay


def test_nf_regnet_and_nf_resnet_recipes():
    regnet = recipe("NFRegNetB0", batch_size=1024, epochs=360, steps_per_epoch=1251)
    assert regnet.learning_rate == pytest.approx(0.4) and regnet.hyperparameters.weight_decay == 5e-5
    assert regnet.hyperparameters.randaugment is None and regnet.augmentation.mixes  # CutMix+MixUp, no RA (§6)
    assert regnet.hyperparameters.clip_factor is None and regnet.optimizer.clip_factor == 0.0
    resnet = recipe("NFResNet50", batch_size=1024, epochs=90, steps_per_epoch=1251)
    assert resnet.learning_rate == pytest.approx(0.4) and resnet.ema_decay is None
    assert not resnet.augmentation.enabled
    off = recipe("NFNetF0", 256, 10, 10, clip_factor=None, ema=None, augmentation=None, learning_rate=0.05)
    assert off.optimizer.clip_factor == 0.0 and off.ema_decay is None and not off.augmentation.enabled
    assert off.learning_rate == 0.05
    with pytest.raises(ValueError, match="No recipe"):
        recipe("ResNet50", 256, 1, 1)
    with pytest.raises(ValueError, match="batch_size"):
        recipe("NFNetF0", 0, 1, 1)
    with pytest.warns(UserWarning, match="4096"):
        recipe("NFNetF0", 8192, 1, 10)


def test_weight_decay_and_agc_groups_on_a_model():
    model = keras_nfnets.NFResNet14(input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    plan = recipe("NFNetF0", 64, 1, 10)
    plan.optimizer.build(model.trainable_variables)
    groups = {v.path: (c, d) for v, c, d in zip(model.trainable_variables, plan.optimizer._clipped,
                                                plan.optimizer._decayed)}
    assert groups["predictions/kernel"] == (False, True)  # classifier: decayed, not clipped
    assert groups["predictions/bias"] == (True, False)
    assert groups["stage1_block1_conv2/kernel"] == (True, True)
    assert groups["stage1_block1_conv2/gain"] == (True, False)
    assert groups["stage1_block1_conv2/bias"] == (True, False)
    assert groups["stage1_block1_skip_gain/skip_gain"] == (True, False)


# --- data -----------------------------------------------------------------------------------------
def _batches(dataset):
    return list(dataset.as_numpy_iterator())


def test_digits_pipeline_is_seeded_and_resumes_epoch_exactly():
    source = data.load_source("digits", "train")
    assert source.num_examples == 1437 and source.num_classes == 10
    kwargs = dict(epochs=2, seed=4, flip=False, area_range=(0.6, 1.0))
    first = _batches(data.train_dataset(source, 32, 64, **kwargs))
    again = _batches(data.train_dataset(source, 32, 64, **kwargs))
    resumed = _batches(data.train_dataset(source, 32, 64, start_epoch=1, **kwargs))
    assert len(first) == 2 * (1437 // 64) and first[0][0].shape == (64, 32, 32, 3)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first[22:], resumed))  # epoch 2 alone == epoch 2
    assert not np.array_equal(first[0][1], first[22][1])  # a new order each epoch
    other = _batches(data.train_dataset(source, 32, 64, epochs=1, seed=5, flip=False))
    assert not np.array_equal(other[0][0], first[0][0])
    # every example exactly once per epoch: the label counts of a full pass match the split's
    labels = np.concatenate([b[1] for b in _batches(data.train_dataset(source, 32, 479, epochs=1, seed=1))])
    _, _, y_train, _ = data.sources._digits_split()
    np.testing.assert_array_equal(labels.sum(0), np.bincount(y_train, minlength=10))


def test_eval_transform_crops_inside_tf_data():
    """Each crop rule gives the right size from any image size, as a tf.data map (no eager code)."""
    images = [tf.cast(tf.reshape(tf.range(h * w * 3) % 251, (h, w, 3)), tf.uint8) for h, w in ((60, 80), (97, 41))]
    for crop in data.EVAL_CROPS:
        transform = data.EvalTransform(48, crop=crop, crop_pct=0.9)
        dataset = tf.data.Dataset.from_generator(lambda: iter(images), output_signature=tf.TensorSpec((None, None, 3), tf.uint8))
        shapes = [tuple(x.shape) for x in dataset.map(transform)]
        assert shapes == [(48, 48, 3), (48, 48, 3)], crop
    with pytest.raises(ValueError, match="crop"):
        data.EvalTransform(48, crop="zoom")


def test_tfds_pipeline_on_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24):
        source = data.load_source("oxford_flowers102", "train")
        assert source.num_examples == 24 and source.num_classes == 102 and source.records is not None
        batches = _batches(data.train_dataset(source, 48, 8, epochs=2, seed=3, shuffle_buffer=16))
        again = _batches(data.train_dataset(source, 48, 8, epochs=2, seed=3, shuffle_buffer=16))
        resumed = _batches(data.train_dataset(source, 48, 8, epochs=2, start_epoch=1, seed=3, shuffle_buffer=16))
        assert len(batches) == 6 and batches[0][0].shape == (8, 48, 48, 3) and batches[0][1].shape == (8, 102)
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again))
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches[3:], resumed))
        evaluation = _batches(data.eval_dataset(data.load_source("oxford_flowers102", "test"),
                                                data.EvalTransform(48, crop="crop_resize"), 10))
        assert sum(len(b[1]) for b in evaluation) == 24
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load_source("no_such_dataset_anywhere")


def _image_folder(root, classes=3, per_class=10, size=(40, 30)):
    rng = np.random.default_rng(0)
    for c in range(classes):
        os.makedirs(os.path.join(root, f"class{c}"), exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(60 + 60 * c, 20, size + (3,)), 0, 255).astype("uint8")
            tf.io.write_file(os.path.join(root, f"class{c}", f"{i}.png"), tf.io.encode_png(pixels))
    return root


@pytest.mark.slow
def test_image_folder_source_and_training(tmp_path):
    root = _image_folder(str(tmp_path / "images"))
    train_split = data.load_source(root, "train")
    test_split = data.load_source(root, "test")
    assert train_split.class_names == ("class0", "class1", "class2")
    assert (train_split.num_examples, test_split.num_examples) == (27, 3)  # every 10th file held out
    batches = _batches(data.train_dataset(train_split, 32, 9, epochs=1, seed=0))
    assert len(batches) == 3 and batches[0][0].shape == (9, 32, 32, 3)
    run = train("NFResNet14", root, output_dir=str(tmp_path / "run"), **{**QUICK, "batch_size": 9})
    assert run.settings["classes"] == 3 and np.isfinite(run.history["loss"]).all()
    assert os.path.exists(tmp_path / "run" / "model.keras")
    with pytest.raises(FileNotFoundError):
        data.load_source(str(tmp_path / "missing") + os.sep)
    os.makedirs(tmp_path / "empty" / "a")
    with pytest.raises(ValueError, match="class"):
        data.load_source(str(tmp_path / "empty"), "train")


# --- runs -----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("precision", [pytest.param("float32", marks=ON_QUICK_RUN), "mixed_bfloat16", "mixed_float16"])
def test_fit_steps_under_each_precision(tmp_path, precision, request, monkeypatch):
    traces = []
    original = keras.Model.train_step
    monkeypatch.setattr(keras.Model, "train_step", lambda self, data: traces.append(1) or original(self, data))
    try:
        run = request.getfixturevalue("quick_digits_run") if precision == "float32" else \
            train("NFResNet14", "digits", precision=precision, output_dir=str(tmp_path), **QUICK)
        if precision != "float32":  # optimizer slots (loss scale included) and metrics built before fit:
            assert len(traces) == 1  # one trace of the step, not a second one after the first made them
        assert run.settings["jit_compile"] is False  # "auto": Keras' rule, no XLA on a CPU-only TensorFlow machine
        conv = run.model.get_layer("stage1_block1_conv2")
        assert conv.compute_dtype == precision.replace("mixed_", "")
        assert conv.kernel.dtype == "float32"  # weights (and WS statistics) stay float32
        if precision == "mixed_float16":
            assert isinstance(run.model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert all(np.isfinite(run.history["loss"])) and len(run.history["loss"]) == 2
    finally:
        set_precision("float32")


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights_and_history(tmp_path, capsys, monkeypatch):
    from keras_nfnets.training import run as run_module

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    settings = dict(QUICK, epochs=3, ema=0.9, augment="paper", randaugment=(2, 10))  # with RandAugment on
    straight = train("NFResNet14", "digits", output_dir=str(tmp_path / "a"), **{**settings, "tensorboard": True})
    record = json.load(open(tmp_path / "a" / "run.json"))  # what runs (issue 44: "paper" beside "RandAugment off")
    assert record["randaugment"] == [2, 10] and "RandAugment (2, 10)" in record["recipe"]
    with pytest.raises(KeyboardInterrupt):
        train("NFResNet14", "digits", output_dir=str(tmp_path / "b"), callbacks=[Interrupt()], **settings)
    assert os.path.exists(tmp_path / "b" / "interrupted.weights.h5")
    progress = json.load(open(tmp_path / "b" / "backup" / "training_metadata.json"))
    assert progress["epoch"] == 2
    interrupted_history = json.load(open(tmp_path / "b" / "history.json"))["history"]
    assert len(interrupted_history["loss"]) == 2  # the finished epochs are on disk despite the interrupt
    keras.backend.clear_session()
    resumed = train("NFResNet14", "digits", output_dir=str(tmp_path / "b"), **settings)
    # the history is merged across the resume: all three epochs, equal to the uninterrupted run's
    assert len(resumed.history["loss"]) == 3
    for key in straight.history:
        np.testing.assert_allclose(resumed.history[key], straight.history[key], rtol=1e-4, err_msg=key)
    saved = json.load(open(tmp_path / "b" / "history.json"))
    assert saved["history"] == resumed.history and saved["test"] == resumed.metrics
    assert not os.path.exists(tmp_path / "b" / "interrupted.weights.h5")  # superseded by model.keras
    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value),
                                   rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert resumed.metrics["accuracy"] == pytest.approx(straight.metrics["accuracy"])

    # a finished run is never rewritten: other settings are refused, the same ones are a no-op; both
    # answers come before any model is built (the builder fails if called)
    files = {name: (tmp_path / "b" / name).read_bytes() for name in ("history.json", "run.json", "model.keras")}
    monkeypatch.setattr(run_module, "build_classifier", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(ValueError, match=r"`epochs`: 3 in the checkpoint, 5 now; `batch_size`: 16 in the checkpoint, "
                                         r"8 now\)\. .*`resume=False`"):
        train("NFResNet14", "digits", output_dir=str(tmp_path / "b"), **dict(settings, batch_size=8, epochs=5))
    with pytest.raises(ValueError, match=r"the recipe \(`learning_rate`, `clip_factor`, `weight_decay`, `ema`, `randaugment`\): .*EMA 0\.9.*EMA 0\.5"):
        train("NFResNet14", "digits", output_dir=str(tmp_path / "b"), **dict(settings, ema=0.5))
    again = train("NFResNet14", "digits", output_dir=str(tmp_path / "b"), **settings)
    assert again.history == resumed.history and again.metrics == resumed.metrics
    assert "already finished its 3 epochs" in capsys.readouterr().out
    assert files == {name: (tmp_path / "b" / name).read_bytes() for name in files}
    assert os.listdir(tmp_path / "a" / "logs")  # TensorBoard wrote event files


@pytest.mark.slow
def test_training_without_tensorboard_installed_logs_a_note_and_finishes(tmp_path, monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else
                        real_find_spec(name, *a))
    run = train("NFResNet14", "digits", output_dir=str(tmp_path), **dict(QUICK, epochs=1, tensorboard=True))
    assert run.metrics and not (tmp_path / "logs").exists()
    assert 'TensorBoard logs skipped: the tensorboard package is missing (pip install "keras-nfnets[train]")' in \
        capsys.readouterr().err


@pytest.mark.slow
def test_nan_loss_stops_with_a_diagnosis(tmp_path, capsys):
    run = train("NFResNet14", "digits", output_dir=str(tmp_path), learning_rate=1e6, **dict(QUICK, epochs=3))
    assert run.stopped and "learning rate" in run.stopped and "Adaptive Gradient Clipping is off" in run.stopped
    assert len(run.history["loss"]) < 3
    assert "Training stopped" in capsys.readouterr().err


@pytest.mark.slow
@ON_QUICK_RUN
def test_evaluate_a_run_and_bad_arguments(tmp_path, quick_digits_run):
    run = quick_digits_run
    result = evaluate(run.output_dir)
    assert result["examples"] == 360 and result["accuracy"] == pytest.approx(run.metrics["accuracy"])
    assert result["loss"] == pytest.approx(run.metrics["loss"], rel=1e-4)  # the same loss train reported
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes((Path(run.output_dir) / "model.keras").read_bytes()[:20000])
    with pytest.raises(ValueError, match=r"truncated\.keras' is not a complete \.keras file"):
        evaluate(str(truncated), "digits")
    with pytest.raises(FileNotFoundError, match="No trained model at"):
        evaluate(str(tmp_path / "missing.keras"), "digits")
    with pytest.raises(ValueError, match="Unknown model"):
        train("ResNet50", "digits")
    with pytest.raises(ValueError, match="strategy"):
        make_strategy("horovod")
    with pytest.raises(ValueError, match="precision"):
        set_precision("float8")
    with pytest.raises(ValueError, match="positive integer"):
        train("NFResNet14", "digits", strategy="auto", output_dir=str(tmp_path / "x"), **dict(QUICK, batch_size=0))
    with pytest.raises(ValueError, match="`learning_rate` must be a positive number"):
        train("NFResNet14", "digits", output_dir=str(tmp_path / "y"), learning_rate=-1.0, **QUICK)


@pytest.mark.parametrize("argv,message", [
    (["train", "--learning-rate", "-1"], "argument --learning-rate: must be a positive number, got -1"),
    (["train", "--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
    (["train", "--epochs", "ten"], "argument --epochs: expected a positive integer, got 'ten'"),
    (["spp", "out.png", "--figure", "2", "--depth", "0"], "argument --depth: must be a positive integer"),
])
def test_cli_rejects_non_positive_values_naming_the_flag(argv, message, capsys):
    from keras_nfnets.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_errors_are_one_line_and_ctrl_c_is_quiet(monkeypatch, capsys):
    from keras_nfnets import cli

    assert cli.main(["train", "--model", "ResNet50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nfnets train: error: Unknown model 'ResNet50'") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError):
        cli.main(["train", "--model", "ResNet50", "--verbose"])  # --verbose: the real exception

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.parser, "train_command", interrupted)  # the parser is built after this, with it
    assert cli.main(["train"]) == 130
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_fine_tune_from_a_checkpoint_replaces_the_classifier(tmp_path):
    from keras_nfnets.training.run import build_classifier

    backbone = keras_nfnets.NFResNet14(input_shape=(32, 32, 3), classes=7)
    path = str(tmp_path / "nf.weights.h5")
    backbone.save_weights(path)
    model = build_classifier("NFResNet14", 3, 32, weights=path)
    assert model.output.shape[-1] == 3 and model.get_layer("predictions").kernel.path == "predictions/kernel"
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(), backbone.get_layer("stem_conv").kernel.numpy())


@pytest.mark.slow
@ON_QUICK_RUN
def test_a_trained_run_goes_through_predict_and_export(tmp_path, capsys, quick_digits_run):
    """`nfnets predict` / `nfnets export` take a run directory or its .keras file: the run's class
    names, its evaluation transform, its input size."""
    from keras_nfnets.cli import main

    run, run_dir = quick_digits_run, Path(quick_digits_run.output_dir)
    x_test = data.load_source("digits", "test")
    image, label = next(iter(x_test.dataset))
    path = tmp_path / "digit.png"
    tf.io.write_file(str(path), tf.io.encode_png(image))
    capsys.readouterr()
    assert main(["predict", str(path), "--model", str(run_dir), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}:" and len(lines) == 4
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(run.model(
        data.EvalTransform(**run.settings["eval_transform"])(image)[None])))[0]
    best = int(np.argmax(expected))
    assert lines[1].split()[:3] == ["1.", str(best), f"{expected[best]:.2%}"]
    assert main(["predict", str(path), "--weights", str(run_dir / "model.keras"), "--top", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1] == str(best)
    assert main(["export", str(tmp_path / "digits.tflite"), "--model", str(run_dir), "--format", "tflite"]) == 0
    out = capsys.readouterr().out
    relative = float(out.split("of the output scale")[0].rsplit("(", 1)[1])
    assert relative < 1e-4 and "proves nothing" not in out
    # `nfnets preset` of the run: keras-hub's classifier gives the run's probabilities on the raw
    # image (its converter is the run's evaluation transform)
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")
    assert main(["preset", str(run_dir), str(tmp_path / "preset")]) == 0
    classifier = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "preset"))
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(classifier.predict(image[None], verbose=0)))[0]
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_a_crash_while_saving_leaves_the_previous_model_whole(tmp_path, monkeypatch):
    from keras_nfnets.saving import load_model as load_keras_file, save_model_atomically

    model = keras_nfnets.NFResNet14(input_shape=(32, 32, 3), classes=3)
    path = str(tmp_path / "model.keras")
    save_model_atomically(model, path)
    before = (tmp_path / "model.keras").read_bytes()

    def crash_midway(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 torn")  # the start of a zip, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        save_model_atomically(model, path)
    assert (tmp_path / "model.keras").read_bytes() == before and os.listdir(tmp_path) == ["model.keras"]
    monkeypatch.undo()
    assert load_keras_file(path).count_params() == model.count_params()
    (tmp_path / "torn.keras").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(ValueError, match="not a complete .keras file"):
        load_keras_file(str(tmp_path / "torn.keras"))


LOCAL_BUILDER = '''
"""A TFDS builder whose files are local: PNGs in its manual_dir, one folder per class."""
import os

import tensorflow_datasets as tfds


class NfLocalShapes(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "PNG files in <manual_dir>/<class>/"

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, None, 3)),
                                                 "label": tfds.features.ClassLabel(names=["a", "b", "c"])}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(dl_manager.manual_dir, 0),
                "test": self._generate_examples(dl_manager.manual_dir, 1)}

    def _generate_examples(self, folder, part):
        for label in ("a", "b", "c"):
            for name in sorted(os.listdir(os.path.join(folder, label)))[part::2]:
                yield f"{label}/{name}", {"image": os.path.join(folder, label, name), "label": label}
'''


@pytest.mark.slow
def test_a_tfds_dataset_is_prepared_offline_from_local_files(tmp_path):
    """TFDS's download_and_prepare, the path `nfnets train --dataset oxford_flowers102` takes, on a
    builder in a package whose files are local (issue 36: after ``pip install ".[train]"`` it
    failed with ``No module named 'importlib_resources'``, which TFDS imports there without
    declaring it, tensorflow/datasets#11212)."""
    package = tmp_path / "nf_local_datasets"
    package.mkdir()
    (package / "__init__.py").write_text("from nf_local_datasets.shapes import NfLocalShapes  # noqa: F401\n")
    (package / "shapes.py").write_text(LOCAL_BUILDER)
    rng = np.random.default_rng(0)
    for index, label in enumerate("abc"):
        (tmp_path / "files" / label).mkdir(parents=True)
        for i in range(8):
            image = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
            image[:, :, index] += 150  # the class is the dominant colour
            tf.io.write_file(str(tmp_path / "files" / label / f"{i}.png"), tf.io.encode_png(image))
    script = (f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport nf_local_datasets\n"
              "from keras_nfnets.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    command = [sys.executable, "-c", script, "train", "--dataset", "nf_local_shapes", "--data-dir",
               str(tmp_path / "tfds"), "--manual-dir", str(tmp_path / "files"), "--epochs", "1", "--batch-size", "4",
               "--image-size", "32", "--output-dir", str(tmp_path / "run"), "--progress", "0"]
    result = subprocess.run(command, env=REPO_ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert (tmp_path / "tfds" / "nf_local_shapes" / "1.0.0").is_dir()  # prepared by TFDS, offline
    assert "test split): accuracy" in result.stdout and os.path.isfile(tmp_path / "run" / "model.keras")


@ON_QUICK_RUN
def test_run_json_records_the_randaugment_that_runs(quick_digits_run):
    """Digits trains without RandAugment: run.json says so (null), as the recipe line does, where
    it said "paper" until issue 44."""
    record = json.load(open(Path(quick_digits_run.output_dir) / "run.json"))
    assert record["randaugment"] is None and "RandAugment off" in record["recipe"]


# --- an interrupted restart leaves nothing of the run it replaces ------------------------------------
@pytest.mark.slow
def test_an_interrupted_restart_leaves_no_result_of_the_replaced_run(tmp_path):
    from keras_nfnets.training import evaluate, train

    quick = dict(epochs=1, steps_per_epoch=2, batch_size=16, image_size=32, verbose=0)
    output = str(tmp_path / "run")
    train("NFResNet14", "digits", output_dir=output, **quick)
    assert {"model.keras", "history.json", "backup", "logs"} <= set(os.listdir(output))

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("NFResNet14", "digits", output_dir=output, resume=False, callbacks=[CtrlC()], tensorboard=False,
              **dict(quick, epochs=2))
    left = set(os.listdir(output))
    assert not left & {"model.keras", "history.json", "backup", "logs"}, left
    with pytest.raises(FileNotFoundError, match="was interrupted before it saved its model .0 of 2 epochs done.: run "
                                                "the same `nfnets train` command"):
        evaluate(output)
    assert main(["predict", os.path.join(HERE, "..", "docs", "spp_figure1.png"), "--model", output]) == 2


def test_output_dir_that_cannot_hold_a_run_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    cases = [(str(tmp_path / "file"), "is a file, not a directory"),
             (str(tmp_path / "file" / "run"), "which is a file"),
             ("/sys/keras_nfnets_run", "cannot be written ('/sys': Permission denied)")]  # root cannot write /sys
    for output_dir, message in cases:
        assert main(["train", "--output-dir", output_dir]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"nfnets train: error: `--output-dir` {output_dir!r} ") and message in err, err
        assert err.count("\n") == 1
    with pytest.raises(NotADirectoryError, match="`output_dir`"):
        keras_nfnets.train(output_dir=str(tmp_path / "file"))


def test_a_batch_larger_than_the_dataset_names_the_flag_and_a_size_that_fits(tmp_path, capsys):
    import tensorflow as tf

    for label in ("a", "b", "c"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(11):
            tf.io.write_file(str(tmp_path / "images" / label / f"{i}.png"), tf.io.encode_png(np.zeros((8, 8, 3), "uint8")))
    code = main(["train", "--dataset", str(tmp_path / "images"), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "exceeds the 27 training images of this dataset: pass a smaller one, e.g. `--batch-size 8`" \
        in err, err
    assert not (tmp_path / "run").exists()
