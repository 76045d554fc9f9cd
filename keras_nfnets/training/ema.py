"""Exponential moving average of the weights with the paper's warm-up (App. C; DeepMind tf1_ema)."""

import keras
from keras import ops


def ema_decay(step, decay):
    """The decay at step ``step`` (0-based): ``min(decay, (1 + step) / (10 + step))``."""
    return min(float(decay), (1.0 + step) / (10.0 + step))


class ExponentialMovingAverage(keras.callbacks.Callback):
    """Keep ``ema ← d_t · ema + (1 − d_t) · w`` of every model weight after each training step,
    with ``d_t = min(decay, (1 + t) / (10 + t))``; evaluate with the averaged weights, and leave
    them in the model at the end of training (so it is saved averaged) unless ``swap_on_end=False``.

    Args:
        decay: the asymptotic decay (paper: 0.99999 for ImageNet-length runs).
        swap_on_end: assign the averaged weights to the model when training ends.
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

    def on_train_begin(self, logs=None):
        if self.averages is None:
            self.averages = [keras.Variable(ops.convert_to_numpy(w.value), trainable=False, name=f"ema_{i}")
                             for i, w in enumerate(self.model.weights)]

    def on_train_batch_end(self, batch, logs=None):
        d = ema_decay(self.step, self.decay)
        for average, weight in zip(self.averages, self.model.weights):
            average.assign(d * average + (1.0 - d) * ops.cast(weight.value, average.dtype))
        self.step += 1

    def _swap_in(self):
        self._backup = [ops.convert_to_numpy(w.value) for w in self.model.weights]
        for average, weight in zip(self.averages, self.model.weights):
            weight.assign(average.value)

    def _swap_out(self):
        for backup, weight in zip(self._backup, self.model.weights):
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
            for average, weight in zip(self.averages, self.model.weights):
                weight.assign(average.value)
