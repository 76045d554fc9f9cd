"""Run by test_cpu_kinds.py in a fresh process whose environment chooses the kind of CPU
TensorFlow sees (``TF_ENABLE_ONEDNN_OPTS``, ``ONEDNN_MAX_CPU_ISA``, ``XLA_FLAGS``):
``python cpu_kind_worker.py TASK.json``.

The task: ``out`` (a folder), ``strategy`` (``"none"`` or ``"mirrored"``: two logical CPUs),
``models`` (builder or timm names, or ``toy_FAMILY``: tests/harness.py's toy variants), ``precision`` (a Keras dtype policy, default float32),
``force_native`` (answer "native" whatever the probe says:
what a wrong probe would do). For each model: built at 32 px from seed 0 (without dropout and
stochastic depth, whose masks differ between one device and two replicas) with its constant
weights randomised (every layer acts, AGC clips), one ``model.fit`` step of SGD + momentum + AGC
on a seeded batch of 4. Writes ``out/NAME.npz`` (the weights before and after) and
``out/result.json`` (the probe, oneDNN's state, each model's loss or error).
"""

import dataclasses
import json
import os
import sys

import numpy as np

task = json.load(open(sys.argv[1]))

import tensorflow as tf  # noqa: E402

if task["strategy"] == "mirrored":  # two replicas on the CPU, made before TensorFlow's first op
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
else:
    strategy = tf.distribute.get_strategy()

import keras  # noqa: E402

import keras_nfnets  # noqa: E402
from keras_nfnets.applications import BUILDERS  # noqa: E402
from keras_nfnets.backend import tf_backend  # noqa: E402
from keras_nfnets.models import build_nf_model  # noqa: E402
from keras_nfnets.training import SGDAGC  # noqa: E402

if task.get("force_native"):
    tf_backend.native_grouped_conv_supported = lambda device_type, dtype="float32": True

keras.config.set_dtype_policy(task.get("precision", "float32"))
SIZE, BATCH, CLASSES = 32, 4, 5
rng = np.random.default_rng(1)
x = rng.standard_normal((BATCH, SIZE, SIZE, 3)).astype("float32")
y = rng.integers(0, CLASSES, BATCH)

results = {"models": {}}
for name in task["models"]:
    keras.utils.set_random_seed(0)
    with strategy.scope():
        if name.startswith("toy_"):  # a family's blocks at toy widths (tests/harness.py, this script's folder)
            from harness import toy_config

            config = toy_config(name.removeprefix("toy_"))
        else:
            config = BUILDERS[name].config if name in BUILDERS else keras_nfnets.timm_config(name)
        config = dataclasses.replace(config, drop_rate=0.0, stochastic_depth_rate=0.0)  # replicas draw other masks
        model = build_nf_model(config, input_shape=(SIZE, SIZE, 3), classes=CLASSES, classifier_activation=None)
    # constant weights (gains, biases, SkipInit, the zero classifier) randomised as
    # keras_nfnets.export.verification.randomise_weights does, through get/set_weights (mirrored variables)
    noise = np.random.default_rng(2)
    model.set_weights([w + noise.normal(0, 0.2, w.shape).astype(w.dtype) if w.ndim <= 1 or not w.any() else w
                       for w in model.get_weights()])
    with strategy.scope():
        model.compile(SGDAGC(0.1, momentum=0.9, clip_factor=0.01),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [np.array(w) for w in model.get_weights()]
    try:
        loss = model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    except Exception as error:  # reported, not raised: the test says which model failed and how
        results["models"][name] = {"error": f"{type(error).__name__}: {error}"}
        continue
    np.savez(os.path.join(task["out"], f"{name}.npz"), *before, *model.get_weights())
    results["models"][name] = {"loss": float(loss), "weights": len(before)}
    keras.backend.clear_session()

results["probe"] = dict(tf_backend.grouped_conv_probe())
results["probe_compute_dtype"] = dict(tf_backend.grouped_conv_probe(keras.config.dtype_policy().compute_dtype))
results["onednn"] = tf_backend.onednn_enabled()
results["replicas"] = strategy.num_replicas_in_sync
json.dump(results, open(os.path.join(task["out"], "result.json"), "w"))
