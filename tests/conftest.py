import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from float32 and a clean session."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


PARITY_MODELS = ["test_nfnet", "nf_regnet_b1", "nf_resnet50", "dm_nfnet_f0", "nfnet_l0", "eca_nfnet_l0"]
SIZE = 64
HERE = os.path.dirname(os.path.abspath(__file__))
# Subprocesses import the working tree's keras_nfnets, whatever copy is installed.
REPO_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(HERE), os.environ.get("PYTHONPATH")])))

needs_timm = pytest.mark.skipif(
    importlib.util.find_spec("timm") is None or importlib.util.find_spec("torch") is None,
    reason="torch + timm (the test extras) are needed for parity checks",
)


@pytest.fixture(scope="session")
def timm_reference(tmp_path_factory):
    """Seeded random timm models: checkpoints, inputs, logits, and all 36 names' tensor shapes."""
    out = tmp_path_factory.mktemp("timm")
    subprocess.run(
        [sys.executable, os.path.join(HERE, "timm_reference.py"), str(out), str(SIZE), *PARITY_MODELS],
        check=True, timeout=900,
    )
    return out


