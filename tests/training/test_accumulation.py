"""Gradient accumulation with AGC, rematerialisation and out-of-memory messages (issue 38).

JAX and PyTorch run the same accumulation and remat checks in test_backends.py (backend_worker.py);
MirroredStrategy runs them in distributed_agc.py."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import HERE, REPO_ENV

import keras
from keras_nfnets import data
from keras_nfnets.training import PerOptimizerStep, TrainingOutOfMemoryError, is_out_of_memory, recipe, train

# digits without the random parts that differ between a batch and its micro-batches (stochastic-depth and
# dropout masks are drawn per forward pass), AGC on, EMA on, warm-up + cosine over the run
EQUAL = dict(epochs=2, steps_per_epoch=2, image_size=32, clip_factor=0.01, ema=0.9, augment="none", drop_rate=0.0,
             stochastic_depth_rate=0.0, verbose=0, tensorboard=False, input_report=False)


def _weights(model):
    return [keras.ops.convert_to_numpy(w.value) for w in model.weights if "float" in str(w.dtype)]


def _relative(a, b):
    return max(float(np.abs(p - q).max() / max(np.abs(q).max(), 1e-12)) for p, q in zip(a, b))


@pytest.mark.slow
def test_accumulated_steps_equal_the_large_batch_and_clipping_micro_batches_does_not():
    import accumulation_check

    result = accumulation_check.accumulation_results()
    print(result)
    assert result["optimizer_steps"] == [3, 3] and result["ema_steps"] == [3, 3]  # optimizer steps, not micro-batches
    assert result["agc_effect"] > 1e-2  # AGC clips in this setting: without it the weights differ
    assert result["accumulated"] < 1e-5 and result["accumulated_ema"] < 1e-5
    assert result["clipped_per_micro_batch"] > 1e-2  # AGC on each micro-batch's gradient is another step


@pytest.mark.slow
def test_accumulation_under_mirrored_strategy_equals_one_devices_large_batch():
    result = subprocess.run([sys.executable, os.path.join(HERE, "distributed_agc.py"), "accumulation"],
                            capture_output=True, text=True, timeout=600, env=REPO_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    print(outcome)
    assert outcome["replicas"] == 2
    assert outcome["accumulated"] < 1e-5 and outcome["accumulated_ema"] < 1e-5
    assert outcome["optimizer_steps"] == [3, 3] and outcome["ema_steps"] == [3, 3]


@pytest.mark.slow
def test_remat_gives_the_plain_steps_update_with_stochastic_depth():
    import accumulation_check

    result = accumulation_check.remat_results()
    print(result)
    assert result["blocks_under_remat"] >= 2  # every block ran under keras.remat
    assert result["other_masks"] > 1e-2  # stochastic depth's masks matter to the step ...
    assert result["remat"] < 1e-6  # ... and the recomputation drew the same ones


@pytest.mark.slow
def test_train_with_accumulation_out_of_memory_and_a_resume_with_remat_equals_the_large_batch_run(tmp_path):
    """The accumulated run runs out of memory (a real TensorFlow allocation failure) in its second
    epoch: the message names the run and the fixes, the first epoch's backup stays and nothing is
    half-written; rerun with remat, as the message says, it resumes and ends equal to batch 24."""
    import tensorflow as tf

    class Exhaust(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 1:
                tf.zeros((2**42,))  # 16 TiB

    large = train("NFResNet14", "digits", batch_size=24, output_dir=str(tmp_path / "large"), **EQUAL)
    out = tmp_path / "accumulated"
    with pytest.raises(TrainingOutOfMemoryError) as error:
        train("NFResNet14", "digits", batch_size=8, accumulation_steps=3, output_dir=str(out), callbacks=[Exhaust()],
              **EQUAL)
    message = str(error.value)
    print(message)
    assert isinstance(error.value.__cause__, tf.errors.ResourceExhaustedError)
    for part in ("NFResNet14 at batch 8 per forward pass (3 accumulated: effective batch 24)", "32×32 px", "float32",
                 "`accumulation_steps=6` with `batch_size=4`", "`remat=True`", "a smaller `batch_size`",
                 '`precision="mixed_bfloat16"`', "The last completed epoch (1)", "rerun with `remat=True` to resume"):
        assert part in message
    # as after any interruption: the completed epoch's backup and history, nothing half-written
    assert json.load(open(out / "backup" / "training_metadata.json"))["epoch"] == 1
    assert len(json.load(open(out / "history.json"))["history"]["loss"]) == 1
    assert not os.path.exists(out / "model.keras") and not os.path.exists(out / "interrupted.weights.h5")
    assert not [name for name in os.listdir(out / "backup") if name.endswith(".partial")]

    keras.backend.clear_session()
    accumulated = train("NFResNet14", "digits", batch_size=8, accumulation_steps=3, remat=True, output_dir=str(out),
                        **EQUAL)
    assert accumulated.model.remat and not large.model.remat
    steps = [int(keras.ops.convert_to_numpy(run.model.optimizer.iterations)) for run in (large, accumulated)]
    assert steps == [4, 4]  # optimizer steps over both epochs (the first restored from the backup), not micro-batches
    difference = _relative(_weights(accumulated.model), _weights(large.model))  # EMA weights: swapped in at the end
    print("accumulated + resumed vs large batch:", difference)
    assert difference < 1e-5
    np.testing.assert_allclose(accumulated.history["loss"], large.history["loss"], rtol=1e-4)
    record = json.load(open(out / "run.json"))
    assert (record["batch_size"], record["accumulation_steps"], record["effective_batch_size"]) == (8, 3, 24)
    assert record["steps_per_epoch"] == 2 and record["remat"] is True
    assert record["learning_rate"] == pytest.approx(0.4 * 24 / 256)  # digits' 0.4 per 256, for the effective batch
    assert record["agc_advice"] is None
    assert "batch 24 (accumulated: 3 micro-batches of 8)" in record["recipe"]
    assert large.settings["learning_rate"] == record["learning_rate"]
    # the accumulation is a resume setting (the optimizer's step count depends on it)
    with pytest.raises(ValueError, match=r"`accumulation_steps`: 3 in the checkpoint, 1 now"):
        train("NFResNet14", "digits", batch_size=8, output_dir=str(out), **dict(EQUAL, epochs=3))


def test_the_recipe_scales_the_learning_rate_and_the_agc_advice_by_the_effective_batch():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = recipe("NFNetF0", 8192, epochs=1, steps_per_epoch=10, accumulation_steps=64)
    assert any("effective batch 8192" in str(w.message) for w in caught)
    assert plan.learning_rate == pytest.approx(0.1 * 8192 / 256)  # 0.1 per 256 (NFNet paper App. A)
    assert plan.micro_batch_size == 128 and plan.optimizer.gradient_accumulation_steps == 64
    assert "batch 8192 (accumulated: 64 micro-batches of 128)" in plan.summary()
    assert "effective batch 8192 a smaller λ may be needed" in plan.summary()
    # the schedule advances per optimizer step: micro-batch 64·k + j sees step k's learning rate
    schedule = plan.optimizer._learning_rate
    assert isinstance(schedule, PerOptimizerStep)
    for micro in (0, 63, 64, 64 * 5 + 17):
        assert float(schedule(micro)) == pytest.approx(float(schedule.schedule(micro // 64)))
    assert float(schedule.schedule(1)) != float(schedule.schedule(0))  # (the rate moves from step to step)
    # the micro-batch 4096 / 8 is not over the paper's batch: no advice
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert recipe("NFNetF0", 4096, epochs=1, steps_per_epoch=10, accumulation_steps=8).advice is None
    with pytest.raises(ValueError, match="must be a multiple of `accumulation_steps` 3"):
        recipe("NFNetF0", 64, epochs=1, steps_per_epoch=10, accumulation_steps=3)


def test_micro_batches_hold_the_large_batchs_examples_and_mix_as_replicas_do():
    """The micro-batches of an accumulated step are the large batch's examples with their crops;
    CutMix/MixUp partners come from the same micro-batch, exactly as from the same replica of the
    large batch spread over N replicas."""
    import tensorflow as tf

    source = data.load_source("digits", "train")
    common = dict(seed=3, flip=False, area_range=(0.5, 1.0), mean=(0, 0, 0), std=(1, 1, 1))
    micro = list(data.train_dataset(source, 32, 8, steps_per_epoch=6, **common).as_numpy_iterator())
    large = list(data.train_dataset(source, 32, 24, steps_per_epoch=2, **common).as_numpy_iterator())
    assert len(micro) == 6 and len(large) == 2
    for step in range(2):
        for part in (0, 1):  # images, labels
            np.testing.assert_array_equal(np.concatenate([m[part] for m in micro[3 * step:3 * step + 3]]),
                                          large[step][part])
    mixing = data.Augmentation(mixup_alpha=0.2, cutmix_alpha=1.0)
    micro = list(data.train_dataset(source, 32, 8, steps_per_epoch=6, augmentation=mixing, **common).as_numpy_iterator())
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=3)
    replicas = list(data.train_dataset(source, 32, 24, steps_per_epoch=2, augmentation=mixing, input_context=context,
                                       **common).as_numpy_iterator())
    assert len(replicas) == 6
    for a, b in zip(micro, replicas):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert np.mean(np.count_nonzero(np.concatenate([m[1] for m in micro]), axis=1) == 2) > 0.5  # they do mix


def test_out_of_memory_is_recognised_on_every_backend():
    import jax
    import tensorflow as tf
    import torch

    with pytest.raises(tf.errors.ResourceExhaustedError) as real:
        tf.zeros((2**42,))  # 16 TiB: TensorFlow's own allocation failure
    assert is_out_of_memory(real.value)
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 4 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(jax.errors.JaxRuntimeError("INVALID_ARGUMENT: shapes differ"))
    assert not is_out_of_memory(RuntimeError("out of range"))
    assert not is_out_of_memory(ValueError("bad"))


def test_the_command_line_takes_accumulation_and_remat_and_prints_oom_as_one_line(monkeypatch, capsys):
    from keras_nfnets import cli
    from keras_nfnets.training import run as run_module

    seen = {}

    def fake_train(config, distribution=None):
        seen.update(accumulation_steps=config.accumulation_steps, remat=config.remat)
        raise TrainingOutOfMemoryError("Out of memory training NFNetF3 at batch 64 per forward pass, 320×320 px, "
                                       "float32. Lower the memory of a step with `accumulation_steps=2` with "
                                       "`batch_size=32`; or `remat=True`.")

    import keras_nfnets.training

    # the package's lazy name first: read after the module is patched, it would record the fake as the original
    monkeypatch.setattr(keras_nfnets.training, "run_training", fake_train)
    monkeypatch.setattr(run_module, "run_training", fake_train)
    assert cli.main(["train", "--model", "NFNetF3", "--accumulation-steps", "4", "--remat"]) == 2
    assert seen["accumulation_steps"] == 4 and seen["remat"] is True
    err = capsys.readouterr().err
    assert err.startswith("nfnets train: error: Out of memory training NFNetF3") and "Traceback" not in err
    assert "`--accumulation-steps 2` with `--batch-size 32`" in err and "`--remat`" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        cli.main(["train", "--accumulation-steps", "0"])
    assert "argument --accumulation-steps: must be a positive integer, got 0" in capsys.readouterr().err


def test_train_refuses_bad_accumulation(tmp_path):
    with pytest.raises(ValueError, match="`accumulation_steps` must be a positive integer"):
        train("NFResNet14", "digits", accumulation_steps=0, output_dir=str(tmp_path / "a"))
    with pytest.raises(ValueError, match=r"The effective batch, `batch_size` 512 × `accumulation_steps` 4, exceeds"):
        train("NFResNet14", "digits", batch_size=512, accumulation_steps=4, output_dir=str(tmp_path / "b"),
              verbose=0, tensorboard=False)


def test_remat_travels_with_the_model_and_runs_the_same_forward_pass():
    from keras_nfnets import _compat
    from keras_nfnets.applications import NFNetF0
    from keras_nfnets.models.remat import segments

    model = NFNetF0(input_shape=(64, 64, 3), weights=None, drop_rate=0.0, stochastic_depth_rate=0.0)
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype("float32")
    plain = keras.ops.convert_to_numpy(model(x, training=True))
    model.remat = True
    assert keras.models.clone_model(model).remat and type(model).from_config(model.get_config()).remat
    blocks = [step for step in segments(model) if hasattr(step, "nodes")]
    assert len(blocks) == sum(model.architecture.depths)  # one segment per residual block, in order
    assert [b.name for b in blocks][:3] == ["stage1_block1", "stage2_block1", "stage2_block2"]
    # each block takes the previous block's output and hands on its own residual sum alone
    assert all([_compat.producer_layer(t).name for t in b.outputs] == [f"{b.name}_add"] for b in blocks)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=True)), plain, rtol=1e-6, atol=1e-6)
