"""Exponential moving average of the weights with the paper's warm-up (App. C; DeepMind tf1_ema)."""

import keras
import numpy as np
from keras import ops

from keras_nfnets import backend


def _copy(variable):
    """A NumPy copy of a variable's value (on JAX a plain conversion can share the buffer that the
    next training step donates and deletes)."""
    return np.array(ops.convert_to_numpy(variable.value), copy=True)


def ema_decay(step, decay):
    """The decay at step ``step`` (0-based): ``min(decay, (1 + step) / (10 + step))``."""
    return min(float(decay), (1.0 + step) / (10.0 + step))


class ExponentialMovingAverage(keras.callbacks.Callback):
    """Keep ``ema ← d_t · ema + (1 − d_t) · w`` of every model weight after each training step,
    with ``d_t = min(decay, (1 + t) / (10 + t))``; evaluate with the averaged weights, and leave
    them in the model at the end of training (so it is saved averaged) unless ``swap_on_end=False``.
    Floating-point weights are averaged (random-seed states are not).

    Args:
        decay: the asymptotic decay (paper: 0.99999 for ImageNet-length runs).
        swap_on_end: assign the averaged weights to the model when training ends.

    With gradient accumulation (the optimizer's ``gradient_accumulation_steps = N``) the average
    moves once per optimizer step, after every N-th batch, with ``t`` counting optimizer steps:
    as for the batch N times larger that the accumulation stands for.

    A resumed run continues the same average: :class:`EpochBackup` saves ``backup_state()`` with
    every epoch and hands it back through ``restore_state`` when training restarts.
    """

    def __init__(self, decay=0.99999, swap_on_end=True):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"`decay` must be in (0, 1); received {decay!r}.")
        self.decay = float(decay)
        self.swap_on_end = swap_on_end
        self.averages = None
        self.step = 0
        self._backup = None
        self._update = None
        self._restored = None
        self._batches = 0  # batches since training began, to find the optimizer steps among them
        self._every = 1

    @property
    def weights(self):
        return [w for w in self.model.weights if "float" in str(w.dtype)]

    def backup_state(self):
        """The averages and the step, as arrays (for :class:`EpochBackup`)."""
        if self.averages is None:
            return {}
        arrays = {f"w{i}": _copy(average) for i, average in enumerate(self.averages)}
        return {"step": np.array(self.step), **arrays}

    def restore_state(self, state):
        """Continue from ``backup_state()``'s arrays when training (re)starts."""
        self._restored = dict(state) or None

    def on_train_begin(self, logs=None):
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)  # mixed_float16
        self._every, self._batches = getattr(optimizer, "gradient_accumulation_steps", None) or 1, 0
        if self.averages is None:
            self.averages = [keras.Variable(_copy(w), trainable=False, name=f"ema_{i}")
                             for i, w in enumerate(self.weights)]
        if self._restored is not None:
            arrays = [self._restored.get(f"w{i}") for i in range(len(self.averages))]
            if any(a is None or a.shape != tuple(v.shape) for a, v in zip(arrays, self.averages)):
                raise ValueError("The backed-up EMA state does not match this model; restart the run "
                                 "(`resume=False`).")
            for average, array in zip(self.averages, arrays):
                average.assign(array)
            self.step, self._restored = int(self._restored["step"]), None

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches % self._every:  # a micro-batch whose gradient is only accumulated
            return

        def update(d, weights):
            for average, weight in zip(self.averages, weights):
                average.assign(d * average + (1.0 - d) * ops.cast(weight.value, average.dtype))

        if self._update is None:  # TF: one graph per step; JAX/PyTorch: eager, reading self.weights each step
            self._update = backend.current().ema_updater(update, lambda: self.weights)
        self._update(ops.convert_to_tensor(ema_decay(self.step, self.decay), "float32"))
        self.step += 1

    def _swap_in(self):
        self._backup = [_copy(w) for w in self.weights]
        for average, weight in zip(self.averages, self.weights):
            weight.assign(_copy(average))  # a copy: never share a buffer JAX may donate

    def _swap_out(self):
        for backup, weight in zip(self._backup, self.weights):
            weight.assign(backup)
        self._backup = None

    def on_test_begin(self, logs=None):
        if self.averages is not None and self.step > 0:
            self._swap_in()

    def on_test_end(self, logs=None):
        if self._backup is not None:
            self._swap_out()

    def on_train_end(self, logs=None):
        if self.swap_on_end and self.averages is not None and self.step > 0:
            for average, weight in zip(self.averages, self.weights):
                weight.assign(_copy(average))  # a copy: never share a buffer JAX may donate
