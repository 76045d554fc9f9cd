"""NFNets in keras-hub (issue 24): the four roles checked the way keras-hub checks its own
(``run_backbone_test``/``run_task_test``: config round trip, eager/compiled/dataset predict, mixed
precision, ``fit`` with and without the task's preprocessor), presets that keras-hub's own
``from_preset`` loads with our builders' logits, the converter against our EvalTransform, the
whole fine-tuning workflow, and the refusals. The JAX and PyTorch backends load a preset written
here in test_backends.py's workers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras
from keras_nfnets import names
from keras_nfnets.applications import BUILDERS
from keras_nfnets.models.config import nf_resnet_config

from conftest import REPO_ENV

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")
import keras_nfnets  # noqa: E402
from keras_nfnets.kerashub import (NFNetBackbone, NFNetImageClassifier, NFNetImageClassifierPreprocessor,  # noqa: E402
                                   NFNetImageConverter, architecture_from_dict, architecture_to_dict, save_preset,
                                   to_keras_hub)
from keras_nfnets.kerashub.nfnet_image_converter import converter_arguments  # noqa: E402
from keras_nfnets.export.verification import randomise_weights  # noqa: E402

TOY = nf_resnet_config((1, 1, 1, 1), name="toy_nf_resnet", widths=(16, 32, 48, 64), stem_width=8)


def _logits(model, x):
    """A builder's logits: the pooled features through its classifier's kernel and bias, in
    NumPy (the builders end in softmax)."""
    pooled = keras.Model(model.input, model.get_layer(names.CLASSIFIER).input)(x)
    kernel, bias = model.get_layer(names.CLASSIFIER).get_weights()
    return keras.ops.convert_to_numpy(pooled) @ kernel + bias


def test_backbone_passes_keras_hubs_backbone_checks(tmp_path):
    """run_backbone_test's checks: output shape, a JSON config that rebuilds the same network
    (architecture as data), eager = compiled = tf.data predict, a .keras round trip, and
    mixed precision (bfloat16 compute, float32 variables, WS statistics in float32)."""
    import tensorflow as tf

    backbone = randomise_weights(NFNetBackbone(TOY))
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(backbone(x))
    assert out.shape == (2, 2, 2, 64)  # H/32, the last stage's width
    config = json.loads(json.dumps(backbone.get_config()))  # JSON, no pickled objects
    assert config["architecture"] == architecture_to_dict(TOY) and architecture_from_dict(config["architecture"]) == TOY
    rebuilt = NFNetBackbone.from_config(config)
    rebuilt.set_weights(backbone.get_weights())
    assert [w.path for w in rebuilt.weights] == [w.path for w in backbone.weights]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rebuilt(x)), out)
    np.testing.assert_allclose(backbone.predict(x, verbose=0), out, atol=1e-5)
    np.testing.assert_allclose(backbone.predict(tf.data.Dataset.from_tensor_slices(x).batch(2), verbose=0), out,
                               atol=1e-5)
    backbone.save(tmp_path / "backbone.keras")
    reloaded = keras.saving.load_model(tmp_path / "backbone.keras")
    assert type(reloaded) is NFNetBackbone
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x)), out, atol=1e-6)
    mixed = NFNetBackbone(TOY, dtype="mixed_bfloat16")
    conv = mixed.get_layer(names.block_layer(names.block(1, 1), "conv1"))
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert keras.backend.standardize_dtype(mixed(x).dtype) == "bfloat16"
    with pytest.raises(ValueError, match="fields NFConfig does not know: \\['wings'\\]"):
        architecture_from_dict(dict(architecture_to_dict(TOY), wings=2))
    with pytest.raises(ValueError, match="channels_last"):
        NFNetBackbone(TOY, data_format="channels_first")


def test_task_passes_keras_hubs_task_checks():
    """run_task_test's checks: predict on arrays = on a dataset = on a dataset mapped through the
    preprocessor; fit on arrays, on a dataset and on preprocessed batches; the head in float32."""
    import tensorflow as tf

    converter = NFNetImageConverter(image_size=(64, 64), eval_crop="center", crop_pct=0.875, interpolation="bicubic", antialias=True,
                                    scale=1 / 255.0, offset=-0.5)
    task = NFNetImageClassifier(randomise_weights(NFNetBackbone(TOY)), num_classes=4,
                                preprocessor=NFNetImageClassifierPreprocessor(image_converter=converter))
    images = np.random.default_rng(2).integers(0, 256, (4, 80, 72, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    out = task.predict(images, verbose=0)
    assert out.shape == (4, 4) and task.output_dense.compute_dtype == "float32"
    np.testing.assert_allclose(task.predict(dataset, verbose=0), out, atol=1e-5)
    preprocessor, task.preprocessor = task.preprocessor, None
    np.testing.assert_allclose(task.predict(dataset.map(preprocessor), verbose=0), out, atol=1e-5)
    task.preprocessor = preprocessor
    task.compile(optimizer=keras.optimizers.SGD(0.01))
    for data in (dict(x=images, y=labels), dict(x=dataset)):
        assert np.isfinite(task.fit(**data, epochs=1, verbose=0).history["loss"][0])
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(task)))
    assert config["registered_name"] == "keras_nfnets>NFNetImageClassifier"


def test_converter_takes_the_checkpoints_crop_rule_and_matches_eval_transform():
    """keras-hub's converter only resizes (after cropping the largest centred square); ours adds
    EvalTransform's crop rules. Measured against our EvalTransform on the same non-square images:
    every rule equal to float32 rounding, and keras-hub's own rule (``eval_crop=None``) far off."""
    from keras_nfnets.data.transforms import EvalTransform
    from keras_nfnets.export.verification import sample_images

    rng = np.random.default_rng(0)
    images = np.clip(sample_images(3, 300, seed=4)[:, :, 20:280] * 58 + 120 + rng.normal(0, 2, (3, 300, 260, 3)),
                     0, 255).astype("float32")
    errors = {}
    for crop, crop_pct in [("center", 0.875), ("center", 0.95), ("crop_resize", 0.875), ("plus32", 0.875),
                           ("squash", 0.9), ("resize", 0.875)]:
        transform = EvalTransform(96, crop=crop, crop_pct=crop_pct, pil_resize=crop in ("center", "squash"))
        expected = np.stack([transform(image).numpy() for image in images])
        converter = NFNetImageConverter(**converter_arguments(transform))
        got = keras.ops.convert_to_numpy(converter(images))
        errors[crop, crop_pct] = float(np.abs(got - expected).mean() * np.mean(transform.std) * 255)
        if crop == "center" and crop_pct == 0.875:  # keras-hub's own rule on the same images
            plain = keras.ops.convert_to_numpy(NFNetImageConverter(**dict(converter_arguments(transform), eval_crop=None))(images))
            errors["keras-hub", 0.875] = float(np.abs(plain - expected).mean() * np.mean(transform.std) * 255)
    print("mean |converter - EvalTransform| in 0-255 units:", {f"{k[0]} {k[1]}": round(v, 2) for k, v in errors.items()})
    assert all(value < 1e-3 for key, value in errors.items() if key[0] != "keras-hub"), errors
    assert errors["keras-hub", 0.875] > 1.0, errors
    with pytest.raises(ValueError, match="crop_pct"):
        NFNetImageConverter(crop_pct=1.5)


