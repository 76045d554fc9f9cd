"""Shared timing helper of the benchmarks in tools/ (run them as scripts: this folder is on sys.path)."""

import statistics
import time


def step_timer(times):
    """A Keras callback appending each training step's seconds to ``times``."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    return StepTimer()


def median_seconds(fn, repeats, warmup=3):
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
