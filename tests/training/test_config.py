"""One training configuration (keras_nfnets.training.config, .plan): every option is one
TrainConfig field, which makes `nfnets train`'s flags, train()'s keywords, run.json and the
resume check; the plan is computed without TensorFlow. (Issue 45, part 2.)"""

import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from keras_nfnets.training.config import RESUME_SETTINGS, TrainConfig, fields
from keras_nfnets.training.plan import DataFacts, make_plan
from conftest import HERE, REPO_ENV

IMAGENET = DataFacts(1_281_167, 1000, (), "validation")  # ImageNet-1k's training set
DIGITS = DataFacts(1437, 10, tuple("0123456789"), "test")  # the embedded digits' training split

# `nfnets train --help`'s flags before the configuration made the parser (2026-12-07): all stay.
FLAGS_BEFORE = ["--model", "--dataset", "--data-dir", "--manual-dir", "--epochs", "--batch-size",
                "--accumulation-steps", "--remat", "--image-size", "--weights", "--strategy", "--tpu",
                "--cluster-timeout", "--precision", "--jit-compile", "--learning-rate", "--clip-factor", "--drop-rate",
                "--stochastic-depth-rate", "--ema", "--augment", "--randaugment", "--steps-per-epoch", "--output-dir",
                "--seed", "--restart", "--progress"]
# train()'s keywords before (its signature then): all stay, with the same defaults.
KEYWORDS_BEFORE = dict(
    epochs=None, batch_size=None, image_size=None, eval_image_size=None, weights=None, strategy="auto",
    precision="float32", output_dir=None, seed=0, learning_rate=None, clip_factor="paper", weight_decay=None,
    ema="paper", augment="default", steps_per_epoch=None, data_dir=None, manual_dir=None, tpu=None, resume=True,
    tensorboard=True, verbose="auto", drop_rate=None, stochastic_depth_rate=None, callbacks=None, input_report=True,
    randaugment="paper", jit_compile="auto", accumulation_steps=1, remat=False)


def test_the_plan_gives_the_papers_recipes():
    """The numbers the papers publish, for their datasets: NFNet-F0 (NFNet paper §4, App. A: batch
    4096, 360 epochs, LR 0.1 per 256, 5 warm-up epochs, weight decay 2e-5, AGC 0.01, EMA 0.99999,
    RandAugment 4 layers magnitude 5, 192 px training / 256 px test) and NF-ResNet-50 (NF paper
    §5.1: batch 1024, 90 epochs, LR 0.4, no AGC or EMA, 224 px training)."""
    f0 = make_plan(TrainConfig("NFNetF0", "imagenet2012"), IMAGENET)
    c = f0.config
    assert (c.batch_size, c.epochs, c.steps_per_epoch) == (4096, 360, 312)  # 1,281,167 // 4096
    assert c.learning_rate == pytest.approx(1.6) and f0.recipe.warmup_steps == 5 * 312
    assert (c.weight_decay, c.clip_factor, c.ema, c.randaugment) == (2e-5, 0.01, 0.99999, (4, 5))
    assert (c.image_size, c.eval_image_size, f0.eval_transform.crop) == (192, 256, "plus32")
    r50 = make_plan(TrainConfig("NFResNet50", "imagenet2012"), IMAGENET)
    c = r50.config
    assert (c.batch_size, c.epochs, c.steps_per_epoch, c.image_size) == (1024, 90, 1251, 224)
    assert c.learning_rate == pytest.approx(0.4) and (c.clip_factor, c.ema, c.randaugment) == (None, None, None)
    assert (r50.flip, r50.area_range) == (True, (0.08, 1.0))  # Inception crops with flips (§5.1)
    # the digits defaults docs/training.md states: 15 epochs, batch 48, 32 px, LR 0.4 per 256, no flips
    digits = make_plan(TrainConfig(), DIGITS)
    c = digits.config
    assert (c.epochs, c.batch_size, c.image_size, c.steps_per_epoch, digits.flip) == (15, 48, 32, 29, False)
    assert c.learning_rate == pytest.approx(0.075) and c.output_dir == os.path.join("runs", "NFResNet14_digits")
    # accumulation: the effective batch keeps the recipe (LR per the effective batch, steps per optimizer step)
    accumulated = make_plan(TrainConfig("NFNetF0", "imagenet2012", batch_size=1024, accumulation_steps=4), IMAGENET)
    assert accumulated.effective_batch_size == 4096 and accumulated.config.steps_per_epoch == 312
    assert accumulated.config.learning_rate == pytest.approx(1.6)
    # fine-tuning: a tenth of the recipe's LR; a batch the data cannot fill is refused with a size that fits
    assert make_plan(TrainConfig("NFNetF0", "imagenet2012", weights="imagenet"), IMAGENET).config.learning_rate \
        == pytest.approx(0.16)
    with pytest.raises(ValueError, match="exceeds the 1437 training images.*batch_size=512"):
        make_plan(TrainConfig(batch_size=2000), DIGITS)


