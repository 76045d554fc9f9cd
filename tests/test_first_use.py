"""What a new user hit in a fresh clone (issue 20), each reproduced: start-up without TensorFlow,
converted weights files, corrupt images, an interrupted restart, offline waits, messages, int8
calibration and the evaluation sizes."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import HERE, ON_QUICK_RUN, REPO_ENV, SIZE, needs_timm

import keras
import keras_nfnets
from keras_nfnets.cli import main

PLAIN_ENV = {k: v for k, v in REPO_ENV.items() if not k.startswith("TF_CPP_")}


# --- start-up: help and the model table without TensorFlow ---------------------------------------
def test_help_and_the_model_table_import_neither_keras_nor_tensorflow():
    script = ("import sys\n"
              "import keras_nfnets\n"
              "assert len(keras_nfnets.__all__) > 70 and 'NFNetF0' in dir(keras_nfnets)\n"
              "from keras_nfnets.cli import main\n"
              "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              "assert main(['models']) == 0 and main(['models', '--markdown']) == 0\n"
              "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], env=PLAIN_ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert result.stderr == ""


def test_lazy_names_resolve_to_the_modules_that_define_them():
    from keras_nfnets.applications import BUILDERS

    for name in keras_nfnets.__all__:
        assert getattr(keras_nfnets, name) is not None, name
    assert keras_nfnets.NFNetF0 is BUILDERS["NFNetF0"] and set(BUILDERS) <= set(keras_nfnets.__all__)
    with pytest.raises(AttributeError, match="no attribute 'NFNetF9'"):
        keras_nfnets.NFNetF9  # noqa: B018


# --- offline weights: tools/convert_timm.py's output loads into the builder it names --------------
@pytest.mark.slow
@needs_timm
def test_a_converted_timm_file_loads_into_its_builder_and_a_misfit_is_one_line(timm_reference, tmp_path, capfd):
    converted = tmp_path / "nf_regnet_b1.weights.h5"
    subprocess.run([sys.executable, os.path.join(HERE, "..", "tools", "convert_timm.py"), "nf_regnet_b1",
                    str(timm_reference / "nf_regnet_b1.safetensors"), str(converted)],
                   env=PLAIN_ENV, check=True, capture_output=True, timeout=300)
    reference = np.load(timm_reference / "nf_regnet_b1.npz")
    model = keras_nfnets.NFRegNetB1(weights=str(converted), input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    logits = keras.ops.convert_to_numpy(model(reference["x"]))
    assert np.abs(logits - reference["logits"]).max() / np.abs(reference["logits"]).max() < 1e-4  # timm's own
    assert keras_nfnets.NFRegNetB1(weights=str(converted)).input.shape[1] == 288  # the checkpoint's size
    backbone = keras_nfnets.NFRegNetB1(weights=str(converted), include_top=False)
    assert backbone.output.shape[-1] == model.get_layer("predictions").kernel.shape[0]

    capfd.readouterr()
    with pytest.raises(ValueError) as error:
        keras_nfnets.NFResNet50(weights=str(converted))
    message = str(error.value)
    assert "\n" not in message and str(converted) in message
    assert "holds nf_regnet_b1 weights" in message and "keras_nfnets.NFRegNetB1(weights=FILE)" in message
    assert "not NFResNet50" in message
    assert capfd.readouterr().err.count("\n") <= 1  # no Keras warnings per layer
    saved = tmp_path / "saved.weights.h5"  # the user's model.save_weights: the model records what it is
    b0 = keras_nfnets.NFRegNetB0(input_shape=(64, 64, 3))
    b0.save_weights(str(saved))
    with pytest.raises(ValueError, match=r"holds nf_regnet_b0 weights .*NFRegNetB0\(weights=FILE\).* not NFRegNetB2"):
        keras_nfnets.NFRegNetB2(weights=str(saved))
    plain = tmp_path / "plain.weights.h5"  # written by a plain keras.Model: no recorded architecture
    keras.Model(b0.input, b0.output).save_weights(str(plain))
    with pytest.raises(ValueError, match=r"holds 8,595,372 parameters in \d+ arrays, not NFRegNetB2"):
        keras_nfnets.NFRegNetB2(weights=str(plain))

    image = tmp_path / "image.png"
    keras.utils.save_img(str(image), np.random.default_rng(0).integers(0, 255, (50, 60, 3)).astype("uint8"))
    assert main(["predict", str(image), "--model", "NFRegNetB1", "--weights", str(converted), "--top", "2"]) == 0
    assert capfd.readouterr().out.startswith(f"{image}:\n  1. ")
    assert main(["predict", str(image), "--model", "NFResNet50", "--weights", str(converted)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nfnets predict: error: The weights file")


# --- corrupt images ---------------------------------------------------------------------------------
def _jpeg(path, seed, size=(24, 32)):
    import tensorflow as tf

    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3)).astype("uint8")
    path.write_bytes(tf.io.encode_jpeg(pixels).numpy())


def _folder_with_bad_files(root):
    """Two classes of good JPEGs/PNGs; among them an empty file, a truncated JPEG, a text file
    named .png and a truncated PNG (bad), and a JPEG with 6 KB after its end marker (good)."""
    import tensorflow as tf

    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            _jpeg(root / label / f"{i}.jpg", seed=i + (10 if label == "b" else 0))
    png = tf.io.encode_png(np.zeros((20, 20, 3), "uint8")).numpy()
    (root / "a" / "ok.png").write_bytes(png)
    (root / "a" / "trailing.jpg").write_bytes((root / "a" / "0.jpg").read_bytes() + b"\0" * 6000)
    bad = [root / "a" / "empty.jpg", root / "a" / "truncated.jpg", root / "b" / "notes.png", root / "b" / "cut.png"]
    bad[0].write_bytes(b"")
    bad[1].write_bytes((root / "a" / "1.jpg").read_bytes()[:300])
    bad[2].write_text("not an image")
    bad[3].write_bytes(png[: len(png) // 2])
    return sorted(str(p) for p in bad)


def test_corrupt_images_are_named_before_a_run_starts(tmp_path):
    from keras_nfnets import data
    from keras_nfnets.training import train

    bad = _folder_with_bad_files(tmp_path / "photos")
    paths = sorted(str(p) for p in (tmp_path / "photos").rglob("*.*"))
    assert sorted(data.find_corrupt_images(paths)) == bad  # and trailing.jpg, which decodes, is not
    output = tmp_path / "run"
    with pytest.raises(data.CorruptImageError) as error:
        train("NFResNet14", str(tmp_path / "photos"), output_dir=str(output), epochs=1, batch_size=4, image_size=32,
              verbose=0, tensorboard=False)
    assert sorted(error.value.files) == bad  # the train split holds all four (each class's first file is held out)
    assert "cannot be decoded" in str(error.value) and "remove or replace them" in str(error.value)
    for path in error.value.files:
        assert path in str(error.value)
    assert not output.exists()  # no run.json, no logs/: nothing half-made


def test_predict_prints_the_good_images_and_reports_the_bad_one(tmp_path, capsys):
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    _jpeg(good, seed=1)
    bad.write_bytes(good.read_bytes()[:200])
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main(["predict", str(good), str(bad), str(folder), "--model", "NFResNet14", "--weights", "none",
                 "--top", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{good}:\n  1. ") and str(bad) not in captured.out
    errors = captured.err.strip().splitlines()
    assert errors[0] == (f"nfnets predict: skipped {bad}: Cannot decode '{bad}' as an image (JPEG, PNG, BMP or GIF "
                         "expected; the file is empty, truncated or of another format).")
    assert errors[1].startswith(f"nfnets predict: skipped {folder}: '{folder}' is a directory; give image files")


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


# --- offline: the variable read when used, no network detected once ---------------------------------
def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


def test_offline_set_after_import_and_no_network_fail_at_once(tmp_path, monkeypatch):
    import huggingface_hub

    from keras_nfnets.weights import hub
    from keras_nfnets.weights.presets import CHECKPOINTS

    def no_download(*args, **kwargs):
        raise AssertionError("the Hub was asked despite HF_HUB_OFFLINE / no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    monkeypatch.setattr(hub, "_REACHABLE", {})
    checkpoint = CHECKPOINTS["nf_regnet_b1.ra2_in1k"]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # after huggingface_hub read its constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"HF_HUB_OFFLINE is set and timm/nf_regnet_b1\.ra2_in1k/model\.safetensors is "
                                      r"not in the Hugging Face Hub cache .*convert_timm"):
        hub.download_checkpoint(checkpoint)

    monkeypatch.delenv("HF_HUB_OFFLINE")
    port = _closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    connects = []
    original = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connects.append(a) or original(*a, **k))
    for _ in range(2):
        with pytest.raises(OSError, match=rf"No network: the Hugging Face Hub does not answer \(127\.0\.0\.1:{port}: "):
            hub.download_checkpoint(checkpoint)
    assert len(connects) == 1  # asked once per process

    snapshot = tmp_path / "hf" / "hub" / "models--timm--nf_regnet_b1.ra2_in1k"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text("0" * 40)
    (snapshot / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (snapshot / "snapshots" / ("0" * 40) / "model.safetensors").write_bytes(b"cached")
    assert open(hub.download_checkpoint(checkpoint), "rb").read() == b"cached"  # no network: the cache serves


# --- messages ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,message", [
    (["train", "--clip-factor", "abc"], "argument --clip-factor: expected a positive number, 'off' or 'paper', got 'abc'"),
    (["train", "--ema", "-1"], "argument --ema: expected a positive number, 'off' or 'paper', got '-1'"),
    (["train", "--drop-rate", "1"], "argument --drop-rate: must be in [0, 1) (0 turns it off), got 1"),
    (["train", "--stochastic-depth-rate", "x"], "argument --stochastic-depth-rate: expected a number in [0, 1), got 'x'"),
])
def test_flag_values_are_explained(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_launch_errors_name_the_command(capsys):
    assert main(["launch", "--workers", "0", "--", "train"]) == 2
    assert capsys.readouterr().err == "nfnets launch: error: --workers must be a positive integer; received 0.\n"


def test_one_image_per_class_explains_the_hold_out_rule(tmp_path):
    from keras_nfnets import data

    for label in ("a", "b", "c"):
        (tmp_path / label).mkdir()
        _jpeg(tmp_path / label / "only.jpg", seed=0)
    data.load_source(str(tmp_path), "test")  # every class's first file is held out
    with pytest.raises(ValueError, match=r"found 3 classes and 0 images for split 'train' \(of its 3 images, every "
                                         r"10th file of each class, from the first, is held out"):
        data.load_source(str(tmp_path), "train")


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


# --- int8 calibration says what it used ------------------------------------------------------------------
@pytest.mark.slow
@ON_QUICK_RUN
def test_int8_export_calibrates_on_the_runs_data_or_a_folder(tmp_path, capsys, quick_digits_run):
    run = quick_digits_run.output_dir
    capsys.readouterr()
    assert main(["export", str(tmp_path / "a.tflite"), "--model", run, "--format", "tflite",
                 "--quantization", "int8"]) == 0
    out = capsys.readouterr().out
    assert "int8 calibration: 64 images of the run's training data (digits, train split)" in out
    # checked on what the run is for (issue 44: 8 synthetic colour images gave "38% agreement" for a
    # model that agrees with Keras on every one of the run's 360 test digits)
    import re

    found = re.search(r"on the run's 360 held-out images \(digits, test split\): top-1 agreement with Keras "
                      r"([\d.]+)% \(at least 90% needed\).*; accuracy ([\d.]+)% exported, ([\d.]+)% in Keras", out)
    assert found, out
    agreement, exported, in_keras = (float(g) for g in found.groups())
    assert agreement >= 95 and abs(exported - in_keras) <= 2, out
    photos = tmp_path / "photos" / "x"
    photos.mkdir(parents=True)
    for i in range(3):
        _jpeg(photos / f"{i}.jpg", seed=i)
    assert main(["export", str(tmp_path / "b.tflite"), "--model", run, "--format", "tflite", "--quantization", "int8",
                 "--calibration", str(tmp_path / "photos")]) == 0
    assert f"int8 calibration: 3 images from {tmp_path / 'photos'}" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "c.tflite"), "--model", run, "--format", "tflite",
                 "--calibration", str(tmp_path / "photos")]) == 2
    assert "`--calibration` images calibrate a full-int8 model: use it with `--quantization` int8" in \
        capsys.readouterr().err


# --- the evaluation size each path uses -------------------------------------------------------------------
def test_preprocess_image_size_is_the_pretrained_builders_input_size():
    """preprocess_image(path, NAME) prepares images for NAME(weights="imagenet"): the checkpoint's
    test size (288 px for NFRegNetB1); NAME(weights=None) builds at the paper's test size (256 px),
    as the README says."""
    from keras_nfnets.applications import _pretrained_config
    from keras_nfnets.models import VARIANTS
    from keras_nfnets.weights import IMAGENET_PRESETS
    from keras_nfnets.weights.presets import variant

    for name in IMAGENET_PRESETS:  # the builders' default input with weights="imagenet": the checkpoint's size
        _, checkpoint = _pretrained_config(name, VARIANTS[name])
        assert keras_nfnets.eval_transform(name).size == checkpoint.test_size, name
    assert keras_nfnets.eval_transform("NFRegNetB1").size == 288 and variant("NFRegNetB1").test_size == 256
    assert keras_nfnets.NFRegNetB1().input.shape[1] == 256


# --- the PyTorch backend's commands, typed as written (issue 36) ----------------------------------
def test_the_pytorch_backends_commands_run_as_typed(tmp_path):
    """``KERAS_BACKEND=torch nfnets predict ...`` died with signal 11 and printed nothing: the quiet
    start loaded TensorFlow, then Keras' PyTorch backend loaded triton, which segfaults after
    TensorFlow on this stack. ``--verbose`` (Keras first) worked."""
    image = os.path.join(HERE, "..", "docs", "spp_figure1.png")
    env = dict(PLAIN_ENV, KERAS_BACKEND="torch")
    result = subprocess.run([sys.executable, "-m", "keras_nfnets.cli", "predict", image, "--model", "NFResNet26",
                             "--weights", "none"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert "  1. " in result.stdout and result.stderr == "", result.stderr[-3000:]


def test_a_crash_while_standard_error_is_held_is_not_silent():
    """A process that dies in the quiet start (fd 2 on /dev/null) still says why on the real
    standard error: Python's fatal-error report with the traceback."""
    script = ("import ctypes\nfrom keras_nfnets import _startup\n"
              "with _startup.stderr_silenced():\n    ctypes.string_at(0)  # a segmentation fault\n")
    result = subprocess.run([sys.executable, "-c", script], env=PLAIN_ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == -11
    assert "Fatal Python error: Segmentation fault" in result.stderr and "string_at" in result.stderr, result.stderr


# --- what the messages promise (issue 36) -----------------------------------------------------------
def test_a_missing_checkpoint_file_is_said_before_building(tmp_path):
    import time

    started = time.perf_counter()
    with pytest.raises(ValueError, match="Checkpoint file not found: .*missing.safetensors"):
        keras_nfnets.from_timm("dm_nfnet_f1", checkpoint=str(tmp_path / "missing.safetensors"))
    assert time.perf_counter() - started < 5  # it built NFNet-F1 for 40 s first


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


def test_the_library_starts_tensorflow_quietly():
    """``import keras_nfnets`` and a first model printed six TensorFlow/CUDA lines on stderr; the
    import-time ones (five here) are held as the command line holds them. The one left, where a
    CUDA build of TensorFlow finds no GPU, comes when TensorFlow creates its devices, in the
    user's first computation, which a library cannot hold."""
    script = "import keras_nfnets\nkeras_nfnets.NFRegNetB1(weights=None)\nprint('built')\n"
    quiet = subprocess.run([sys.executable, "-c", script], env=PLAIN_ENV, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "built", quiet.stderr[-2000:]
    for line in ("All log messages before absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard",
                 "cudart_stub", "To enable the following instructions"):
        assert line not in quiet.stderr, quiet.stderr
    assert len(quiet.stderr.strip().splitlines()) <= 1, quiet.stderr
    # a user who asks for TensorFlow's logs gets them
    loud = subprocess.run([sys.executable, "-c", script], env=dict(PLAIN_ENV, TF_CPP_MIN_LOG_LEVEL="0"),
                          capture_output=True, text=True, timeout=300)
    assert "cpu_feature_guard" in loud.stderr or "oneDNN custom operations" in loud.stderr, loud.stderr


def test_dropout_and_stochastic_depth_overrides_reach_train_and_are_resume_settings(tmp_path, monkeypatch):
    """``--drop-rate 0 --stochastic-depth-rate 0`` reach ``train()``; a run started with other rates
    is not resumed under these (its checkpoint's masks and model differ), a run.json written
    before the settings existed means the model's own rates."""
    import json

    from keras_nfnets.cli import build_parser
    from keras_nfnets.training.run_dir import RunDir

    args = build_parser().parse_args(["train", "--drop-rate", "0", "--stochastic-depth-rate", "0.05"])
    assert (args.drop_rate, args.stochastic_depth_rate) == (0.0, 0.05)
    run = RunDir(str(tmp_path))
    (tmp_path / "backup").mkdir()
    old = {"model": "NFResNet14", "dataset": "digits", "weights": None, "epochs": 2, "batch_size": 48,
           "image_size": 32, "steps_per_epoch": 25, "precision": "float32", "seed": 0, "augment": "default",
           "accumulation_steps": 1, "recipe": "r"}
    (tmp_path / "run.json").write_text(json.dumps(old))
    run.check_resumable(dict(old, drop_rate=None, stochastic_depth_rate=None))  # the model's rates, as before
    with pytest.raises(ValueError, match=r"`drop_rate`: None in the checkpoint, 0\.0 now"):
        run.check_resumable(dict(old, drop_rate=0.0, stochastic_depth_rate=None))
    (tmp_path / "run.json").write_text(json.dumps(dict(old, drop_rate=0.0, stochastic_depth_rate=0.05)))
    with pytest.raises(ValueError, match=r"`stochastic_depth_rate`: 0\.05 in the checkpoint, None now"):
        run.check_resumable(dict(old, drop_rate=0.0, stochastic_depth_rate=None))


@pytest.mark.slow
@ON_QUICK_RUN
def test_an_export_that_disagrees_with_keras_is_not_written(tmp_path, capsys, monkeypatch, quick_digits_run):
    """A broken converter (here: one that exports other weights) is caught on the run's held-out
    images: exit status 2, what to try, and neither the file nor its hidden partial left behind;
    `--no-verify` writes it unchecked."""
    import keras

    from keras_nfnets import export as exporting

    real = exporting.export_tflite

    def broken(model, path, **options):
        other = keras.models.clone_model(model)
        other.set_weights(model.get_weights())
        return real(exporting.randomise_weights(other, std=2.0), path, **options)

    monkeypatch.setattr(exporting, "export_tflite", broken)
    run = quick_digits_run.output_dir
    capsys.readouterr()
    assert main(["export", str(tmp_path / "bad.tflite"), "--model", run, "--format", "tflite",
                 "--quantization", "dynamic"]) == 2
    err = capsys.readouterr().err
    assert "the exported tflite, dynamic file agrees with the Keras model on only" in err
    assert "nothing was written to" in err and "try `--quantization float16`" in err and "`--no-verify`" in err
    assert os.listdir(tmp_path) == []
    assert main(["export", str(tmp_path / "bad.tflite"), "--model", run, "--format", "tflite", "--quantization",
                 "dynamic", "--no-verify"]) == 0
    assert "not verified (--no-verify)" in capsys.readouterr().out and os.listdir(tmp_path) == ["bad.tflite"]


@pytest.mark.slow
def test_a_broken_jpeg_body_gets_one_message_not_libjpegs_line_before_it(tmp_path):
    """A JPEG whose header is valid and whose body is cut: `nfnets predict` says it skipped the
    file, in one line; libjpeg's own "Input file read error" no longer comes first (issue 44)."""
    good = tmp_path / "good.jpg"
    _jpeg(good, seed=0, size=(64, 64))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:200] + b"\0" * 50)
    result = subprocess.run([sys.executable, "-m", "keras_nfnets.cli", "predict", str(broken), "--model", "NFResNet26",
                             "--weights", "none"], capture_output=True, text=True, timeout=300, env=REPO_ENV)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"nfnets predict: skipped {broken}: Cannot decode {str(broken)!r} as an image "
                                          "(JPEG, PNG, BMP or GIF expected; the file is empty, truncated or of another "
                                          "format)."], result.stderr


def test_version_and_a_short_answer_to_a_bad_argument(capsys):
    """`nfnets --version`; a bad argument gets one line and where the options are, not 16 lines of
    usage before it (issue 44)."""
    from keras_nfnets import __version__

    with pytest.raises(SystemExit) as exit_status:
        main(["--version"])
    assert exit_status.value.code == 0 and capsys.readouterr().out == f"nfnets (keras_nfnets) {__version__}\n"
    with pytest.raises(SystemExit) as exit_status:
        main(["train", "--epochs", "zero"])
    assert exit_status.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "nfnets train: error: argument --epochs: expected a positive integer, got 'zero'",
        "(`nfnets train --help` lists every option)"]
