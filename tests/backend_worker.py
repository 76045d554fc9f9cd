"""Run by test_backends.py in a fresh process with ``KERAS_BACKEND`` set (the backend is fixed
when Keras is imported). ``python backend_worker.py TASK.json``: the task names the checks and
their files; the results go to the task's ``out`` as JSON (arrays as ``.npy`` files beside it).

Checks: ``forward`` (builders loading a ``.weights.h5`` saved under TensorFlow, logits),
``keras_file`` (a ``.keras`` file saved under TensorFlow), ``agc_step`` (one SGD + AGC + weight
decay step from given weights), ``train`` (a short ``train`` run on digits with AGC and EMA).
"""

import json
import os
import sys

import numpy as np

task = json.load(open(sys.argv[1]))
os.environ["KERAS_BACKEND"] = task["backend"]

import keras  # noqa: E402

import keras_nfnets  # noqa: E402
from keras_nfnets.applications import BUILDERS  # noqa: E402

results = {"backend": keras.backend.backend()}
x = np.load(task["x"])


def logits(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


for name, weights in task.get("forward", {}).items():
    model = BUILDERS[name](input_shape=x.shape[1:], classes=10)
    model.load_weights(weights)
    np.save(os.path.join(task["dir"], f"{name}_{task['backend']}.npy"), logits(model, x))
results["tensorflow_imported_by_models"] = "tensorflow" in sys.modules

if "keras_file" in task:
    model = keras.saving.load_model(task["keras_file"])
    np.save(os.path.join(task["dir"], f"keras_file_{task['backend']}.npy"), logits(model, x))

if "agc_step" in task:
    from keras_nfnets.training import SGDAGC

    import dataclasses

    from keras_nfnets.models import build_nf_model

    step = task["agc_step"]  # without dropout and stochastic depth: their random masks differ between backends
    config = dataclasses.replace(BUILDERS[step["model"]].config, drop_rate=0.0, stochastic_depth_rate=0.0)
    model = build_nf_model(config, input_shape=x.shape[1:], classes=10, classifier_activation=None)
    model.load_weights(step["weights"])
    model.compile(SGDAGC(0.4, momentum=0.9, clip_factor=0.01, weight_decay=1e-3),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    labels = np.eye(10, dtype="float32")[np.arange(len(x)) % 10]
    model.train_on_batch(x, labels)
    np.savez(os.path.join(task["dir"], f"agc_step_{task['backend']}.npz"),
             **{w.path: keras.ops.convert_to_numpy(w.value) for w in model.weights})

if "train" in task:
    from keras_nfnets.training import train

    run = train("NFResNet14", "digits", output_dir=task["train"], epochs=3, steps_per_epoch=8, batch_size=32,
                learning_rate=0.1, clip_factor=0.01, ema=0.9, verbose=0, tensorboard=False)
    results["train"] = {"history": run.history, "test": run.metrics}

if "data_parallel" in task:  # train(strategy="auto"): keras.distribution.DataParallel over every local device
    from keras_nfnets.training import train

    run = train("NFResNet14", "digits", output_dir=task["data_parallel"], epochs=1, steps_per_epoch=4, batch_size=16,
                image_size=32, clip_factor=0.01, verbose=0, tensorboard=False)
    results["data_parallel"] = {"replicas": run.settings["replicas"], "history": run.history, "test": run.metrics,
                                "distribution": type(keras.distribution.distribution()).__name__}

json.dump(results, open(task["out"], "w"))
