"""Callbacks for robust runs: stop on a NaN loss with a diagnosis."""

import math
import sys

import keras


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
