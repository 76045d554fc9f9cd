"""Pretrained weights: parity with timm, strict conversion, and the weights="imagenet" path (offline)."""

import json
import os
import subprocess
import sys
import textwrap
import socket

import numpy as np
import pytest
import keras

import keras_nfnets
from keras_nfnets import CheckpointError, from_timm
from keras_nfnets.models import TIMM_CONFIGS
from keras_nfnets.weights import load_checkpoint, match_checkpoint
from conftest import HERE, PARITY_MODELS, PLAIN_ENV, REPO_ENV, SIZE, needs_timm, offline_hub_env
from keras_nfnets.cli import main

def _relative_error(model, reference):
    y = keras.ops.convert_to_numpy(model(reference["x"]))
    return np.abs(y - reference["logits"]).max() / np.abs(reference["logits"]).max()


@needs_timm
@pytest.mark.parametrize("name", PARITY_MODELS)
def test_logits_match_timm(name, timm_reference):
    reference = np.load(timm_reference / f"{name}.npz")
    model = from_timm(name, checkpoint=timm_reference / f"{name}.safetensors", input_shape=(SIZE, SIZE, 3),
                      classifier_activation=None)
    error = _relative_error(model, reference)
    print(f"{name}: max |keras - timm| / max |timm| = {error:.2e}")
    assert error < 1e-4


