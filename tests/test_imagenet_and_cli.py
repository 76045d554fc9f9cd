import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ENV

import keras_nfnets
from keras_nfnets import decode_predictions, imagenet_classes, preprocess_input
from keras_nfnets.cli import main


def test_preprocess_input_uses_imagenet_mean_std_on_0_255():
    x = np.array([[[[0.485 * 255, 0.456 * 255, 0.406 * 255], [255.0, 255.0, 255.0]]]], "float32")
    y = preprocess_input(x)
    np.testing.assert_allclose(y[0, 0, 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(y[0, 0, 1], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225], rtol=1e-5)
    import tensorflow as tf

    np.testing.assert_allclose(preprocess_input(tf.constant(x)).numpy(), y, rtol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        preprocess_input(np.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="channels_last"):
        preprocess_input(x, data_format="channels_first")


def test_class_names_ship_with_the_package():
    classes = imagenet_classes()
    assert len(classes) == 1000 and len({wnid for wnid, _ in classes}) == 1000
    assert classes[0] == ("n01440764", "tench") and classes[1] == ("n01443537", "goldfish")
    assert classes[999] == ("n15075141", "toilet_tissue")


def test_decode_predictions():
    preds = np.zeros((2, 1000), "float32")
    preds[0, 1], preds[0, 0], preds[1, 999] = 0.7, 0.2, 0.9
    decoded = decode_predictions(preds, top=2)
    assert decoded[0] == [("n01443537", "goldfish", pytest.approx(0.7)), ("n01440764", "tench", pytest.approx(0.2))]
    assert decoded[1][0][1] == "toilet_tissue"
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        decode_predictions(np.zeros((2, 10)))


def test_models_command_prints_counts(capsys):
    """The table's figures against the published ones: NF paper Table 3 (B0: 8.6M, 0.44B, 192/224 px),
    DeepMind's README (F0: 71.5M, 12.38B, 192/256 px) and timm's top-1 of dm_nfnet_f0 (83.468%)."""
    assert main(["models", "NFRegNetB0", "NFNetF0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:9] == ["model", "params", "(M)", "FLOPs", "(B)", "train", "px", "test", "px"]
    b0, f0 = out[2].split(), out[3].split()
    assert b0[0] == "NFRegNetB0" and b0[3:] == ["192", "224", "-"]
    assert float(b0[1]) == pytest.approx(8.6, abs=0.05) and float(b0[2]) == pytest.approx(0.44, abs=0.005)
    assert f0[0] == "NFNetF0" and f0[3:6] == ["192", "256", "dm_nfnet_f0.dm_in1k"]
    assert float(f0[1]) == pytest.approx(71.489, abs=5e-4) and float(f0[2]) == pytest.approx(12.38, abs=0.005)
    assert float(f0[6].strip("(%)")) == pytest.approx(83.468, abs=0.005)


def test_models_command_accepts_the_timm_names_predict_accepts(capsys):
    """timm names and tags, with timm's published parameter counts (reference §10) and checkpoints."""
    assert main(["models", "nfnet_l0", "nf_regnet_b1.ra2_in1k"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows[0][0] == "nfnet_l0" and float(rows[0][1]) == pytest.approx(35.07, abs=0.005)
    assert rows[0][3:6] == ["224", "288", "nfnet_l0.ra2_in1k"]
    assert rows[1][0] == "nf_regnet_b1.ra2_in1k" and float(rows[1][1]) == pytest.approx(10.22, abs=0.005)
    assert rows[1][3:5] == ["256", "288"]


def test_models_command_rejects_unknown_names(capsys):
    assert main(["models", "ResNet50"]) == 2
    err = capsys.readouterr().err  # the registry's error: the close names first
    assert err.startswith("nfnets models: error: Unknown NF model 'ResNet50'. Did you mean 'NFResNet50'"), err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_console_script_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "keras_nfnets.cli", "models", "NFResNet26"], capture_output=True, text=True, timeout=300,
        env=REPO_ENV,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2].split()[0] == "NFResNet26"


@pytest.mark.slow
def test_cli_hides_tensorflow_start_up_logs_unless_asked(tmp_path):
    """No oneDNN / CUDA / CPU-feature lines on a plain run; --verbose lets TensorFlow's own stderr
    through (a timm name is built, so TensorFlow loads)."""
    env = {k: v for k, v in REPO_ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # also where the user set it
    quiet = subprocess.run([sys.executable, "-m", "keras_nfnets.cli", "models", "nf_resnet26"], capture_output=True,
                           text=True, timeout=300, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr
    verbose = subprocess.run([sys.executable, "-m", "keras_nfnets.cli", "models", "nf_resnet26", "--verbose"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout
    plain = subprocess.run([sys.executable, "-c", "import tensorflow as tf; tf.config.list_logical_devices()"],
                           capture_output=True, text=True, timeout=300, env=env)
    for marker in ("oneDNN", "cpu_feature_guard"):  # what this TensorFlow build logs at start-up
        assert (marker in verbose.stderr) == (marker in plain.stderr), marker


def test_every_cli_option_has_help():
    from keras_nfnets.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(commands.choices) == {"models", "predict", "export", "preset", "spp", "train", "evaluate", "launch"}
    for name, sub in commands.choices.items():
        assert sub.get_default("func") is not None, name
        for action in sub._actions:
            assert action.help, f"nfnets {name} {'/'.join(action.option_strings) or action.dest} has no help"


def test_public_api_is_reachable():
    for name in ("NFRegNetB1", "NFNetF7", "NFResNet288", "ScaledWSConv2D", "estimate_gamma", "preprocess_input",
                 "decode_predictions", "build_nf_model", "count_flops", "NFConfig"):
        assert hasattr(keras_nfnets, name), name


# --- evaluation preprocessing per checkpoint ---------------------------------------------------
from keras_nfnets import eval_transform, preprocess_image  # noqa: E402


@pytest.mark.parametrize("model_name", ["NFRegNetB1", "NFNetF0", "ECANFNetL0", "test_nfnet", "NFRegNetB0"])
def test_constant_image_maps_to_its_normalised_colour(model_name):
    transform = eval_transform(model_name)
    colour = np.array([124.0, 116.0, 104.0], "float32")
    out = preprocess_image(np.broadcast_to(colour, (300, 420, 3)), model_name)
    assert out.shape == (transform.size, transform.size, 3)
    expected = (colour / 255 - np.array(transform.mean)) / np.array(transform.std)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=1e-4)


def test_deepmind_rule_squashes_to_size_plus_32_and_crops_the_centre():
    assert eval_transform("NFNetF0").crop == "plus32" and eval_transform("NFNetF0").size == 256
    image = np.random.default_rng(0).uniform(0, 255, (288, 288, 3)).astype("float32")  # already S + 32
    out = preprocess_image(image, "NFNetF0")
    mean, std = np.array(eval_transform("NFNetF0").mean), np.array(eval_transform("NFNetF0").std)
    np.testing.assert_allclose(out, (image[16:272, 16:272] / 255 - mean) / std, atol=1e-4)


def test_center_crop_keeps_the_aspect_ratio():
    image = np.zeros((200, 400, 3), "float32")
    image[:, 200:] = 255.0  # left half black, right half white
    out = preprocess_image(image, "NFRegNetB1")  # 288 px, crop_pct 0.9: short side to 320, centre 288
    white = (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    black = -np.array([0.485, 0.456, 0.406]) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[:, :136], np.broadcast_to(black, out[:, :136].shape), atol=1e-3)
    np.testing.assert_allclose(out[:, 152:], np.broadcast_to(white, out[:, 152:].shape), atol=1e-3)


def test_preprocess_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        preprocess_image(tmp_path / "none.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Cannot decode"):
        preprocess_image(bad)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        preprocess_image(np.zeros((10, 10)))


@pytest.mark.slow
def test_predict_command_prints_top5(tmp_path, timm_reference, capsys):
    import tensorflow as tf

    image = tmp_path / "image.png"
    tf.io.write_file(str(image), tf.io.encode_png(np.random.default_rng(0).integers(0, 255, (90, 120, 3), "uint8")))
    assert main(["predict", str(image), "--model", "test_nfnet", "--checkpoint",
                 str(timm_reference / "test_nfnet.safetensors")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{image}:" and len(lines) == 6
    assert lines[1].strip().startswith("1. ") and lines[1].strip().endswith(")") and "%" in lines[1]


@pytest.mark.slow
def test_readme_model_table_is_the_generated_one():
    import io
    import pathlib

    from keras_nfnets.cli import models_table

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("<!-- models-table:start -->\n")[1].split("<!-- models-table:end -->")[0]
    generated = io.StringIO()
    models_table(markdown=True, out=generated)
    assert table.strip() == generated.getvalue().strip(), "regenerate it with `nfnets models --markdown`"


def test_readme_links_resolve():
    import pathlib
    import re

    def anchors(path):  # GitHub's heading slugs
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.*)$", path.read_text(), re.M)}

    root = pathlib.Path(__file__).parents[1]
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", page.read_text()):
            path = page.parent / target if target else page
            assert path.exists(), f"{page.name} links to missing {target}"
            if anchor and path.suffix == ".md":
                assert anchor in anchors(path), f"{page.name} links to missing section {target}#{anchor}"


def test_library_messages_name_python_arguments_and_the_command_shows_its_flags():
    """The library writes `name` / `name=value`; each command translates them to its own flags and
    leaves alone what it has no flag for."""
    from keras_nfnets.cli import as_flags, build_parser

    commands = build_parser().subcommands
    train, predict = commands["train"], commands["predict"]
    assert as_flags("start it over with `resume=False`, or use another `output_dir`.", train) == \
        "start it over with `--restart`, or use another `--output-dir`."
    assert as_flags("try `learning_rate=0.05`; `randaugment=(2, 5)`; `augment='none'`", train) == \
        "try `--learning-rate 0.05`; `--randaugment 2,5`; `--augment none`"
    assert as_flags("`precision='mixed_bfloat16'` or `model_name`", train) == "`--precision mixed_bfloat16` or `--model`"
    assert as_flags("`weights=None` or `checkpoint='model.safetensors'`", predict) == \
        "`--weights none` or `--checkpoint model.safetensors`"
    assert as_flags("`resume=False` and `clip_factor`", predict) == "`resume=False` and `clip_factor`"  # no such flags
