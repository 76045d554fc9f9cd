"""Run by test_backends.py in a fresh process with ``KERAS_BACKEND`` set (the backend is fixed
when Keras is imported). ``python backend_worker.py TASK.json``: the task names the checks and
their files; the results go to the task's ``out`` as JSON (arrays as ``.npy`` files beside it).

Checks: ``forward`` (builders loading a ``.weights.h5`` saved under TensorFlow, logits),
``keras_file`` (a ``.keras`` file saved under TensorFlow), ``agc_step`` (one SGD + AGC + weight
decay step from given weights), ``train`` (a short ``train`` run on digits with AGC and EMA, then ``model.fit`` with NFNet's
recipe and CutMix/MixUp/RandAugment batches),
``timm`` (``from_timm`` and ``weights="imagenet"`` from local timm checkpoints), ``spp`` (signal
propagation statistics), ``conv`` (``conv2d`` and its gradients on every path), ``fold``
(``fold_weight_standardization``, the folded model saved as ``.keras``), ``preset`` (a keras-hub
preset through keras-hub's ``from_preset``: logits and the converter's images), ``data_parallel`` (JAX:
``train`` under each named strategy, last), ``accumulation`` (gradient accumulation
against the large batch, remat against the plain step: accumulation_check.py),
``initialization`` (JAX: the builder's size-class
random draws against Keras' own, initialiser by initialiser and for a whole model). One process
runs every check a task names.
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

results = {"backend": keras.backend.backend(), "seconds": {}}
_clock = [__import__("time").perf_counter(), "start"]


def _mark(name):  # seconds each check took, in the result (the suite's time is mostly here)
    now = __import__("time").perf_counter()
    results["seconds"][_clock[1]] = round(now - _clock[0], 1)
    _clock[:] = [now, name]
x = np.load(task["x"])
from harness import build_named  # noqa: E402  (this script's folder, tests/, is on sys.path)


def logits(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


# first: the checks that TensorFlow is not imported come before the tasks that use tf.data
_mark("timm")
if "timm" in task:  # NumPy/safetensors conversion; weights="imagenet" reads an offline Hub cache (HF_HOME)
    for name, (checkpoint, inputs) in task["timm"].items():  # timm name -> (checkpoint, inputs)
        images = np.load(inputs)
        model = keras_nfnets.from_timm(name, checkpoint=checkpoint, input_shape=images.shape[1:],
                                       classifier_activation=None)
        np.save(os.path.join(task["dir"], f"timm_{name}_{task['backend']}.npy"), logits(model, images))
        if name == "nf_regnet_b1":  # the Hub cache holds this checkpoint as nf_regnet_b1.ra2_in1k
            model = keras_nfnets.NFRegNetB1(weights="imagenet", input_shape=images.shape[1:],
                                            classifier_activation=None)
            np.save(os.path.join(task["dir"], f"imagenet_{name}_{task['backend']}.npy"), logits(model, images))
    results["tensorflow_imported_by_weights"] = "tensorflow" in sys.modules

_mark("forward")
loaded = {}  # builder name -> the model with the forward check's weights (folded below, not rebuilt)
for name, weights in task.get("forward", {}).items():
    loaded[name] = model = build_named(name, input_shape=x.shape[1:], classes=10)
    model.load_weights(weights)
    np.save(os.path.join(task["dir"], f"{name}_{task['backend']}.npy"), logits(model, x))
results["tensorflow_imported_by_models"] = "tensorflow" in sys.modules

_mark("keras_file")
if "keras_file" in task:
    model = keras.saving.load_model(task["keras_file"])
    np.save(os.path.join(task["dir"], f"keras_file_{task['backend']}.npy"), logits(model, x))

_mark("agc_step")
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

_mark("accumulation")
if "accumulation" in task:  # gradient accumulation against the large batch, and remat against the plain step
    import accumulation_check  # this script's folder, tests/, is on sys.path

    results["accumulation"] = accumulation_check.accumulation_results(controls=False)
    results["remat"] = accumulation_check.remat_results()

_mark("initialization")
if "initialization" in task:  # after the checks that TensorFlow is not imported: set_random_seed imports it
    import contextlib
    from unittest import mock

    from harness import toy_config  # this script's folder, tests/, is on sys.path

    from keras_nfnets import _compat
    from keras_nfnets.backend import jax_backend
    from keras_nfnets.models import build_nf_model

    def draw_both(make):  # make() under Keras' own draws and under the size-class draws, from one seed
        keras.utils.set_random_seed(3)
        own = make()
        keras.utils.set_random_seed(3)
        with _compat.keras_random_draws_replaced("jax", jax_backend._size_class_draws):
            size_class = make()
        return own, size_class

    differences = {}
    initializers = (keras.initializers.VarianceScaling(1.0, "fan_in", "normal"), keras.initializers.HeNormal(),
                    keras.initializers.GlorotUniform(), keras.initializers.RandomNormal(0.3, 0.05),
                    keras.initializers.RandomUniform(-3.0, 5.0), keras.initializers.TruncatedNormal(1.0, 2.0),
                    keras.initializers.HeNormal(seed=7))
    for index, initializer in enumerate(initializers):
        for shape in ((3, 3, 16, 24), (129, 33), (1,)):  # 3,456 of 4,096; 4,257 of 8,192; one value
            own, size_class = draw_both(lambda: [np.asarray(initializer(shape, "float32")),
                                                 np.asarray(keras.random.normal((2,)))])  # the seed state after it
            differences[f"{index} {type(initializer).__name__}{shape}"] = max(
                float(np.abs(a - b).max()) for a, b in zip(own, size_class))
    toy = toy_config("nfnet")  # the XLA tests' toy NFNet: WS convs, SE, gains, skip gains, classifier

    def toy_weights():  # the builder's own scope off, so that each build draws as draw_both says
        with mock.patch.object(jax_backend, "variable_initialization", contextlib.nullcontext):
            return [np.asarray(w) for w in build_nf_model(toy, input_shape=(32, 32, 3), classes=10).weights]

    own, size_class = draw_both(toy_weights)
    results["initialization"] = {"draws": differences, "weights": len(own), "random_weights": sum(
        len(np.unique(w)) > 2 for w in own), "model": max(float(np.abs(a - b).max()) for a, b in zip(own, size_class))}

_mark("train")
if "train" in task:
    from keras_nfnets.training import train

    if task["train"]:  # None on JAX: the README's JAX run (digits to 95%) and data_parallel (AGC, EMA) train there
        run = train("NFResNet14", "digits", output_dir=task["train"], epochs=3, steps_per_epoch=8, batch_size=32,
                    learning_rate=0.1, clip_factor=0.01, ema=0.9, verbose=0, tensorboard=False)
        results["train"] = {"history": run.history, "test": run.metrics}

    # model.fit with NFNet's whole recipe on this backend: AGC, EMA, label smoothing, warmup-cosine, and
    # CutMix + MixUp + RandAugment (stateless tf.data ops) feeding its batches
    from keras_nfnets.data import digits_source, train_dataset
    from keras_nfnets.training import recipe

    plan = recipe("NFNetF0", batch_size=16, epochs=1, steps_per_epoch=4, num_classes=10)
    data = train_dataset(digits_source(), 32, 16, steps_per_epoch=4, seed=0, flip=False,
                         augmentation=plan.hyperparameters.augmentation(), mean=(0.0,) * 3, std=(1.0,) * 3)
    labels = np.concatenate([np.asarray(y) for _, y in data])
    model = keras_nfnets.NFResNet14(input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    model.compile(optimizer=plan.optimizer, loss=plan.loss, metrics=plan.metrics)
    history = model.fit(data, epochs=1, callbacks=plan.callbacks, verbose=0).history
    results["augmented_fit"] = {"loss": history["loss"], "labels_per_row": np.count_nonzero(labels, 1).tolist(),
                                "label_sums": labels.sum(1).tolist(), "recipe": plan.summary()}

_mark("conv")
if "conv" in task:  # conv2d forward and its vector-Jacobian product, every path of this backend
    from keras_nfnets.layers.conv_ops import conv2d

    def vjp(fn, inputs, kernel, cotangent):
        if task["backend"] == "jax":
            import jax

            y, pullback = jax.vjp(fn, inputs, kernel)
            return [np.asarray(v) for v in (y, *pullback(cotangent))]
        import torch

        inputs, kernel = (torch.tensor(v, requires_grad=True) for v in (inputs, kernel))
        y = fn(inputs, kernel)
        y.backward(torch.tensor(cotangent))
        return [v.detach().numpy() for v in (y, inputs.grad, kernel.grad)]

    arrays = np.load(task["conv"])
    outputs = {}
    for index, case in enumerate(json.loads(str(arrays["cases"]))):
        for implementation in ("auto", "native", "split"):
            def fn(inputs, kernel):
                return conv2d(inputs, kernel, case["strides"], case["padding"], case["dilation"], case["groups"],
                              implementation=implementation)

            y, dx, dk = vjp(fn, arrays[f"x{index}"], arrays[f"k{index}"], arrays[f"r{index}"])
            outputs.update({f"y{index}_{implementation}": y, f"dx{index}_{implementation}": dx,
                            f"dk{index}_{implementation}": dk})
        # an eager call on the backend's own arrays (JAX: concrete arrays, the compiled native path)
        eager = conv2d(*(keras.ops.convert_to_tensor(arrays[f"{v}{index}"]) for v in "xk"), case["strides"],
                       case["padding"], case["dilation"], case["groups"])
        outputs[f"y{index}_eager"] = keras.ops.convert_to_numpy(eager)
    np.savez(os.path.join(task["dir"], f"conv_{task['backend']}.npz"), **outputs)

_mark("spp")
if "spp" in task:  # Figure 2's models (BatchNorm included), with weights made under TensorFlow
    from keras_nfnets import signal_propagation
    from keras_nfnets.models import build_nf_model
    from keras_nfnets.spp import figure_models

    spp = task["spp"]
    models = {config.name: build_nf_model(config, include_top=False, input_shape=x.shape[1:])
              for _, config, _ in figure_models(2, depth=spp["depth"])}
    for name, model in models.items():
        model.load_weights(spp["weights"][name])
        stats = signal_propagation(model, inputs=np.load(spp["x"]))
        np.savez(os.path.join(task["dir"], f"spp_{name}_{task['backend']}.npz"), avg_sq_mean=stats.avg_sq_mean,
                 avg_var=stats.avg_var, residual_avg_var=stats.residual_avg_var)

_mark("fold")
if "fold" in task:
    from keras_nfnets import fold_weight_standardization

    for name, weights in task["fold"].items():
        model = loaded.get(name)
        if model is None:
            model = build_named(name, input_shape=x.shape[1:], classes=10)
            model.load_weights(weights)
        folded = fold_weight_standardization(model)
        np.save(os.path.join(task["dir"], f"folded_{name}_{task['backend']}.npy"), logits(folded, x))
        folded.save(os.path.join(task["dir"], f"folded_{name}_{task['backend']}.keras"))

_mark("preset")
if "preset" in task:  # a keras-hub preset written under TensorFlow, loaded by keras-hub's own from_preset
    import keras_hub

    preset = task["preset"]
    classifier = keras_hub.models.ImageClassifier.from_preset(preset["dir"])
    results["preset_classes"] = [type(classifier).__name__, type(classifier.preprocessor).__name__]
    np.save(os.path.join(task["dir"], f"preset_logits_{task['backend']}.npy"), logits(classifier, x))
    converted = classifier.preprocessor(np.load(preset["raw_images"]))  # the converter's keras.ops on this backend
    np.save(os.path.join(task["dir"], f"preset_images_{task['backend']}.npy"), keras.ops.convert_to_numpy(converted))

_mark("data_parallel")
if "data_parallel" in task:  # last: train(strategy="auto") sets keras.distribution.DataParallel globally
    from keras_nfnets.training import train

    results["data_parallel"] = {}
    for strategy, output_dir in task["data_parallel"].items():  # "one_device" first, then "auto"
        run = train("NFResNet14", "digits", output_dir=output_dir, epochs=1, steps_per_epoch=4, batch_size=16,
                    image_size=32, clip_factor=0.01, ema=0.9, verbose=0, tensorboard=False, strategy=strategy)
        results["data_parallel"][strategy] = {
            "replicas": run.settings["replicas"], "history": run.history, "test": run.metrics,
            "recipe": run.settings["recipe"],
            "distribution": type(keras.distribution.distribution()).__name__}

_mark("end")
json.dump(results, open(task["out"], "w"))