@needs_timm
def test_pth_file_and_array_dict_load_too(timm_reference):
    reference = np.load(timm_reference / "test_nfnet.npz")
    kwargs = dict(input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    assert _relative_error(from_timm("test_nfnet", checkpoint=timm_reference / "test_nfnet.pth", **kwargs), reference) < 1e-4
    arrays = load_checkpoint(timm_reference / "test_nfnet.safetensors")
    assert _relative_error(from_timm("test_nfnet", checkpoint=arrays, **kwargs), reference) < 1e-4


@pytest.mark.slow
@needs_timm
def test_name_and_shape_mapping_for_all_timm_models(timm_reference):
    shapes = json.loads((timm_reference / "shapes.json").read_text())
    assert sorted(shapes) == sorted(TIMM_CONFIGS) and len(shapes) == 36
    for name, tensors in shapes.items():
        # zero-stride arrays: shapes without memory, so even nfnet_f7 costs nothing
        state = {key: np.broadcast_to(np.zeros((), "float32"), shape) for key, shape in tensors.items()}
        with keras.StatelessScope(initialize_variables=False):
            model = from_timm(name, pretrained=False, input_shape=(SIZE, SIZE, 3))
            pairs = match_checkpoint(model, state, TIMM_CONFIGS[name])
        assert len(pairs) == len(model.weights) == len(tensors), name


@needs_timm
def test_include_top_false_uses_the_backbone(timm_reference):
    path = timm_reference / "nf_regnet_b1.safetensors"
    full = from_timm("nf_regnet_b1", checkpoint=path, input_shape=(SIZE, SIZE, 3))
    backbone = from_timm("nf_regnet_b1", checkpoint=path, include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3))
    x = np.load(timm_reference / "nf_regnet_b1.npz")["x"]
    features = keras.ops.convert_to_numpy(backbone(x))
    head = full.get_layer("predictions")
    logits = features @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(keras.ops.softmax(logits).numpy(), keras.ops.convert_to_numpy(full(x)), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Strictness: every failure names the tensors, and nothing is loaded.
@pytest.fixture(scope="module")
def small_state(timm_reference):
    """A test_nfnet state dict in timm's own names and shapes (listed by timm itself), every tensor
    filled with values no other tensor has."""
    shapes = json.loads((timm_reference / "shapes.json").read_text())["test_nfnet"]
    rng = np.random.default_rng(0)
    return {key: rng.standard_normal(shape).astype("float32") + index * 100.0 for index, (key, shape)
            in enumerate(sorted(shapes.items()))}


def test_round_trip_of_a_synthetic_state_places_every_tensor(small_state):
    """Every checkpoint tensor lands, whole, in exactly one Keras weight (compared as value sets, so
    whatever the layout conversion), and every Keras weight gets one."""
    model = from_timm("test_nfnet", checkpoint=small_state, input_shape=(SIZE, SIZE, 3))
    by_offset = {int(np.round(np.median(value) / 100.0)): key for key, value in sorted(small_state.items())}
    used = set()
    for weight in model.weights:
        values = np.asarray(weight.numpy(), "float32").ravel()
        key = by_offset[int(np.round(np.median(values) / 100.0))]
        assert key not in used, f"{weight.path} and another weight both came from {key}"
        used.add(key)
        np.testing.assert_array_equal(np.sort(values), np.sort(small_state[key].ravel()), err_msg=weight.path)
    assert used == set(small_state)
    # and the layout conversion of a few kinds, by hand: OIHW conv, (O,1,1,1) gain, (out, in) linear, SE 1x1 conv
    np.testing.assert_array_equal(model.get_layer("stem_conv1").kernel.numpy(),
                                  small_state["stem.conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("final_conv").gain.numpy(), small_state["final_conv.gain"].ravel())
    np.testing.assert_array_equal(model.get_layer("predictions").kernel.numpy(), small_state["head.fc.weight"].T)
    fc1 = small_state["stages.0.0.attn_last.fc1.weight"]
    np.testing.assert_array_equal(model.get_layer("stage1_block1_attention").fc1.kernel.numpy(), fc1[:, :, 0, 0].T)


@pytest.mark.parametrize(
    "corrupt,match",
    [
        (lambda s: s.pop("stages.2.0.conv2.weight"), r"missing from the checkpoint: stages\.2\.0\.conv2\.weight"),
        (lambda s: s.__setitem__("stages.9.0.extra.weight", np.zeros(3, "float32")), r"no place in the model: stages\.9\.0\.extra\.weight"),
        (lambda s: s.__setitem__("final_conv.gain", np.zeros((7, 1, 1, 1), "float32")), r"wrong shape: final_conv\.gain"),
    ],
)
def test_bad_checkpoints_are_errors_and_load_nothing(small_state, corrupt, match):
    state = dict(small_state)
    corrupt(state)
    model = from_timm("test_nfnet", pretrained=False, input_shape=(SIZE, SIZE, 3))
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(CheckpointError, match=match):
        keras_nfnets.load_timm_weights(model, state, "test_nfnet")
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))


def test_truncated_and_missing_files(small_state, tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file(small_state, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        from_timm("test_nfnet", checkpoint=path, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(CheckpointError, match="not found"):
        from_timm("test_nfnet", checkpoint=tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="Unsupported checkpoint"):
        from_timm("test_nfnet", checkpoint=__file__)


def test_classes_must_fit_the_checkpoint(small_state):
    with pytest.raises(ValueError, match="`classes` should be 1000"):
        from_timm("test_nfnet", checkpoint=small_state, classes=10)
    head_free = from_timm("test_nfnet", checkpoint=small_state, include_top=False, input_shape=(SIZE, SIZE, 3))
    assert "predictions" not in {layer.name for layer in head_free.layers}


def test_unknown_names_and_missing_hub_weights():
    with pytest.raises(ValueError, match="Unknown timm NF model"):
        from_timm("nf_regnet_b9")
    with pytest.raises(ValueError, match="no published checkpoint"):
        from_timm("nf_regnet_b0")
    with pytest.raises(ValueError, match=r"No ImageNet weights exist for NFRegNetB0.*NFRegNetB1"):
        keras_nfnets.NFRegNetB0(weights="imagenet")
    with pytest.raises(ValueError, match="No ImageNet weights exist for ECANFNetL3"):
        keras_nfnets.ECANFNetL3(weights="imagenet")


def test_docstrings_state_checkpoint_and_accuracy():
    assert "nf_regnet_b1.ra2_in1k" in keras_nfnets.NFRegNetB1.__doc__ and "79.368%" in keras_nfnets.NFRegNetB1.__doc__
    assert "dm_nfnet_f3.dm_in1k" in keras_nfnets.NFNetF3.__doc__ and "trained at 320px" in keras_nfnets.NFNetF3.__doc__
    assert "No ImageNet checkpoint" in keras_nfnets.NFNetF7.__doc__


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@needs_timm
def test_imagenet_weights_end_to_end_offline(timm_reference, tmp_path):
    """NFRegNetB1(weights="imagenet") with HF_HUB_OFFLINE=1 and a Hub cache holding a local checkpoint."""
    env, repo = offline_hub_env(tmp_path, timm_reference / "nf_regnet_b1.safetensors")
    np.save(tmp_path / "x.npy", np.load(timm_reference / "nf_regnet_b1.npz")["x"])
    script = textwrap.dedent(f"""
        import os, shutil, time, numpy as np, keras_nfnets
        x = np.load({str(tmp_path / 'x.npy')!r})
        start = time.perf_counter()
        model = keras_nfnets.NFRegNetB1(weights="imagenet", input_shape=({SIZE}, {SIZE}, 3), classifier_activation=None)
        first = time.perf_counter() - start
        assert model.input.shape[1] == {SIZE}
        cache = os.path.join(os.environ["KERAS_HOME"], "models", "keras_nfnets", "nf_regnet_b1.ra2_in1k.weights.h5")
        assert os.path.exists(cache), cache
        notop = keras_nfnets.NFRegNetB1(weights="imagenet", include_top=False, pooling="avg")
        assert os.path.exists(cache.replace(".weights.h5", "_notop.weights.h5"))
        shutil.rmtree({str(repo)!r})  # later calls must come from the converted cache
        start = time.perf_counter()
        again = keras_nfnets.NFRegNetB1(weights="imagenet", input_shape=({SIZE}, {SIZE}, 3), classifier_activation=None)
        print(f"first call {{first:.2f}} s, cached call {{time.perf_counter() - start:.2f}} s")
        notop_again = keras_nfnets.NFRegNetB1(weights="imagenet", include_top=False, pooling="avg")
        np.testing.assert_array_equal(np.asarray(notop(x)), np.asarray(notop_again(x)))
        default = keras_nfnets.NFRegNetB1(weights="imagenet")
        assert default.input.shape[1] == 288  # the checkpoint's test size
        np.save({str(tmp_path / 'y.npy')!r}, np.stack([np.asarray(model(x)), np.asarray(again(x))]))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=600)
    logits = np.load(timm_reference / "nf_regnet_b1.npz")["logits"]
    y = np.load(tmp_path / "y.npy")
    for output in y:
        assert np.abs(output - logits).max() / np.abs(logits).max() < 1e-4


@pytest.mark.slow
def test_imagenet_weights_without_network_fail_clearly(tmp_path):
    script = "import keras_nfnets; keras_nfnets.NFRegNetB1(weights='imagenet')"
    env = dict(REPO_ENV, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", KERAS_HOME=str(tmp_path / "keras"))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert ("HF_HUB_OFFLINE is set and timm/nf_regnet_b1.ra2_in1k/model.safetensors is not in the Hugging Face Hub "
            "cache") in result.stderr
    assert "set HF_HUB_OFFLINE=1" not in result.stderr  # it is set: do not suggest it
    for alternative in ("converted by tools/convert_timm.py", "`weights='FILE.weights.h5'`",
                        "from_timm('nf_regnet_b1', checkpoint='model.safetensors')", "`weights=None`"):
        assert alternative in result.stderr  # a Python user reads Python arguments
    assert "--weights" not in result.stderr
    # the command line's hint is a command that runs: --checkpoint goes with the timm name (issue 36:
    # it was suggested beside the builder name, which refuses it)
    image = os.path.join(HERE, "..", "docs", "spp_figure1.png")
    cli = subprocess.run([sys.executable, "-m", "keras_nfnets.cli", "predict", image, "--model", "NFRegNetB1"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 2 and "--model nf_regnet_b1 --checkpoint model.safetensors" in cli.stderr, cli.stderr
    assert "`--weights FILE.weights.h5`" in cli.stderr and "`--weights none`" in cli.stderr, cli.stderr


def test_offline_hub_is_not_contacted(tmp_path, monkeypatch):
    """With HF_HUB_OFFLINE the Hub client's download (and its retries) is never called."""
    import huggingface_hub
    from huggingface_hub import constants

    from keras_nfnets.weights import download_checkpoint
    from keras_nfnets.weights.presets import CHECKPOINTS

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **k: pytest.fail("contacted the Hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(OSError, match="not in the Hugging Face Hub cache"):
        download_checkpoint(CHECKPOINTS["nf_regnet_b1.ra2_in1k"])


# timm's parameter counts (timm results csv / reference §10–11) for the twins without parity runs
TIMM_PARAMS_M = {
    "nf_regnet_b1": 10.223984, "nf_resnet50": 25.56, "nf_seresnet50": 28.09, "nf_resnet101": 44.55,
    "nfnet_l0": 35.07, "eca_nfnet_l0": 24.14, "eca_nfnet_l1": 41.41, "eca_nfnet_l2": 56.72, "eca_nfnet_l3": 72.04,
    "dm_nfnet_f6": 438.36, "nfnet_f7": 499.50, "test_nfnet": 0.38, "nf_regnet_b5": 49.74,
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("dm_nfnet_f6", "nfnet_f7", "eca_nfnet_l3")
                                  else n for n in sorted(TIMM_PARAMS_M)])
def test_timm_twins_have_timms_parameter_counts(name):
    with keras.StatelessScope(initialize_variables=False):
        model = from_timm(name, pretrained=False)
        assert keras_nfnets.count_params(model) / 1e6 == pytest.approx(TIMM_PARAMS_M[name], abs=0.006)


@pytest.mark.slow
def test_convert_tool_writes_loadable_weights(small_state, tmp_path):
    from safetensors.numpy import save_file

    checkpoint, output = tmp_path / "model.safetensors", tmp_path / "out.weights.h5"
    save_file(small_state, str(checkpoint))
    tool = os.path.join(HERE, "..", "tools", "convert_timm.py")
    subprocess.run([sys.executable, tool, "test_nfnet", str(checkpoint), str(output)], check=True, timeout=600, env=REPO_ENV)
    direct = from_timm("test_nfnet", checkpoint=small_state, input_shape=(SIZE, SIZE, 3))
    loaded = from_timm("test_nfnet", pretrained=False, input_shape=(SIZE, SIZE, 3))
    loaded.load_weights(output)
    for a, b in zip(direct.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


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


# --- what the messages promise (issue 36) -----------------------------------------------------------
def test_a_missing_checkpoint_file_is_said_before_building(tmp_path):
    import time

    started = time.perf_counter()
    with pytest.raises(ValueError, match="Checkpoint file not found: .*missing.safetensors"):
        keras_nfnets.from_timm("dm_nfnet_f1", checkpoint=str(tmp_path / "missing.safetensors"))
    assert time.perf_counter() - started < 5  # it built NFNet-F1 for 40 s first
