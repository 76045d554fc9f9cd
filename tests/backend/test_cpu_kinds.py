"""Every kind of x86 CPU (issue 35): where TensorFlow leaves oneDNN off (AVX2 without AVX-512
VNNI/BF16 or AMX: laptops, older cloud machines), its CPU Conv2D has no gradient for grouped
convolutions. The package must find that out by computing, train the per-group path there with
the same numerics, and turn oneDNN on where it still can (before TensorFlow loads).

Any x86 machine behaves like such a CPU in a fresh process with ``TF_ENABLE_ONEDNN_OPTS=0``;
``ONEDNN_MAX_CPU_ISA=AVX2`` and ``XLA_FLAGS=--xla_cpu_max_isa=AVX2`` hold oneDNN's and XLA's code
to AVX2 (:data:`AVX2_CPU`). Each check runs in subprocesses (``cpu_kind_worker.py``)."""

import json
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import HERE, REPO_ENV, user_environment

X86 = platform.machine().lower() in ("x86_64", "amd64")


def cpu_kind(onednn, base=None):
    """The environment of a CPU of the AVX2 kind (on x86), with oneDNN on ("1"), off ("0": the
    default of such a CPU), or left to TensorFlow and keras_nfnets (None)."""
    env = dict(REPO_ENV if base is None else base)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    env.pop("KERAS_NFNETS_SET_ONEDNN", None)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    if X86:
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_cpu_max_isa=AVX2"]))
    return env


# The three families' blocks and timm's ECA layout (symmetric padding) at toy widths, one block per
# stage (tests/harness.py): every layer type of the full variants, in seconds instead of minutes
# (the full NF-ResNet-26, NF-RegNet-B0, NFNet-F0 and eca_nfnet_l0 took 432 s of the suite's time).
FAMILIES = ["toy_nf_resnet", "toy_nf_regnet", "toy_nfnet", "toy_eca_nfnet"]
GROUPED = ["toy_nf_regnet"]  # the grouped model trained under MirroredStrategy
pytestmark = pytest.mark.xdist_group("cpu_kinds")  # one worker: the reference step is made once


