"""Callbacks for robust runs: stop on a NaN loss with a diagnosis."""

import math
import os
import sys

import keras
import numpy as np

from keras_nfnets import _compat


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first non-finite loss and say what most likely went wrong.

    Unnormalised networks diverge when the learning rate is too high for the batch size (NF
    paper App. A.1); AGC (NFNet paper §4) is what makes large batches and strong augmentation
    stable. The message names the learning rate and whether AGC was on; ``self.message`` keeps it.
    """

    def __init__(self, clip_factor=None, learning_rate=None, stream=None):
        super().__init__()
        self.clip_factor = clip_factor
        self.learning_rate = learning_rate
        self.stream = stream
        self.message = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        hints = []
        if self.learning_rate is not None:
            hints.append(f"the learning rate ({self.learning_rate:.3g} peak) is too high for this batch size and "
                         f"model; try {self.learning_rate / 2:.3g} (--learning-rate)")
        if not self.clip_factor:
            hints.append("Adaptive Gradient Clipping is off; turn it on with clip_factor=0.01 (--clip-factor 0.01)")
        else:
            hints.append(f"AGC λ={self.clip_factor:g} is too weak for this batch size; try a smaller λ")
        policy = keras.config.dtype_policy().name
        if policy == "mixed_float16":
            hints.append("float16 overflowed; try --precision mixed_bfloat16 or float32")
        self.message = (f"Training stopped: the loss became {loss} at epoch {self._epoch + 1}, batch {batch + 1}. "
                        f"Likely causes: {'; '.join(hints)}.")
        print(self.message, file=self.stream or sys.stderr, flush=True)
        self.model.stop_training = True


def _seed_generators(model):
    """The Keras seed generators of ``model``'s layers (dropout, stochastic depth, ...)."""
    found, seen = [], set()
    for layer in _compat.all_sublayers(model):
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator) and id(value) not in seen:
                seen.add(id(value))
                found.append((f"{len(found)}_{layer.name}", value))
    return found


class RandomStateBackup(keras.callbacks.Callback):
    """Checkpoint the random state of dropout / stochastic depth with every epoch's weights.

    Keras' ``BackupAndRestore`` saves weights and optimizer state, not the seed generators of
    random layers, so a resumed run would draw other dropout masks than an uninterrupted one.
    This saves their states to ``backup_dir/random_state.npz`` after every epoch and restores
    them when training (re)starts.
    """

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = backup_dir

    @property
    def path(self):
        return os.path.join(self.backup_dir, "random_state.npz")

    def on_train_begin(self, logs=None):
        if not os.path.exists(self.path):
            return
        state = np.load(self.path)
        for name, generator in _seed_generators(self.model):
            if name not in state:
                raise ValueError(f"{self.path} has no random state for {name!r}; delete the backup to start over.")
            generator.state.assign(state[name])

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        np.savez(self.path, **{name: keras.ops.convert_to_numpy(g.state.value) for name, g in _seed_generators(self.model)})
