import dataclasses
import json
import gc
import importlib.util
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

# JAX's __init__ sets TF_CPP_MIN_LOG_LEVEL=1 as a default when TensorFlow imports it: a variable the
# user never set, which the nfnets program reads as "show TensorFlow's logs". The user's own value
# is recorded before any import, by the first process (xdist's workers inherit the controller's
# environment, JAX's default included), so that subprocesses get the user's environment.
os.environ.setdefault("NFNETS_TESTS_USER_TF_LOGS", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "unset"))

import keras_nfnets  # noqa: F401  (before Keras and TensorFlow, as the README's users import it)
import keras
import pytest

# The suite runs in the environment a user has: it sets no TF_CPP_MIN_LOG_LEVEL or other variable
# that changes what the package does (a quiet start that only worked with one set hid a broken
# multi-worker start-up once). Tests that need a variable set it for their own subprocess.
# keras_nfnets is imported first, as a user does: on an x86 CPU it turns TensorFlow's oneDNN on
# where TensorFlow would leave it off (CPUs without AVX-512 VNNI/BF16 or AMX), in this process and
# in the subprocesses that inherit its environment; test_cpu_kinds.py runs the other case.


@pytest.fixture(scope="session", autouse=True)
def _import_time_objects_frozen():
    """The ~800,000 objects that importing TensorFlow, Keras, PyTorch and timm leaves (the test
    modules are imported when this runs) move to the permanent generation, so that a full garbage
    collection scans only what tests make: Keras' ``clear_session`` after every test took 0.42 s
    (440 tests: about 3 minutes). Nothing a test makes escapes collection."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from float32 and a clean session. Without clear_session's own full garbage
    collection: what tests leave in caches piles up over a run, and collecting it after every
    test grew to 0.2-0.4 s a test late in the suite; Python's automatic collections still run."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session(free_memory=False)


PARITY_MODELS = ["test_nfnet", "nf_regnet_b1", "nf_resnet50", "dm_nfnet_f0", "nfnet_l0", "eca_nfnet_l0"]
SIZE = 64
HERE = os.path.dirname(os.path.abspath(__file__))
# Subprocesses import the working tree's keras_nfnets, whatever copy is installed (PYTHONPATH
# changes which files are imported, not what they do).
REPO_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
if os.environ["NFNETS_TESTS_USER_TF_LOGS"] != "unset":
    REPO_ENV["TF_CPP_MIN_LOG_LEVEL"] = os.environ["NFNETS_TESTS_USER_TF_LOGS"]
REPO_ENV = dict(REPO_ENV, PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(HERE), os.environ.get("PYTHONPATH")])))

# The environment without TensorFlow's log settings: what a user's shell has.
PLAIN_ENV = {k: v for k, v in REPO_ENV.items() if not k.startswith("TF_CPP_")}


def write_jpeg(path, seed, size=(24, 32)):
    """A random ``size`` JPEG at ``path`` (a pathlib.Path)."""
    import numpy as np
    import tensorflow as tf

    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3)).astype("uint8")
    path.write_bytes(tf.io.encode_jpeg(pixels).numpy())


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HAVE_TIMM = importlib.util.find_spec("timm") is not None and importlib.util.find_spec("torch") is not None
needs_timm = pytest.mark.skipif(not HAVE_TIMM, reason="torch + timm (the test extras) are needed for parity checks")


# The modules whose tests take minutes, longest first (a profile of the whole suite on 2 cores):
# pytest-xdist hands out the xdist groups first (largest first), then the other tests in collection
# order, so the README's jobs start early and the many short tests fill both workers at the end (in
# file order, one worker waited 66 s for the other's last test; with this order both ended together).
RUN_FIRST = ("test_backends.py", "test_readme.py", "test_multi_worker.py", "test_jax_multi_process.py",
             "test_xla_and_precision.py", "test_notebooks.py", "test_device_check.py")


def pytest_collection_modifyitems(items):
    """:data:`RUN_FIRST`'s modules first, each in its own order; then the rest in file order."""
    items.sort(key=lambda item: RUN_FIRST.index(item.path.name) if item.path.name in RUN_FIRST else len(RUN_FIRST))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a skipped test is a failure: the test extras install every optional
    dependency, so a skip there means coverage silently went missing."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not item.get_closest_marker("allowed_skip_in_ci"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI ({reason}); CI installs the test extras (pip install '.[test]'), "
                           "so every test must run there")


