"""Checks run on every backend (imported by tests and by backend_worker.py / distributed_agc.py):
gradient accumulation equals the large batch, and rematerialisation leaves gradients unchanged.

``accumulation_results(strategy)``: a small NFNet (AGC clips: λ = 0.01 at LR 0.8), K optimizer steps
with warm-up + cosine, momentum, weight decay and EMA: trained on batches of N·b, on N
micro-batches of b with ``gradient_accumulation_steps=N``, and with AGC wrongly applied to each
micro-batch's gradient before the accumulation. Returns the relative differences from the large
batch (max over tensors of max |Δ| / max |w|).

``remat_results()``: one training step with stochastic depth on (rate 0.5), plain and with
``model.remat = True``: the relative weight difference, and how many blocks ran under
``keras.remat``.
"""

import keras
import numpy as np

from keras_nfnets.training import ExponentialMovingAverage, SGDAGC, adaptive_grad_clip, warmup_cosine_decay
from keras_nfnets.applications import BUILDERS
from keras_nfnets.models import build_nf_model

N, MICRO, STEPS, SIZE, CLASSES = 3, 4, 3, 32, 10
TOY = dict(depths=(1, 1), widths=(16, 32), strides=(1, 2), stem_width=8, group_width=8, final_conv_channels=32)


def _toy(stochastic_depth_rate=0.0):
    config = BUILDERS["NFNetF0"].config.replace(drop_rate=0.0, stochastic_depth_rate=stochastic_depth_rate, **TOY)
    keras.utils.set_random_seed(0)
    return build_nf_model(config, input_shape=(SIZE, SIZE, 3), classes=CLASSES, classifier_activation=None)


def _data(count):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((count, SIZE, SIZE, 3)).astype("float32")
    return x, np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, count)]


class ClipEachMicroBatch(SGDAGC):
    """The wrong order: AGC on each micro-batch's gradient, then Keras' accumulation of the
    clipped gradients (and no clipping of their mean)."""

    def __init__(self, *args, clip_factor=0.01, **kwargs):
        super().__init__(*args, clip_factor=0.0, **kwargs)
        self.clip_first = clip_factor

    def apply(self, grads, trainable_variables=None):
        variables = list(trainable_variables) if trainable_variables is not None else self._trainable_variables
        grads = [g if v.path.endswith("predictions/kernel") else adaptive_grad_clip(g, v.value, self.clip_first)
                 for g, v in zip(grads, variables)]
        return super().apply(grads, trainable_variables)


def _train(batch, accumulation, strategy=None, clip_factor=0.01, optimizer_class=SGDAGC):
    import contextlib

    x, y = _data(N * MICRO * STEPS)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = _toy()
        schedule = warmup_cosine_decay(0.8, total_steps=STEPS, warmup_steps=1)
        optimizer = optimizer_class(schedule, momentum=0.9, weight_decay=1e-2, clip_factor=clip_factor,
                                    gradient_accumulation_steps=accumulation if accumulation > 1 else None)
        model.compile(optimizer, keras.losses.CategoricalCrossentropy(from_logits=True))
    ema = ExponentialMovingAverage(0.9, swap_on_end=False)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[ema])
    weights = [keras.ops.convert_to_numpy(w.value) for w in model.weights]
    averages = [keras.ops.convert_to_numpy(a.value) for a in ema.averages]
    return weights, averages, int(keras.ops.convert_to_numpy(model.optimizer.iterations)), ema.step


def relative_difference(a, b):
    return float(max(np.abs(p - q).max() / max(np.abs(q).max(), 1e-12) for p, q in zip(a, b)))


def accumulation_results(strategy=None, controls=True):
    """The differences from the large batch (see the module docstring). With ``controls`` also
    ``clipped_per_micro_batch`` (the wrong order) and ``agc_effect`` (the large batch without AGC
    against with it: AGC changes the result); TensorFlow runs them, where they cost least."""
    large, large_ema, large_steps, large_ema_steps = _train(N * MICRO, 1)
    accumulated, accumulated_ema, steps, ema_steps = _train(MICRO, N, strategy)
    results = {"accumulated": relative_difference(accumulated, large),
               "accumulated_ema": relative_difference(accumulated_ema, large_ema),
               "optimizer_steps": [large_steps, steps], "ema_steps": [large_ema_steps, ema_steps]}
    if controls:
        wrong = _train(MICRO, N, strategy, optimizer_class=ClipEachMicroBatch)[0]
        results["clipped_per_micro_batch"] = relative_difference(wrong, large)
        results["agc_effect"] = relative_difference(_train(N * MICRO, 1, clip_factor=0.0)[0], large)
    return results


def remat_results():
    x, y = _data(8)
    weights, blocks = {}, [0]
    original = keras.remat

    def counting(f):
        blocks[0] += 1
        return original(f)

    keras.remat = counting
    try:
        for remat in (False, True):
            model = _toy(stochastic_depth_rate=0.5)
            model.remat = remat
            model.compile(keras.optimizers.SGD(1.0), keras.losses.CategoricalCrossentropy(from_logits=True))
            model.train_on_batch(x, y)
            weights[remat] = [keras.ops.convert_to_numpy(w.value) for w in model.weights]
    finally:
        keras.remat = original
    other_masks = _toy(stochastic_depth_rate=0.5)  # the same step with other stochastic-depth draws
    other_masks.compile(keras.optimizers.SGD(1.0), keras.losses.CategoricalCrossentropy(from_logits=True))
    for layer in other_masks.layers:
        if hasattr(layer, "seed_generator"):
            layer.seed_generator.state.assign(np.array([7, 7], dtype=layer.seed_generator.state.dtype))
    other_masks.train_on_batch(x, y)
    other = [keras.ops.convert_to_numpy(w.value) for w in other_masks.weights]
    return {"remat": relative_difference(weights[True], weights[False]),
            "other_masks": relative_difference(other, weights[False]), "blocks_under_remat": blocks[0]}
