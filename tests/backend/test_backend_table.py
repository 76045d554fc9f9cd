"""Backend-specific code lives in keras_nfnets/backend/ only (issue 22): every backend module fills
the whole table, and no other module asks which backend runs."""

import pathlib
import re

import pytest

from keras_nfnets import backend

PACKAGE = pathlib.Path(backend.__file__).parent.parent
# asking which backend runs, or importing a backend framework
BRANCH = re.compile(r"backend\.backend\(\)|config\.backend\(\)|KERAS_BACKEND|^\s*(import|from) (jax|torch)\b", re.M)
ALLOWED = {  # path -> why the match is not a backend branch
    "weights/convert.py": "reads PyTorch .pth checkpoint files with torch.load (a file format, on every backend)",
}


def test_every_backend_module_fills_the_whole_table():
    for name, module in backend.MODULES.items():
        table = backend.for_backend(name)
        assert table.__name__ == f"keras_nfnets.backend.{module}"
        missing = [entry for entry in backend.TABLE if not hasattr(table, entry)]
        assert not missing, (name, missing)
    with pytest.raises(ValueError, match="Unknown Keras backend 'mxnet'"):
        backend.for_backend("mxnet")


def test_no_module_outside_the_backend_package_branches_on_the_backend():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("backend/") or relative in ALLOWED:
            continue
        hits = BRANCH.findall(path.read_text())
        if hits:
            found[relative] = hits
    assert not found, f"backend-specific code outside keras_nfnets/backend/: {found}"


def test_the_scan_finds_a_branch():  # the scan above can fail
    assert BRANCH.search('if keras.backend.backend() == "jax":\n    pass')
    assert BRANCH.search("def f():\n    import torch\n")


def test_models_are_built_and_loaded_under_the_backends_variable_initialization(tmp_path, monkeypatch):
    """The builder (every builder, from_timm, the keras-hub backbone) and keras_nfnets.load_model
    create their variables inside the table's ``variable_initialization`` (on JAX, the size-class
    draws that test_backends.py checks against Keras' own), and load a weights file after it."""
    import contextlib

    import keras

    from keras_nfnets import NFResNet26, saving
    from keras_nfnets.backend import tf_backend

    entered = []  # per entry of the context: the variables created inside it

    @contextlib.contextmanager
    def recording():
        created = []
        entered.append(created)
        original = keras.Variable.__init__

        def recorded(self, *args, **kwargs):
            created.append(self)
            original(self, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(keras.Variable, "__init__", recorded)
            yield

    monkeypatch.setattr(tf_backend, "variable_initialization", recording)
    model = NFResNet26(input_shape=(32, 32, 3), classes=10)
    assert len(entered) == 1 and {id(w) for w in model.weights} <= {id(v) for v in entered[0]}
    model.save(tmp_path / "model.keras")
    loaded = saving.load_model(tmp_path / "model.keras")
    assert len(entered) == 2 and {id(w) for w in loaded.weights} <= {id(v) for v in entered[1]}
