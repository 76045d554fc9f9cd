"""Run by test_optimizers.py in a fresh process (logical devices must be set before TF starts):
AGC under MirroredStrategy on two logical CPUs equals one device with the same global batch,
and differs from clipping each replica's gradient separately. Prints JSON.

``accumulation``: gradient accumulation on the two replicas equals one device's large batch
(accumulation_check.py). ``train``: a complete ``train`` run under ``--strategy mirrored``.

``multi_worker``: the same comparison across the workers of a ``MultiWorkerMirroredStrategy``
cluster (run under ``nfnets launch --workers 2``; each worker is one replica)."""

import json
import sys

import tensorflow as tf

MULTI_WORKER = sys.argv[1:] == ["multi_worker"]
if MULTI_WORKER:
    multi_worker = tf.distribute.MultiWorkerMirroredStrategy()  # before any other TF op
else:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

if sys.argv[1:] == ["accumulation"]:  # gradient accumulation under MirroredStrategy against one device's large batch
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    import accumulation_check  # noqa: E402

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps(dict(accumulation_check.accumulation_results(strategy, controls=False),
                          replicas=strategy.num_replicas_in_sync)))
    sys.exit(0)

if sys.argv[1:] == ["train"]:  # (one MirroredStrategy per process: their collectives would clash)
    # A complete `train` run under --strategy mirrored on the two logical CPUs.
    import tempfile  # noqa: E402

    from keras_nfnets.training import evaluate, train  # noqa: E402

    with tempfile.TemporaryDirectory() as run_dir:
        run = train("NFResNet14", "digits", strategy="mirrored", epochs=1, steps_per_epoch=3, batch_size=16,
                    image_size=32, output_dir=run_dir, verbose=0, tensorboard=False)
        single = evaluate(run_dir)  # the saved model, evaluated outside the strategy

    print(json.dumps({"replicas": run.settings["replicas"], "loss": run.history["loss"][-1],
                      "accuracy": run.metrics["accuracy"], "single_device_accuracy": single["accuracy"]}))
    sys.exit(0)

from keras_nfnets.training import SGDAGC, adaptive_grad_clip  # noqa: E402

LR, CLIP = 0.5, 0.01
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 4)).astype("float32")
x[4:] *= 10.0  # the second replica's half has much larger gradients than the first
y = rng.standard_normal((8, 2)).astype("float32")


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                              keras.layers.Dense(2, name="predictions")])
    model.compile(optimizer=SGDAGC(LR, momentum=0.0, clip_factor=CLIP), loss="mse")
    return model


EMA_STATE = {}


def fit(strategy):
    with strategy.scope():
        model = build()
    initial = [w.numpy() for w in model.weights]
    if MULTI_WORKER and strategy is multi_worker:
        from keras_nfnets import _compat

        _compat.enable_keras_multi_worker_training(model)

        def worker_half(context):  # worker k is replica k: it gets rows 4k … 4k + 3 of the global batch
            start = 4 * context.input_pipeline_id
            return tf.data.Dataset.from_tensor_slices((x[start:start + 4], y[start:start + 4])).batch(4)

        from keras_nfnets.training import ExponentialMovingAverage

        ema = ExponentialMovingAverage(0.5, swap_on_end=False)
        model.fit(strategy.distribute_datasets_from_function(worker_half), epochs=1, verbose=0, callbacks=[ema])
        EMA_STATE.update(ema.backup_state())
    else:
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return initial, [w.numpy() for w in model.weights]


initial, one = fit(tf.distribute.OneDeviceStrategy("/cpu:0"))
_, two = fit(multi_worker if MULTI_WORKER else tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))

# The wrong way: clip each replica's (1/2-scaled) gradient, then sum.
model = build()
for w, value in zip(model.weights, initial):
    w.assign(value)
per_replica = None
for half in (slice(0, 4), slice(4, 8)):
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y[half], model(x[half])) / 2
    grads = tape.gradient(loss, model.trainable_weights)
    clipped = [g if v.path.endswith("predictions/kernel") else adaptive_grad_clip(g, v, CLIP)
               for g, v in zip(grads, model.trainable_weights)]
    per_replica = clipped if per_replica is None else [a + b for a, b in zip(per_replica, clipped)]
wrong = [w0 - LR * g.numpy() for w0, g in zip(initial, per_replica)]

hidden = 0  # the clipped layer's kernel
print(json.dumps({
    "replicas": (multi_worker if MULTI_WORKER else tf.distribute.get_strategy()).num_replicas_in_sync,
    # what each worker holds after training (compared across workers by the test)
    "weights": [w.ravel().tolist() for w in two],
    "ema": [EMA_STATE[k].ravel().tolist() for k in sorted(EMA_STATE)],

    "one_vs_two": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
    "update_size": max(float(np.abs(a - b).max()) for a, b in zip(one, initial)),
    "hidden_update": float(np.abs(two[hidden] - initial[hidden]).max()),
    "hidden_vs_per_replica": float(np.abs(two[hidden] - wrong[hidden]).max()),
    "classifier_vs_per_replica": float(np.abs(two[2] - wrong[2]).max()),
}))