@pytest.mark.slow
def test_presets_load_in_keras_hub_with_the_builders_logits(tmp_path):
    """For each family: save_preset of a builder's model, then keras-hub's own
    ImageClassifier.from_preset and Backbone.from_preset: the logits equal the builder's
    (≤ 1e-5 of the logit scale), num_classes=K gives a new head, the files are keras-hub's."""
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype("float32")
    for name in ("NFResNet26", "NFRegNetB0", "NFNetF0"):
        keras.utils.set_random_seed(0)
        model = randomise_weights(BUILDERS[name](input_shape=(64, 64, 3), classes=10))
        expected = _logits(model, x)
        directory = save_preset(model, tmp_path / name)
        assert sorted(os.listdir(directory)) == ["README.md", "config.json", "image_converter.json", "metadata.json",
                                                 "model.weights.h5", "preprocessor.json", "task.json", "task.weights.h5"]
        task = keras_hub.models.ImageClassifier.from_preset(directory)
        assert type(task) is NFNetImageClassifier and type(task.preprocessor) is NFNetImageClassifierPreprocessor
        got = keras.ops.convert_to_numpy(task(x))
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max(), (name, np.abs(got - expected).max())
        assert type(keras_hub.models.Backbone.from_preset(directory)) is NFNetBackbone
        new_head = keras_hub.models.ImageClassifier.from_preset(directory, num_classes=3)
        assert new_head.output_dense.units == 3
        metadata = json.load(open(os.path.join(directory, "metadata.json")))
        assert metadata["tasks"] == ["ImageClassifier"] and metadata["architecture"] == BUILDERS[name].config.name
    transform = json.load(open(os.path.join(directory, "image_converter.json")))["config"]
    # NFNet-F0's checkpoint (dm_nfnet_f0) is evaluated as DeepMind does: squash to size + 32, crop size
    assert transform["image_size"] == [64, 64] and transform["eval_crop"] == "plus32"