def run_worker(tmp_path, label, onednn, models, strategy="none", force_native=False, precision="float32", timeout=600):
    out = tmp_path / label
    out.mkdir()
    task = out / "task.json"
    task.write_text(json.dumps(dict(out=str(out), models=models, strategy=strategy, force_native=force_native,
                                    precision=precision)))
    result = subprocess.run([sys.executable, os.path.join(HERE, "cpu_kind_worker.py"), str(task)],
                            env=cpu_kind(onednn), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, json.loads((out / "result.json").read_text())


@pytest.fixture(scope="module")
def onednn_steps(tmp_path_factory):
    """The reference: each model's step with oneDNN on (its native grouped convolutions)."""
    out, result = run_worker(tmp_path_factory.mktemp("onednn"), "on", "1", FAMILIES)
    return out, result


def assert_same_step(out, reference, name):
    """Same starting weights; after the step, every weight within 1e-5 of its scale of the
    reference, and every weight's update within 2e-2 of that update's scale (measured: 1.1e-6 and
    2.9e-3, oneDNN's and Eigen's float rounding carried through one step). A step that dropped or
    misrouted a group's gradient moves a weight by about the update itself."""
    got, want = np.load(out / f"{name}.npz"), np.load(reference / f"{name}.npz")
    count = len(want.files) // 2
    assert len(got.files) == len(want.files)
    worst_weight = worst_update = 0.0
    for i in range(count):
        start, start_ref = got[f"arr_{i}"], want[f"arr_{i}"]
        assert np.array_equal(start, start_ref), f"{name}: weight {i} starts differently"
        end, end_ref = got[f"arr_{i + count}"], want[f"arr_{i + count}"]
        worst_weight = max(worst_weight, np.abs(end - end_ref).max() / max(np.abs(end_ref).max(), 1e-12))
        update, update_ref = end - start, end_ref - start_ref
        if np.abs(update_ref).max() > 0:
            worst_update = max(worst_update, np.abs(update - update_ref).max() / np.abs(update_ref).max())
    print(f"{name}: weights within {worst_weight:.1e}, updates within {worst_update:.1e} of the oneDNN step")
    assert worst_weight <= 1e-5 and worst_update <= 2e-2, (name, worst_weight, worst_update)


@pytest.mark.slow
def test_without_onednn_the_probe_says_no_and_every_family_trains_as_with_it(tmp_path, onednn_steps):
    """oneDNN off: the probe computes a grouped gradient, fails, and says per group; one
    ``model.fit`` step (SGD + AGC) of each family and of a timm twin runs and equals oneDNN's."""
    reference, on = onednn_steps
    assert on["onednn"] is True and on["probe"]["native"] is True, on
    out, off = run_worker(tmp_path, "off", "0", FAMILIES)
    assert off["onednn"] is False
    assert off["probe"]["native"] is False and "Gradients for grouped convolutions" in off["probe"]["reason"], off
    for name in FAMILIES:
        assert "error" not in off["models"][name], off["models"][name]
        assert off["models"][name]["loss"] == pytest.approx(on["models"][name]["loss"], rel=1e-5)
        assert_same_step(out, reference, name)


@pytest.mark.slow
def test_without_onednn_mirrored_strategy_trains_as_one_device_with_onednn(tmp_path, onednn_steps):
    """The same under MirroredStrategy over two CPU replicas: the probe's first call comes from
    inside a replica's trace, where it must still compute (a paused tape computes nothing), and
    the all-reduced step equals oneDNN's one-device step. One grouped model: the probe's first
    call comes with the first model only (the second, timm's ECA layout, took 45 s of CI's time
    and trains per group without oneDNN in the test above)."""
    reference, _ = onednn_steps
    out, mirrored = run_worker(tmp_path, "mirrored", "0", GROUPED, strategy="mirrored")
    assert mirrored["replicas"] == 2 and mirrored["probe"]["native"] is False
    for name in GROUPED:
        assert "error" not in mirrored["models"][name], mirrored["models"][name]
        assert_same_step(out, reference, name)


@pytest.mark.slow
def test_a_probe_that_said_native_without_onednn_would_fail_the_first_step(tmp_path):
    """What the tests above guard against (the probe before issue 35 answered "native" on every
    CPU): with the answer forced to native where oneDNN is off, the first fit step fails with
    TensorFlow's grouped-gradient error. If TensorFlow ever gains that gradient, this fails and the
    probe's documentation must change."""
    _, forced = run_worker(tmp_path, "forced", "0", ["toy_nf_regnet"], force_native=True)
    error = forced["models"]["toy_nf_regnet"].get("error", "")
    assert error.startswith("InvalidArgumentError") and "Conv2DBackprop" in error, forced


@pytest.mark.slow
def test_nfnets_train_runs_without_onednn_and_says_which_path(tmp_path):
    """``nfnets train --model NFRegNetB0`` in its short form, typed by a user whose CPU leaves
    oneDNN off; the result line names the path."""
    assert shutil.which("nfnets"), "the nfnets console script is not installed (pip install '.[test]')"
    command = ["nfnets", "train", "--model", "NFRegNetB0", "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8",
               "--image-size", "32", "--output-dir", str(tmp_path / "run")]
    result = subprocess.run(command, env=cpu_kind("0", base=user_environment()), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "oneDNN off" in result.stdout and "grouped convolutions one per group" in result.stdout, result.stdout
    assert result.stderr == "", result.stderr  # the quiet start stays quiet
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "grouped convolutions one per group" in record["compute"]


KERAS_HUB_FIT = """
import numpy as np, keras_nfnets, keras_hub
model = keras_nfnets.NFRegNetB0(input_shape=(32, 32, 3), classes=10)
keras_nfnets.save_preset(model, {preset!r})
task = keras_hub.models.ImageClassifier.from_preset({preset!r}, num_classes=3)
rng = np.random.default_rng(0)
x, y = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32"), rng.integers(0, 3, 8)
before = [w.copy() for w in task.backbone.get_weights()]
loss = task.fit(x, y, batch_size=4, epochs=1, verbose=0).history["loss"][0]
moved = sum(not np.array_equal(a, b) for a, b in zip(before, task.backbone.get_weights()))
from keras_nfnets.backend import tf_backend
print(loss, moved, len(before), tf_backend.grouped_conv_probe()["native"])
"""


@pytest.mark.slow
def test_keras_hubs_classifier_fits_without_onednn(tmp_path):
    code = KERAS_HUB_FIT.format(preset=str(tmp_path / "preset"))
    result = subprocess.run([sys.executable, "-c", code], env=cpu_kind("0"), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    loss, moved, count, native = result.stdout.split()[-4:]
    assert np.isfinite(float(loss)) and native == "False"
    assert int(moved) > 0.9 * int(count), (moved, count)  # the backbone trained, grouped convs included


ONEDNN_STATE = """
import os, sys
{first}
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
from keras_nfnets.backend import onednn
print(os.environ.get("TF_ENABLE_ONEDNN_OPTS"), _pywrap_util_port.IsMklEnabled(), onednn.decided_by)
"""


@pytest.mark.skipif(not X86, reason="oneDNN's default is an x86 question")
@pytest.mark.allowed_skip_in_ci
@pytest.mark.parametrize("first, variable, expected", [
    ("import keras_nfnets", None, ("1", "True", "keras_nfnets")),  # the AVX2 kind gets oneDNN
    ("import keras_nfnets", "0", ("0", "False", "user")),  # a user's choice stands
    ("import tensorflow; import keras_nfnets", None, ("None", None, "tensorflow")),  # TensorFlow's own default
])
def test_import_keras_nfnets_turns_onednn_on_unless_the_user_chose(first, variable, expected):
    """TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; importing
    keras_nfnets before TensorFlow turns it on everywhere on x86, and never overrides a user."""
    env = cpu_kind(variable)
    result = subprocess.run([sys.executable, "-c", ONEDNN_STATE.format(first=first)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    got = result.stdout.split()[-3:]
    assert [g for g, e in zip(got, expected) if e is not None] == [e for e in expected if e is not None], got


def test_onednn_is_preferred_only_where_keras_nfnets_may_decide():
    from keras_nfnets.backend.onednn import decide

    environ = {}
    assert decide(environ, {}, "x86_64") == "keras_nfnets" and environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert decide(dict(environ), {"tensorflow": object()}, "x86_64") == "keras_nfnets"  # a child process
    environ.update(TF_ENABLE_ONEDNN_OPTS="0")  # a user who turned it off for a child
    assert decide(environ, {}, "x86_64") == "user"
    environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert decide(environ, {}, "AMD64") == "user" and environ == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    environ = {}
    assert decide(environ, {"tensorflow": object()}, "x86_64") == "tensorflow" and environ == {}
    assert decide(environ, {}, "aarch64") == "platform" and environ == {}


def test_float16_grouped_convolutions_train_on_any_cpu():
    """TensorFlow's CPU kernels have no float16 grouped gradient on any CPU (oneDNN takes no float16
    convolution): the probe is per dtype, so a grouped model trains under ``mixed_float16`` (per
    group) where oneDNN runs its float32 grouped convolutions natively."""
    import keras
    import tensorflow as tf

    from keras_nfnets.backend import tf_backend
    from keras_nfnets.models import build_nf_model
    from keras_nfnets.training import SGDAGC, set_precision
    from harness import toy_config

    x = tf.ones((1, 6, 6, 8), tf.float16)
    try:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, tf.ones((3, 3, 2, 8), tf.float16), 1, "SAME")
        native_float16_gradient = tape.gradient(y, x) is not None
    except tf.errors.InvalidArgumentError:
        native_float16_gradient = False
    assert tf_backend.grouped_conv_probe("float16")["native"] is native_float16_gradient
    try:
        set_precision("mixed_float16")
        model = build_nf_model(toy_config("nfnet"), input_shape=(32, 32, 3), classes=4, classifier_activation=None)
        model.compile(SGDAGC(0.1, clip_factor=0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        images = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype("float32")
        loss = model.fit(images, np.arange(4), epochs=1, verbose=0).history["loss"][0]
    finally:
        set_precision("float32")
    assert np.isfinite(loss)
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.slow
def test_bfloat16_trains_grouped_models_without_onednn(tmp_path):
    """Without oneDNN, TensorFlow computes bfloat16 on Eigen, which has no grouped gradient either:
    per group, one ``mixed_bfloat16`` step of NF-RegNet-B0 runs."""
    _, result = run_worker(tmp_path, "bf16", "0", ["toy_nf_regnet"], precision="mixed_bfloat16")
    assert "error" not in result["models"]["toy_nf_regnet"], result["models"]["toy_nf_regnet"]
    assert np.isfinite(result["models"]["toy_nf_regnet"]["loss"])
    assert result["probe_compute_dtype"]["native"] is False and result["probe_compute_dtype"]["runs"] is True


BFLOAT16_CHECK = """
import json
import tensorflow as tf
from keras_nfnets.training.distribute import check_precision
try:
    x = tf.ones((1, 4, 4, 2), tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.conv2d(x, tf.ones((3, 3, 2, 2), tf.bfloat16), 1, "SAME")
    tape.gradient(y, x).numpy()
    runs = True
except tf.errors.OpError:
    runs = False
try:
    check_precision("mixed_bfloat16", [("CPU", None)])
    refusal = ""
except ValueError as error:
    refusal = str(error)
print(json.dumps({"runs": runs, "refusal": refusal}))
"""


@pytest.mark.slow
def test_bfloat16_is_refused_before_any_work_where_the_cpu_cannot_run_it():
    """On an AVX2 CPU with oneDNN on, TensorFlow keeps bfloat16 on Eigen (it sends it to oneDNN only
    on CPUs with AVX-512); where oneDNN gets it and cannot run it (here: AVX-512 hardware with
    oneDNN's code held to AVX2, where a bfloat16 matmul crashes the process), ``train`` refuses
    ``mixed_bfloat16`` at its precision check with what to do, instead of failing in ``fit``."""
    result = subprocess.run([sys.executable, "-c", BFLOAT16_CHECK], env=cpu_kind("1"), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert (answer["refusal"] == "") is answer["runs"], answer
    if answer["refusal"]:
        assert "train in float32" in answer["refusal"] and "TF_ENABLE_ONEDNN_OPTS=0" in answer["refusal"], answer


def test_the_onednn_line_says_whose_choice_it_was(monkeypatch):
    """Issue 44: "oneDNN on, set by keras_nfnets" on a CPU where TensorFlow turns it on by itself
    (AVX-512 VNNI/BF16, AVX-VNNI, AMX): there it is TensorFlow's default; on an AVX2 CPU it is ours."""
    from keras_nfnets.backend import cpu, onednn, tf_backend

    probe = dict(tf_backend.grouped_conv_probe(), onednn=True)  # as on a CPU where oneDNN runs
    monkeypatch.setattr(tf_backend, "grouped_conv_probe", lambda *args, **kwargs: probe)
    monkeypatch.setattr(onednn, "decided_by", "keras_nfnets")
    model = cpu.cpu_info()[0]
    for flags, origin in (({"avx2", "avx512f", "avx512_vnni"}, "oneDNN on, TensorFlow's default on this CPU"),
                          ({"avx2", "amx_bf16", "amx_tile"}, "oneDNN on, TensorFlow's default on this CPU"),
                          ({"avx2", "fma"}, "oneDNN on, set by keras_nfnets")):
        monkeypatch.setattr(cpu, "cpu_info", lambda flags=flags: (model, flags))
        assert origin in tf_backend.compute_description(), (flags, tf_backend.compute_description())
    monkeypatch.setattr(onednn, "decided_by", "user")  # TF_ENABLE_ONEDNN_OPTS=0 before keras_nfnets loaded
    monkeypatch.setenv(onednn.VARIABLE, "0")
    probe["onednn"] = False
    assert "oneDNN off, TF_ENABLE_ONEDNN_OPTS=0 set by the user" in tf_backend.compute_description()
