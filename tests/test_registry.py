"""The registry (keras_nfnets.registry): one row per public name, read by every part of the package
(issue 45). Each timm row is checked against timm's own pretrained_cfg, so a wrong row fails: before
the registry, image_sizes("nfnet_f3") answered NFNet-F0's (192, 256) where timm says 320 / 416, and
9 of timm's 36 NF names disagreed with timm."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import HERE, REPO_ENV, needs_timm

import keras_nfnets
from keras_nfnets import registry
from keras_nfnets.models.timm_configs import TIMM_CONFIGS


_TIMM_CFGS = """
import json, sys
from timm.models import get_pretrained_cfg
print(json.dumps({tag: get_pretrained_cfg(tag).to_dict() for tag in sys.argv[1:]}, default=str))
"""


def _cfg_tag(row):
    """The timm name whose pretrained_cfg a row states: its checkpoint's tag where it has weights,
    else timm's architecture name (its default cfg)."""
    if row.builder:
        return row.checkpoint or row.timm_name
    return row.checkpoint or row.name


@pytest.fixture(scope="module")
def timm_cfgs():
    """timm's own pretrained_cfg of every timm NF name, read by timm in a subprocess (torch and
    TensorFlow in one process crash on import here)."""
    tags = sorted({_cfg_tag(registry.resolve(name)) for name in TIMM_CONFIGS})
    result = subprocess.run([sys.executable, "-c", _TIMM_CFGS, *tags], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@needs_timm
@pytest.mark.parametrize("name", sorted(TIMM_CONFIGS))
def test_every_timm_name_has_timms_sizes_crop_and_interpolation(name, timm_cfgs):
    row = registry.resolve(name)
    cfg = timm_cfgs[_cfg_tag(row)]
    train, test = cfg["input_size"][1], (cfg.get("test_input_size") or cfg["input_size"])[1]
    assert (row.train_size, row.test_size) == (train, test)
    assert registry.image_sizes(name) == (train, test)
    assert keras_nfnets.eval_transform(name).size == test
    assert row.interpolation == cfg["interpolation"]
    if row.eval_crop == "center":  # timm's rule: the crop fraction at the test size
        expected = cfg["test_crop_pct"] if cfg.get("test_input_size") and cfg.get("test_crop_pct") else cfg["crop_pct"]
        assert row.crop_pct == pytest.approx(expected)
        assert keras_nfnets.eval_transform(name).crop_pct == pytest.approx(expected)
    else:  # DeepMind's NFNet weights keep DeepMind's own evaluation (resize to size + 32, centre crop)
        assert name.startswith("dm_nfnet_") and row.eval_crop == "plus32"


def test_resolve_takes_every_spelling_and_names_the_close_ones():
    assert registry.resolve("NFNetF0").name == "NFNetF0"
    assert registry.resolve("dm_nfnet_f0.dm_in1k").name == "dm_nfnet_f0"
    assert registry.resolve("nfnet_l0") is registry.resolve("NFNetL0")  # one row, two names
    assert registry.resolve("nfnet_l0.ra2_in1k") is registry.resolve("NFNetL0")
    assert registry.resolve("nf_resnet14").name == "NFResNet14"  # a builder's config name
    assert registry.resolve("nfnet_f1").config is TIMM_CONFIGS["nfnet_f1"]  # timm's name wins over the config name
    assert keras_nfnets.get_config("nfnet_f1") is TIMM_CONFIGS["nfnet_f1"]
    with pytest.raises(ValueError, match=r"Unknown NF model 'NFNetF9'\. Did you mean 'NFNetF7'"):
        registry.resolve("NFNetF9")
    with pytest.raises(ValueError, match="Did you mean 'nfnet_f1'"):
        registry.resolve("nfnet_f1x")


def test_each_name_is_one_row_and_every_timm_architecture_has_one():
    names = [name for row in registry.ROWS.values() for name in row.names]
    assert len(names) == len(set(names))
    assert set(TIMM_CONFIGS) <= set(names)
    assert len(registry.builders()) == 29 and len(registry.ROWS) == 29 + 36 - 5  # 5 builders are timm's too
    duplicate = dict(registry.ROWS, extra=registry.resolve("NFNetL0").replace(name="NFNetL0copy"))
    with pytest.raises(ValueError, match="'nfnet_l0' names two rows"):
        registry._check(duplicate)


def test_a_made_up_variant_is_one_row(tmp_path):
    """A copy of the package with one row appended to registry.py: the new builder builds, is
    listed by `nfnets models`, resolves, and has its sizes, evaluation and recipe everywhere."""
    package = tmp_path / "keras_nfnets"
    shutil.copytree(os.path.join(os.path.dirname(HERE), "keras_nfnets"), package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / "registry.py", "a") as f:
        f.write(textwrap.dedent('''
            ROWS["NFNetT0"] = ModelRow("NFNetT0", nfnet_config("F0").replace(name="nfnet_t0", depths=(1, 1, 1, 1),
                                       widths=(32, 64, 96, 128), group_width=16), "nfnet", 96, 128, "plus32",
                                       builder=True, randaugment_magnitude=7)
            _check(ROWS)
        '''))
    script = textwrap.dedent('''
        import io, keras_nfnets
        from keras_nfnets.cli import models_table
        model = keras_nfnets.NFNetT0(weights=None)
        assert model.input.shape[1] == 128, model.input.shape
        assert keras_nfnets.get_config("NFNetT0").name == "nfnet_t0" and "NFNetT0" in keras_nfnets.BUILDERS
        assert keras_nfnets.registry.image_sizes("nfnet_t0") == (96, 128)
        transform = keras_nfnets.eval_transform("NFNetT0")
        assert (transform.size, transform.crop) == (128, "plus32"), transform
        from keras_nfnets.training.recipes import paper_hyperparameters
        assert paper_hyperparameters("NFNetT0").randaugment == (4, 7)
        table = io.StringIO()
        models_table(["NFNetT0"], out=table)
        line = table.getvalue().splitlines()[2].split()
        assert line[0] == "NFNetT0" and line[3:5] == ["96", "128"], line
        assert abs(float(line[1]) * 1e6 - model.count_params()) <= 500, (line, model.count_params())
        print("ok")
    ''')
    env = dict(REPO_ENV, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