def offline_hub_env(tmp_path, safetensors, repo="timm/nf_regnet_b1.ra2_in1k"):
    """A Hugging Face Hub cache under ``tmp_path/hf`` holding ``safetensors`` as ``repo``'s
    model.safetensors, and the environment that reads only it (HF_HUB_OFFLINE) with a fresh
    KERAS_HOME. Returns ``(env, snapshot folder)``."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    shutil.copy(safetensors, folder / "snapshots" / commit / "model.safetensors")
    env = dict(REPO_ENV, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", KERAS_HOME=str(tmp_path / "keras"))
    return env, folder


# a short digits run: enough steps for every piece of train() to run, seconds to train
QUICK = dict(epochs=2, steps_per_epoch=3, batch_size=16, image_size=32, verbose=0, tensorboard=False)
ON_QUICK_RUN = pytest.mark.xdist_group("quick_digits_run")  # the tests that share quick_digits_run: one worker


@pytest.fixture(scope="session")
def quick_digits_run(tmp_path_factory):
    """One QUICK NF-ResNet-14 digits run (float32), trained once for the tests that only read a
    finished run (evaluate, predict, export, presets, int8 calibration, the float32 steps): they
    write nothing into its directory."""
    from keras_nfnets.training import train

    return train("NFResNet14", "digits", output_dir=str(tmp_path_factory.mktemp("quick_run") / "run"), **QUICK)


def user_environment():
    """The environment of a user's shell: this one without the variables that change what
    TensorFlow, Keras or the Hub do; PYTHONPATH keeps the console script on this checkout."""
    from keras_nfnets.backend import onednn

    ours = {onednn.VARIABLE, onednn.SET_BY_US} if onednn.decided_by == "keras_nfnets" else set()  # not in a shell
    return {k: v for k, v in REPO_ENV.items()
            if not k.startswith(("TF_CPP_", "KERAS_BACKEND", "HF_HUB_OFFLINE", "PYTEST")) and k not in ours}


CLUSTER_TIMEOUT = 600  # seconds for any one cluster run; the launcher and its workers are killed after it
# The digits recipe shortened to 3 epochs of 15 steps at batch 32 and LR 0.05, dropout and stochastic
# depth off (no random draws between one process and a cluster): 45 steps (the README's 6-epoch cluster
# line takes 174 at the default batch 48; at LR 0.1 and AGC off, the loss became NaN in epoch 1 on an
# Intel Xeon with AMX). Its three full epochs (132 steps, 93.3% on one process) took 441 s of CI's time
# for the one-process run, the cluster and the killed cluster. README_CLUSTER is that line's
# documented short form (test_readme.py checks both).
DIGITS_SHORT = ["--epochs", "3", "--steps-per-epoch", "15", "--batch-size", "32", "--learning-rate", "0.05",
                "--drop-rate", "0", "--stochastic-depth-rate", "0"]
SHORT_CLUSTER_DIR = "runs/digits_2workers_short"  # its own: the main job's run directory holds the main job
README_CLUSTER = ("nfnets launch --workers 2 --threads-per-worker 1 -- train " + " ".join(DIGITS_SHORT)
                  + f" --output-dir {SHORT_CLUSTER_DIR}")
ON_DIGITS_RUNS = pytest.mark.xdist_group("multi_worker_digits")  # the tests that share digits_runs: one worker


@dataclasses.dataclass
class DigitsRuns:
    one_dir: pathlib.Path  # the one-process run
    cluster: object  # README_CLUSTER's CompletedProcess, typed as a user types it
    cluster_dir: pathlib.Path
    log_dir: pathlib.Path  # where the launcher put the other workers' logs (it says so on stderr)
    scratch: pathlib.Path  # the cluster's TMPDIR


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory):
    """:data:`DIGITS_SHORT` trained by one process and by the README's two-worker cluster in its
    short form, :data:`README_CLUSTER` typed as a user types it (the console script, a fresh
    directory, the user's environment), with a temporary directory of its own. Shared by the
    multi-worker tests and the README's cluster check (one xdist group)."""
    import re
    import shutil

    folder = tmp_path_factory.mktemp("digits")
    one = subprocess.run([sys.executable, "-m", "keras_nfnets.cli", "train", "--output-dir", str(folder / "one"),
                          *DIGITS_SHORT], capture_output=True, text=True, timeout=CLUSTER_TIMEOUT, env=REPO_ENV)
    assert one.returncode == 0, (one.stdout + one.stderr)[-3000:]
    assert shutil.which("nfnets"), "the nfnets console script is not installed (pip install '.[test]')"
    user, scratch = folder / "user", folder / "user-tmp"
    user.mkdir()
    scratch.mkdir()
    cluster = subprocess.run(["bash", "-c", README_CLUSTER], cwd=user, env=dict(user_environment(), TMPDIR=str(scratch)),
                             capture_output=True, text=True, timeout=CLUSTER_TIMEOUT)
    assert cluster.returncode == 0, (cluster.stdout + cluster.stderr)[-3000:]
    log_dir = pathlib.Path(re.search(r"the others log to (\S+)\)", cluster.stderr).group(1))
    return DigitsRuns(folder / "one", cluster, user / SHORT_CLUSTER_DIR, log_dir, scratch)


def tool_module(name):
    """The module ``tools/<name>.py`` (the developer tools are not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"tools_{name}", os.path.join(HERE, "..", "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def made_once_per_run(tmp_path_factory, name, make):
    """The path ``name`` in a folder that every pytest-xdist worker of this test run shares
    (without xdist, this process's): the first worker to ask calls ``make(path)`` while it holds a
    file lock on ``name``; the others wait for it and read what it made instead of making it again."""
    import filelock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's base folder, above each worker's own
    path = root / "made_once" / name
    path.parent.mkdir(exist_ok=True)
    with filelock.FileLock(f"{path}.lock"):
        if not pathlib.Path(f"{path}.done").exists():
            make(path)
            pathlib.Path(f"{path}.done").write_text("")
    return path


@pytest.fixture(scope="session")
def built_counts(tmp_path_factory):
    """``built_counts(builder)``: ``(parameters, FLOPs)`` of the builder at its test size from a
    shapes-only build (tools/write_counts.py's compute_counts), built once per test run (once
    for all xdist workers): the published-count, peer-count and stored-count tests share the
    builds (NFNet-F7 alone takes 3 s)."""
    import json

    compute_counts = tool_module("write_counts").compute_counts

    def counts(name):
        path = made_once_per_run(tmp_path_factory, f"counts_{name}.json",
                                 lambda path: path.write_text(json.dumps(compute_counts(name))))
        return tuple(json.loads(path.read_text()))

    return counts


@pytest.fixture(scope="session")
def timm_reference(tmp_path_factory):
    """Seeded random timm models: checkpoints, inputs, logits, all 36 names' tensor shapes, and
    timm's parameter counts of DeepMind-layout twins (peer counts). Read-only for the tests."""
    if not HAVE_TIMM:
        pytest.skip("torch + timm (the test extras) are needed for parity checks")

    def make(out):
        out.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, os.path.join(HERE, "timm_reference.py"), str(out), str(SIZE), *PARITY_MODELS],
            check=True, timeout=900,
        )

    return made_once_per_run(tmp_path_factory, "timm", make)  # once for every xdist worker


# --- the launcher's processes (test_multi_worker.py, test_jax_multi_process.py) ---------------------

def launcher_header(process):
    """The launcher's first line (worker pids and ports), skipping what starts before it."""
    while True:
        line = process.stdout.readline()
        if line.startswith("nfnets launch:") or not line:
            return line


def launch_and_kill_worker_1(command, metadata, env, timeout, settle=0.0):
    """Run the launcher ``command``; once the first epoch's backup is committed (``metadata``) and
    ``settle`` seconds later, SIGKILL worker 1; return (the launcher's output, its exit status,
    the first workers' pids). The launcher is killed if it outlives ``timeout``."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        header = launcher_header(process)
        pids = [int(p) for p in re.findall(r"pid (\d+)", header)]
        deadline = time.monotonic() + timeout
        while not (metadata.exists() and json.loads(metadata.read_text())["epoch"] >= 1):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.2)
        time.sleep(settle)
        os.kill(pids[1], signal.SIGKILL)
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return header + out, process.returncode, pids


def process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
