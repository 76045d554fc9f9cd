"""Keras' own functions read everything the package writes, in a fresh process that ran only
``import keras_nfnets`` (never ``keras_nfnets.load_model``), whichever of Keras, keras-hub or
keras_nfnets came first: ``keras.saving.load_model``, ``keras.models.load_model``,
``keras.models.clone_model`` and ``model_from_json`` on a builder model, a trained run's
``model.keras`` (compiled with SGDAGC), a model with remat on and a timm twin, and keras-hub's
``from_preset`` on a preset (issue 44, item 1: each failed with "Could not locate class")."""

import json
import subprocess
import sys

import numpy as np
import pytest

import keras
import keras_nfnets

from conftest import ON_QUICK_RUN, REPO_ENV

CHECK = r"""
import json, sys
import numpy as np
for name in sys.argv[1].split(","):
    __import__(name)
import keras
files, report, four_ways = json.loads(sys.argv[2]), {}, sys.argv[3] == "four ways"
x = np.load(files["x"])
for key in ("builder", "run", "remat", "timm"):
    try:
        models = [keras.saving.load_model(files[key])]
        loaded = models[0]
        if four_ways:
            clone = keras.models.clone_model(loaded)
            clone.set_weights(loaded.get_weights())
            rebuilt = keras.models.model_from_json(loaded.to_json())
            rebuilt.set_weights(loaded.get_weights())
            models += [keras.models.load_model(files[key]), clone, rebuilt]
        expected = np.load(files[key + "_out"])
        x_in = x[..., : loaded.input_shape[-1]][:, : loaded.input_shape[1], : loaded.input_shape[2]]
        outputs = [np.asarray(m(x_in)) for m in models]
        report[key] = {"types": [type(m).__name__ for m in models],
                       "remat": bool(getattr(loaded, "remat", False)),
                       "optimizer": type(getattr(loaded, "optimizer", None)).__name__,
                       "diff": max(float(np.abs(o - expected).max()) for o in outputs)}
    except Exception as error:
        report[key] = {"error": repr(error)[:300]}
if "keras_hub" in sys.modules:
    import keras_hub
    try:
        classifier = keras_hub.models.ImageClassifier.from_preset(files["preset"])
        backbone = keras_hub.models.Backbone.from_preset(files["preset"])
        report["preset"] = {"types": [type(classifier).__name__, type(backbone).__name__]}
    except Exception as error:
        report["preset"] = {"error": repr(error)[:300]}
print(json.dumps(report))
"""

SIZE = 32


@pytest.fixture(scope="module")
def written(tmp_path_factory, request):
    """What the package writes, each with its expected output on the same images."""
    folder = tmp_path_factory.mktemp("written")
    x = np.random.default_rng(0).standard_normal((2, SIZE, SIZE, 3)).astype("float32")
    np.save(folder / "x.npy", x)
    files = {"x": str(folder / "x.npy")}

    def keep(key, model, path=None):
        path = path or str(folder / f"{key}.keras")
        if not path.endswith("model.keras"):
            model.save(path)
        files[key], files[key + "_out"] = path, str(folder / f"{key}_out.npy")
        inputs = x[:, : model.input_shape[1], : model.input_shape[2], : model.input_shape[-1]]
        np.save(files[key + "_out"], keras.ops.convert_to_numpy(model(inputs)))

    keep("builder", keras_nfnets.NFRegNetB0(input_shape=(SIZE, SIZE, 3), weights=None, classes=10))
    remat = keras_nfnets.NFResNet26(input_shape=(SIZE, SIZE, 3), weights=None, classes=10)
    remat.remat = True
    keep("remat", remat)
    timm = keras_nfnets.from_timm("test_nfnet", pretrained=False, input_shape=(SIZE, SIZE, 3))
    keep("timm", timm)
    run = request.getfixturevalue("quick_digits_run")
    path = f"{run.output_dir}/model.keras"
    keep("run", keras_nfnets.load_model(path), path)
    files["preset"] = str(keras_nfnets.save_preset(timm, folder / "preset"))
    return files


# Each import order loads every file; the two of the fast loop also clone, rebuild from JSON and load
# through keras.models (four ways), the others load with keras.saving.load_model alone: the import
# order decides whether Keras finds the classes, which the first load shows (the four ways on all six
# orders took 232 s of the suite's time).
ORDERS = [
    pytest.param("keras_nfnets", "four ways", id="keras_nfnets-alone"),
    pytest.param("keras_nfnets,keras", "load", id="keras_nfnets-then-keras", marks=pytest.mark.slow),
    pytest.param("keras,keras_nfnets", "load", id="keras-then-keras_nfnets", marks=pytest.mark.slow),
    pytest.param("keras_hub,keras_nfnets", "four ways", id="keras_hub-then-keras_nfnets"),
    pytest.param("keras_nfnets,keras_hub", "load", id="keras_nfnets-then-keras_hub", marks=pytest.mark.slow),
    pytest.param("keras_nfnets.layers", "load", id="keras_nfnets.layers-alone", marks=pytest.mark.slow),
]


@ON_QUICK_RUN
@pytest.mark.parametrize("order, ways", ORDERS)
def test_keras_own_functions_read_every_file_after_import_keras_nfnets(written, order, ways):
    result = subprocess.run([sys.executable, "-c", CHECK, order, json.dumps(written), ways], capture_output=True,
                            text=True, timeout=600, env=REPO_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("builder", "run", "remat", "timm"):
        assert "error" not in report[key], (key, report[key])
        assert report[key]["types"] == ["NFModel"] * (4 if ways == "four ways" else 1), (key, report[key])
        assert report[key]["diff"] < 1e-5, (key, report[key])  # the same function, loaded four ways
    assert report["remat"]["remat"] is True
    assert report["run"]["optimizer"] == "SGDAGC"
    if "keras_hub" in order:
        assert report["preset"] == {"types": ["NFNetImageClassifier", "NFNetBackbone"]}, report["preset"]