def test_preset_refusals_come_before_any_write(tmp_path):
    model = BUILDERS["NFResNet26"](input_shape=(64, 64, 3), classes=10)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "model.weights.h5").write_text("not ours")
    with pytest.raises(ValueError, match="holds preset files that keras_nfnets did not write"):
        save_preset(model, stray, overwrite=True)
    other = tmp_path / "resnet"
    keras_hub.models.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64],
                                    stackwise_num_blocks=[1], stackwise_num_strides=[1], block_type="basic_block",
                                    use_pre_activation=False).save_to_preset(str(other))
    before = sorted(os.listdir(other))
    with pytest.raises(ValueError, match="another model family \\(keras_hub>ResNetBackbone\\)"):
        save_preset(model, other, overwrite=True)
    assert sorted(os.listdir(other)) == before
    with pytest.raises(ValueError, match="not a subclass of calling class NFNetBackbone|ResNetBackbone"):
        NFNetBackbone.from_preset(str(other))
    with pytest.raises(ValueError, match="num_classes=3 does not fit the kept 10-class head"):
        save_preset(model, tmp_path / "a", num_classes=3)
    topless = BUILDERS["NFResNet26"](include_top=False, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="no classifier.*num_classes="):
        to_keras_hub(topless)
    assert to_keras_hub(topless, num_classes=3).output_dense.units == 3
    stranger = keras.Model(model.input, model.output, name="my_net")
    with pytest.raises(ValueError, match="Which NF architecture.*`architecture=`"):
        to_keras_hub(stranger)
    with pytest.raises(ValueError, match="is 'nf_resnet26', not the `architecture=` 'nf_regnet_b0'"):
        to_keras_hub(model, architecture=BUILDERS["NFRegNetB0"].config)  # a model records its own
    with pytest.raises(ValueError, match="has no layer 'final_conv'.*match the architecture 'nf_regnet_b0'"):
        to_keras_hub(stranger, architecture=BUILDERS["NFRegNetB0"].config, eval_transform=keras_nfnets.EvalTransform(64))
    named = to_keras_hub(stranger, architecture=model.architecture, eval_transform=keras_nfnets.EvalTransform(64))
    assert named.backbone.get_layer("stem_conv") is model.get_layer("stem_conv")  # the same layers, not a copy
    assert not (tmp_path / "a").exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".preset-")]
    # keras-hub not installed: the error names the extra (a fresh process without keras_hub)
    code = ("import sys; sys.modules['keras_hub'] = None\nimport keras_nfnets\n"
            "try:\n    keras_nfnets.save_preset('NFResNet26', 'x')\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=REPO_ENV)
    assert "pip install 'keras-nfnets[kerashub]'" in out.stdout, out.stderr[-2000:]


@pytest.mark.slow
def test_keras_hub_workflow_end_to_end(tmp_path, timm_reference):
    """``nfnets preset`` of a timm checkpoint (timm's test_nfnet, a local file) → keras-hub's
    ``ImageClassifier.from_preset(dir, num_classes=10)`` → ``fit`` 2 epochs on the embedded digits
    (8× upsampled) through the task's preprocessor → ``save_to_preset``, reload, identical
    predictions → our folding and TFLite export of the loaded classifier's model. Builders with
    ``weights="imagenet"`` take the same path (resolve_model: test_weights.py reads them from an
    offline Hub cache)."""
    from keras_nfnets.data import load_source
    from keras_nfnets.export import export_tflite, fold_weight_standardization, verify_export

    preset = tmp_path / "test_nfnet_preset"
    command = [sys.executable, "-m", "keras_nfnets.cli", "preset", "test_nfnet", str(preset), "--checkpoint",
               str(timm_reference / "test_nfnet.safetensors")]
    cli = subprocess.run(command, capture_output=True, text=True, timeout=600, env=REPO_ENV)
    assert cli.returncode == 0 and "keras-hub preset of test_nfnet written to" in cli.stdout, cli.stderr[-3000:]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, env=REPO_ENV)
    assert again.returncode != 0 and "`--overwrite`" in again.stderr, again.stderr[-2000:]

    task = keras_hub.models.ImageClassifier.from_preset(str(preset), num_classes=10)
    assert type(task) is NFNetImageClassifier and task.preprocessor.image_converter.crop_pct == 0.95  # timm's eval
    task.preprocessor.image_converter.image_size = (32, 32)  # keras-hub's way to change the resolution
    (x_train, y_train), (x_test, y_test) = [
        [np.stack(part) for part in zip(*load_source("digits", split).dataset.as_numpy_iterator())]
        for split in ("train", "test")]
    x_train, x_test = (np.repeat(np.repeat(x, 8, axis=1), 8, axis=2) for x in (x_train, x_test))  # 64 x 64
    keras.utils.set_random_seed(0)
    task.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = task.fit(x_train, y_train, batch_size=64, epochs=2, verbose=0)
    accuracy = float(np.mean(np.argmax(task.predict(x_test, verbose=0), -1) == y_test))
    # the same classifier on our EvalTransform's images (the converter's rule, from its arguments)
    transform = keras_nfnets.eval_transform("test_nfnet", 32)  # the checkpoint's: centre 0.95, mean = std = 0.5
    ours = np.stack([transform(image).numpy() for image in x_test])
    preprocessor, task.preprocessor = task.preprocessor, None
    accuracy_ours = float(np.mean(np.argmax(task.predict(ours, verbose=0), -1) == y_test))
    task.preprocessor = preprocessor
    print(f"digits after 2 epochs: loss {history.history['loss']}, test accuracy {accuracy:.3f} through keras-hub's "
          f"preprocessor, {accuracy_ours:.3f} through our EvalTransform")
    assert history.history["loss"][1] < history.history["loss"][0] and accuracy > 0.5
    assert abs(accuracy - accuracy_ours) <= 0.01  # the converter is EvalTransform (test above)

    task.save_to_preset(str(tmp_path / "fine_tuned"))
    reloaded = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "fine_tuned"))
    np.testing.assert_array_equal(reloaded.predict(x_test[:32], verbose=0), task.predict(x_test[:32], verbose=0))

    plain = reloaded  # the task's network (its preprocessor runs in predict/fit only), backbone nested
    batch = np.asarray(reloaded.preprocessor(x_test[:8]))
    folded = fold_weight_standardization(plain)
    expected = keras.ops.convert_to_numpy(plain(batch))  # a call: predict() would run the preprocessor again
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded(batch)), expected, atol=1e-4 * np.abs(expected).max())
    export_tflite(plain, str(tmp_path / "digits.tflite"))
    report = verify_export(plain, str(tmp_path / "digits.tflite"), batch)
    assert report["informative"] and report["relative_diff"] < 1e-4 and report["top1_agreement"] == 1.0, report


