"""Ctrl-C during training is answered at once, even while the main thread is inside one long
TensorFlow call (issue 44: the answer waited for the first step's compilation, 9 s on a busy
machine, and the process took up to 18 s to end; the README main job's figures, measured by
hand, are in docs/training.md)."""

import os
import signal
import sys
import threading
import time

import pytest
import tensorflow as tf

from keras_nfnets.training.interrupt import Interruption, StopWhenRequested


class _Recorder:
    def __init__(self):
        self.lines = []

    def write(self, text):
        if text.strip():
            self.lines.append((time.monotonic(), text.strip()))

    def flush(self):
        pass


@tf.function
def _busy(seconds):
    """One call into TensorFlow that keeps the main thread for about ``seconds``."""
    start = tf.timestamp()
    x = tf.random.normal((256, 256))

    def body(x):
        return (tf.linalg.matmul(x, x) / 256.0,)

    return tf.while_loop(lambda x: tf.timestamp() - start < seconds, body, (x,))


def test_a_signal_is_answered_while_the_main_thread_is_inside_tensorflow(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(sys, "stderr", recorder)
    saved, returned = [], []
    interruption = Interruption("saving the current weights to w.h5", lambda: saved.append(1) or "saved", False)
    with pytest.raises(KeyboardInterrupt):
        with interruption:
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
            sent = time.monotonic() + 0.3
            try:
                _busy(tf.constant(2.5, tf.float64))
            finally:
                returned.append(time.monotonic())
    assert recorder.lines and recorder.lines[0][1] == "SIGINT received: saving the current weights to w.h5."
    answered = recorder.lines[0][0]
    assert answered - sent < 1.0 and returned[0] - answered > 1.0, (answered - sent, returned[0] - answered)
    assert interruption.requested == signal.SIGINT
    assert interruption.save_once() == "saved" and interruption.save_once() is None and saved == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_swallowed_interrupt_is_raised_again_at_the_next_batch():
    interruption = Interruption("stopping", lambda: "", False)
    callback = StopWhenRequested(interruption)
    callback.on_train_batch_end(0)  # nothing asked: goes on
    interruption.requested = signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        callback.on_train_batch_end(1)