def test_the_plan_needs_no_tensorflow():
    """Planning a run imports neither TensorFlow nor Keras (a fresh interpreter)."""
    script = textwrap.dedent("""
        import sys
        from keras_nfnets.training.config import TrainConfig
        from keras_nfnets.training.plan import DataFacts, make_plan
        plan = make_plan(TrainConfig("NFNetF1", "imagenet2012"), DataFacts(1281167, 1000))
        loaded = sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules)
        print(plan.config.image_size, plan.config.eval_image_size, loaded)
    """)
    result = subprocess.run([sys.executable, "-c", script], env=REPO_ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["224", "320", "[]"]  # NFNet-F1: 224 / 320 (NFNet paper Table 7)


def test_the_command_line_is_made_from_the_config():
    from keras_nfnets.cli import build_parser

    parser = build_parser()
    train = parser.subcommands["train"]
    help_text = train.format_help()
    assert all(flag in help_text for flag in FLAGS_BEFORE), [f for f in FLAGS_BEFORE if f not in help_text]
    # the defaults are the config's; each flag's text reaches its field in the library's form
    assert TrainConfig.from_arguments(parser.parse_args(["train"])) == TrainConfig()
    args = parser.parse_args(["train", "--model", "NFNetF0", "--restart", "--progress", "2", "--jit-compile", "false",
                              "--randaugment", "2,5", "--clip-factor", "off", "--ema", "0.999", "--weight-decay", "0",
                              "--cluster-timeout", "30", "--no-tensorboard", "--eval-image-size", "288"])
    config = TrainConfig.from_arguments(args)
    assert (config.model_name, config.resume, config.verbose, config.jit_compile) == ("NFNetF0", False, 2, False)
    assert (config.randaugment, config.clip_factor, config.ema, config.weight_decay) == ((2, 5.0), None, 0.999, 0.0)
    assert (config.cluster_timeout, config.tensorboard, config.eval_image_size) == (30.0, False, 288)
    assert args.verbose is False  # --verbose stays the program's switch for TensorFlow's logs
    for bad in (["--epochs", "0"], ["--progress", "3"], ["--jit-compile", "yes"], ["--randaugment", "4"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", *bad])


def test_train_keeps_its_keywords_and_refuses_unknown_ones():
    from keras_nfnets import train

    parameters = inspect.signature(train).parameters
    assert {name: parameters[name].default for name in KEYWORDS_BEFORE} == KEYWORDS_BEFORE
    assert list(parameters)[:2] == ["model_name", "dataset"]
    assert set(parameters) == {field.name for field in fields()} | {"config"}
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'; did you mean 'epochs'"):
        train(epoch=3)
    with pytest.raises(TypeError, match="`config` must be a keras_nfnets.training.TrainConfig"):
        train(config={"epochs": 3})
    for bad, message in ((dict(epochs=0), "`epochs` must be a positive integer"),
                         (dict(weight_decay=-1), "`weight_decay` must be a number >= 0"),
                         (dict(ema=1.5), "`ema` is a decay in"), (dict(verbose=True), "`verbose` must be"),
                         (dict(strategy="horovod"), "Unknown `strategy` 'horovod'"),
                         (dict(model_name="ResNet50"), "Unknown model 'ResNet50'")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(**bad)
    assert TrainConfig(epochs=3).replace(epochs=4).epochs == 4


def test_run_json_is_the_resolved_config_and_old_ones_resume(tmp_path):
    """run.json holds the resolved configuration (``TrainConfig.from_json`` repeats the run) and
    the derived facts; a run.json of the earlier format (no configuration fields beyond the
    resumed settings) is still checked, and a changed setting is named as train() names it."""
    from keras_nfnets.training.run_dir import RunDir

    plan = make_plan(TrainConfig("NFRegNetB0", "imagenet2012", epochs=2, randaugment=(2, 5), augment="paper"),
                     IMAGENET)
    record = json.loads(json.dumps(plan.to_json()))
    assert TrainConfig.from_json(record) == plan.config
    assert make_plan(TrainConfig.from_json(record), IMAGENET).to_json() == record  # the same run again
    assert record["model"] == "NFRegNetB0" and record["randaugment"] == [2, 5] and record["classes"] == 1000
    assert set(RESUME_SETTINGS) >= {"model", "dataset", "epochs", "batch_size", "precision", "seed", "recipe"}
    old = {"model": "NFResNet14", "dataset": "digits", "weights": None, "epochs": 2, "batch_size": 48,
           "image_size": 32, "steps_per_epoch": 25, "precision": "float32", "seed": 0, "augment": "default",
           "recipe": "r", "drop_rate": None, "stochastic_depth_rate": None}  # before accumulation_steps existed
    (tmp_path / "backup").mkdir()
    (tmp_path / "run.json").write_text(json.dumps(old))
    RunDir(str(tmp_path)).check_resumable(dict(old, accumulation_steps=1, clip_factor=None))
    with pytest.raises(ValueError, match=r"`accumulation_steps`: 1 in the checkpoint, 2 now"):
        RunDir(str(tmp_path)).check_resumable(dict(old, accumulation_steps=2))
    with pytest.raises(ValueError, match=r"the recipe \(`learning_rate`, `clip_factor`, `weight_decay`, `ema`, "
                                         r"`randaugment`\): 'r' in the checkpoint, 's' now"):
        RunDir(str(tmp_path)).check_resumable(dict(old, accumulation_steps=1, recipe="s"))


def test_a_new_option_is_one_field_and_its_use(tmp_path):
    """A copy of the package with one field added to TrainConfig (``warmup_epochs``) and its use in
    the plan: `nfnets train` has the flag, train() the keyword, run.json the value, the recipe its
    warm-up, and a resume with another value is refused through the recipe."""
    package = tmp_path / "keras_nfnets"
    shutil.copytree(os.path.join(os.path.dirname(HERE), "keras_nfnets"), package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    config_py, plan_py = package / "training" / "config.py", package / "training" / "plan.py"
    field = '''    steps_per_epoch: Optional[int] = option('''
    config_py.write_text(config_py.read_text().replace(field, '''    warmup_epochs: Optional[float] = option(
        None, "warm-up length in epochs (default: the paper's share of the run)", parse=non_negative_float,
        resume=RECIPE)
''' + field, 1))
    use = "    overrides = {}\n"
    assert use in plan_py.read_text()
    plan_py.write_text(plan_py.read_text().replace(use, use + '''    if config.warmup_epochs is not None:
        overrides["warmup_epochs"] = config.warmup_epochs
''', 1))
    script = textwrap.dedent('''
        import inspect, json
        from keras_nfnets import train
        from keras_nfnets.cli import build_parser
        from keras_nfnets.training.config import RESUME_SETTINGS, TrainConfig
        from keras_nfnets.training.plan import DataFacts, make_plan
        args = build_parser().parse_args(["train", "--warmup-epochs", "1"])
        config = TrainConfig.from_arguments(args)
        plan = make_plan(config, DataFacts(1437, 10))
        record = plan.to_json()
        print(json.dumps([config.warmup_epochs, "warmup_epochs" in inspect.signature(train).parameters,
                          record["warmup_epochs"], plan.recipe.warmup_steps, "`warmup_epochs`" in RESUME_SETTINGS["recipe"],
                          "--warmup-epochs" in build_parser().subcommands["train"].format_help()]))
    ''')
    result = subprocess.run([sys.executable, "-c", script], env=dict(REPO_ENV, PYTHONPATH=str(tmp_path)), cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == [1.0, True, 1.0, 29, True, True]  # 1 epoch of 29 steps (digits, batch 48)


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
