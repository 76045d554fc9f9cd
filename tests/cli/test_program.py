"""The ``nfnets`` program (keras_nfnets.cli): start-up without TensorFlow, one-line errors that name
the flag, --help, the commands' output. Several tests reproduce what a new user hit in a fresh
clone (issue 20)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import HERE, PLAIN_ENV, REPO_ENV, write_jpeg
from keras_nfnets.cli import main


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


def test_predict_prints_the_good_images_and_reports_the_bad_one(tmp_path, capsys):
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    write_jpeg(good, seed=1)
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