@pytest.mark.slow
@pytest.mark.parametrize("order", ["keras_nfnets first", "keras_hub first"])
def test_keras_hub_finds_the_classes_after_import_keras_nfnets(order):
    """keras-hub's from_preset looks classes up in Keras' registry: after ``import keras_nfnets``
    they are there once keras-hub is imported, in either order, and ``import keras_nfnets``
    alone does not import keras-hub."""
    first, second = ("keras_nfnets", "keras_hub") if order == "keras_nfnets first" else ("keras_hub", "keras_nfnets")
    code = (f"import sys, {first}\nprint('keras_hub' in sys.modules)\nimport {second}, keras\n"
            "print([keras.saving.get_registered_object(f'keras_nfnets>{c}') is not None for c in "
            "('NFNetBackbone', 'NFNetImageClassifier', 'NFNetImageClassifierPreprocessor', 'NFNetImageConverter')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=REPO_ENV)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and lines[-1] == "[True, True, True, True]", out.stdout + out.stderr[-2000:]
    assert lines[0] == ("False" if first == "keras_nfnets" else "True")


def test_a_preset_folder_keeps_the_users_model_card_and_files(tmp_path):
    """Issue 44: a README.md beside a preset (as every Hub model repository has) blocked `nfnets
    preset` with and without `--overwrite`. The user's files that are not part of a preset stay,
    untouched, through the first write and every overwrite; where the user has no README.md the
    preset gets a short model card of its own, which an overwrite renews."""
    import time

    model = BUILDERS["NFResNet26"](input_shape=(64, 64, 3), classes=10)
    card = tmp_path / "card"
    card.mkdir()
    (card / "README.md").write_text("---\nlicense: mit\n---\n# my model\n")
    (card / "notes").mkdir()
    (card / "notes" / "n.txt").write_text("mine")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (card / "README.md", card / "notes" / "n.txt")}
    time.sleep(0.01)
    save_preset(model, card)
    with pytest.raises(ValueError, match="holds an NF preset.*`overwrite=True`.*README.md, are kept"):
        save_preset(model, card)
    save_preset(model, card, overwrite=True)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    assert "README.md" not in json.load(open(card / "metadata.json"))["keras_nfnets_files"]
    assert type(keras_hub.models.ImageClassifier.from_preset(str(card))) is NFNetImageClassifier

    fresh = tmp_path / "fresh"  # no model card of the user's: ours, part of the preset
    save_preset(model, fresh)
    text = (fresh / "README.md").read_text()
    assert "README.md" in json.load(open(fresh / "metadata.json"))["keras_nfnets_files"]
    assert "`nf_resnet26`" in text and f"{model.count_params():,} with the classifier" in text
    assert "not a published checkpoint" in text and "64×64 RGB" in text
    (fresh / "extra.txt").write_text("mine")
    save_preset(model, fresh, overwrite=True)
    assert (fresh / "extra.txt").read_text() == "mine" and (fresh / "README.md").exists()


def test_the_model_card_of_a_checkpoint_names_it_its_sizes_and_license():
    from keras_nfnets.kerashub.presets import model_card
    from keras_nfnets.weights.presets import CHECKPOINTS

    model = keras_nfnets.from_timm("test_nfnet", pretrained=False, input_shape=(64, 64, 3))
    model.with_checkpoint(CHECKPOINTS["test_nfnet.r160_in1k"])
    text = model_card(to_keras_hub(model), "presets/test_nfnet")
    row = CHECKPOINTS["test_nfnet.r160_in1k"]
    assert f"timm's `test_nfnet.r160_in1k`: ImageNet-1k top-1 {row.top1:.2f}% at {row.test_size} px" in text
    assert f"trained at {row.train_size} px" in text and "License of the weights: Apache-2.0" in text
    assert "from_preset('test_nfnet')" in text
