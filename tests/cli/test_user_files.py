"""A user's own files are never deleted or replaced (issue 36, item 1): presets with
``overwrite``, ``train`` with ``resume=False`` (``--restart``), export targets, plots and the
model file's staging name. Each case puts a user's file in the way and checks, by content
hash and mode, that it is still there after the refusal."""

import hashlib
import os
import stat

import pytest

import keras_nfnets
from keras_nfnets.applications import BUILDERS


def _snapshot(directory):
    """Every path under ``directory`` with its md5 (files) and mode, and the folder's own mode."""
    found = {".": stat.S_IMODE(os.stat(directory).st_mode)}
    for root, folders, files in os.walk(directory):
        for name in folders + files:
            path = os.path.join(root, name)
            digest = hashlib.md5(open(path, "rb").read()).hexdigest() if os.path.isfile(path) else "dir"
            found[os.path.relpath(path, directory)] = (digest, stat.S_IMODE(os.stat(path).st_mode))
    return found


def _refused_untouched(folder, error, match, action):
    """``action()`` raises ``error`` matching ``match``, and nothing under ``folder`` changed."""
    before = _snapshot(folder)
    with pytest.raises(error, match=match):
        action()
    assert _snapshot(folder) == before


def _users_folder(path):
    """A folder as the issue found it: ``notes.txt`` and ``photos/p1.jpg``, mode 755."""
    (path / "photos").mkdir(parents=True)
    (path / "notes.txt").write_text("my notes")
    (path / "photos" / "p1.jpg").write_bytes(b"\xff\xd8\xff\xe0 a photo")
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A real run directory of ``train`` (2 steps at 32 px) inside ``runs/``."""
    runs = tmp_path_factory.mktemp("runs")
    output = runs / "good"
    keras_nfnets.train("NFResNet14", "digits", output_dir=str(output), epochs=1, steps_per_epoch=2, batch_size=16,
                       image_size=32, verbose=0, tensorboard=False)
    return output


@pytest.fixture(scope="module")
def small_model():
    return BUILDERS["NFResNet26"](input_shape=(64, 64, 3), classes=10)


# --- presets ---------------------------------------------------------------------------------------
def test_a_preset_in_a_users_folder_leaves_every_file_of_theirs(tmp_path, small_model):
    """The user's files beside a preset (issue 44: a model card) are never deleted, replaced or
    rewritten, by the first write or an overwrite; preset files that keras_nfnets did not write
    stop it before any write."""
    pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")
    folder = _users_folder(tmp_path / "mine")
    before = _snapshot(folder)
    keras_nfnets.save_preset(small_model, folder)
    keras_nfnets.save_preset(small_model, folder, overwrite=True)
    after = _snapshot(folder)
    assert {name: after.get(name) for name in before} == before
    assert "config.json" in after and stat.S_IMODE(os.stat(folder).st_mode) == 0o755
    stray = _users_folder(tmp_path / "stray")
    (stray / "model.weights.h5").write_text("mine")  # a preset file keras_nfnets did not write
    _refused_untouched(stray, ValueError, "holds preset files that keras_nfnets did not write",
                       lambda: keras_nfnets.save_preset(small_model, stray, overwrite=True))


def test_preset_overwrite_replaces_only_its_own_preset_and_keeps_the_mode(tmp_path, small_model):
    pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")
    preset = tmp_path / "preset"
    keras_nfnets.save_preset(small_model, preset)
    assert stat.S_IMODE(os.stat(preset).st_mode) == 0o777 & ~_umask()  # a new folder's mode, not mkdtemp's 700
    os.chmod(preset, 0o750)
    written = os.path.getmtime(preset / "model.weights.h5")
    keras_nfnets.save_preset(small_model, preset, overwrite=True)
    assert stat.S_IMODE(os.stat(preset).st_mode) == 0o750
    assert os.path.getmtime(preset / "model.weights.h5") >= written
    assert not [p for p in os.listdir(tmp_path) if p != "preset"]  # no staging or set-aside folder left
    (preset / "my_notes.txt").write_text("mine")
    keras_nfnets.save_preset(small_model, preset, overwrite=True)
    assert (preset / "my_notes.txt").read_text() == "mine"
    assert not [p for p in os.listdir(tmp_path) if p != "preset"]


def test_preset_never_replaces_its_source_a_run_or_a_root(small_run, tmp_path):
    pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")
    runs = small_run.parent
    before = _snapshot(runs)
    with pytest.raises(ValueError, match="is the source.*never replaces what it is made from"):
        keras_nfnets.save_preset(str(small_run), str(small_run), overwrite=True)  # `preset runs/good runs/good`
    with pytest.raises(ValueError, match="holds the source"):
        keras_nfnets.save_preset(str(small_run), str(runs), overwrite=True)  # `preset runs/good runs`
    other_run = runs / "other"
    other_run.mkdir()
    (other_run / "run.json").write_text((small_run / "run.json").read_text())
    with pytest.raises(ValueError, match="is a training run's directory"):
        keras_nfnets.save_preset("NFResNet26", str(other_run), weights=None, overwrite=True)
    os.remove(other_run / "run.json")
    os.rmdir(other_run)
    assert _snapshot(runs) == before
    for protected, why in (("/", "a filesystem root"), (os.path.expanduser("~"), "the home directory")):
        with pytest.raises(ValueError, match=why):
            keras_nfnets.save_preset("NFResNet26", protected, weights=None, overwrite=True)


def test_the_preset_command_keeps_a_users_files_and_refuses_preset_files_not_its_own(tmp_path):
    pytest.importorskip("keras_hub", reason="keras-hub is in the test extras")
    from keras_nfnets.cli import main

    folder = _users_folder(tmp_path / "mine")
    (folder / "task.json").write_text("{}")
    before = _snapshot(folder)
    assert main(["preset", "NFResNet26", str(folder), "--weights", "none", "--overwrite"]) == 2
    assert _snapshot(folder) == before
    os.remove(folder / "task.json")
    before = _snapshot(folder)
    assert main(["preset", "NFResNet26", str(folder), "--weights", "none"]) == 0
    after = _snapshot(folder)
    assert {name: after[name] for name in before} == before and "README.md" in after


# --- run directories -------------------------------------------------------------------------------
@pytest.mark.parametrize("resume", [False, True], ids=["restart", "resume"])
def test_a_run_never_replaces_files_it_did_not_write(tmp_path, resume):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"my own model")
    (folder / "logs").mkdir()
    (folder / "logs" / "experiment.txt").write_text("my logs")
    _refused_untouched(folder, FileExistsError, "holds model.keras, logs, which no keras_nfnets run wrote there",
                       lambda: keras_nfnets.train("NFResNet14", "digits", output_dir=str(folder), resume=resume,
                                                  epochs=1, steps_per_epoch=1, batch_size=8, image_size=32, verbose=0))


def test_a_folder_with_other_files_still_takes_a_run(small_run):
    """Files whose names a run does not use stay beside it (the run writes next to them)."""
    assert keras_nfnets.training.run_dir.is_run_directory(small_run)
    assert not keras_nfnets.training.run_dir.is_run_directory(small_run.parent)


def test_the_model_files_staging_name_is_never_a_users_file(tmp_path, small_model):
    from keras_nfnets.saving import save_model_atomically

    mine = tmp_path / "model.partial.keras"  # the fixed staging name this used to write and delete
    mine.write_bytes(b"mine")
    save_model_atomically(small_model, tmp_path / "model.keras")
    assert mine.read_bytes() == b"mine"
    assert sorted(os.listdir(tmp_path)) == ["model.keras", "model.partial.keras"]
    assert stat.S_IMODE(os.stat(tmp_path / "model.keras").st_mode) == 0o666 & ~_umask()


# --- exports and plots -----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, name", [("tflite", "model.tflite"), ("onnx", "model.onnx"), ("saved_model", "sm")])
def test_an_export_never_replaces_a_file(tmp_path, small_model, fmt, name, monkeypatch):
    from keras_nfnets import export as exporting

    monkeypatch.setattr(exporting.converters, "fold_weight_standardization", lambda m: pytest.fail("folded first"))
    target = tmp_path / name
    if fmt == "saved_model":
        _users_folder(target)
    else:
        target.write_bytes(b"my own file")
    export = {"tflite": exporting.export_tflite, "onnx": exporting.export_onnx,
              "saved_model": exporting.export_saved_model}[fmt]
    _refused_untouched(tmp_path, FileExistsError, "exists.*never over a file: choose another path",
                       lambda: export(small_model, target))


def test_a_failed_export_leaves_nothing(tmp_path, small_model, monkeypatch):
    import tensorflow as tf

    from keras_nfnets import export as exporting

    def broken_save(module, path, **kwargs):  # dies midway, as the grouped-conv failure of issue 36 did
        os.makedirs(os.path.join(path, "variables"), exist_ok=True)
        open(os.path.join(path, "saved_model.pb"), "wb").close()
        raise RuntimeError("the converter failed")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(RuntimeError, match="the converter failed"):
        exporting.export_saved_model(small_model, tmp_path / "sm")
    monkeypatch.setattr(exporting.converters, "tflite_op_names", lambda path: {"CONV_2D", "FlexErf"})
    with pytest.raises(RuntimeError, match="Flex delegate. Nothing was written"):
        exporting.export_tflite(small_model, tmp_path / "model.tflite")
    assert os.listdir(tmp_path) == []


def test_a_plot_never_replaces_a_file(tmp_path):
    pytest.importorskip("matplotlib")
    from keras_nfnets.cli import main

    mine = tmp_path / "figure2.png"
    mine.write_bytes(b"my figure")
    assert main(["spp", str(mine), "--figure", "2", "--depth", "26", "--image-size", "32"]) == 2
    assert mine.read_bytes() == b"my figure"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
