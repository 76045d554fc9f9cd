"""Ctrl-C and SIGTERM during ``fit``: answered at once, wherever they land.

Python runs a signal handler only in the main thread and only between two of its bytecodes, so
while the main thread is inside one long call into TensorFlow (the first step's tracing and
compilation took 9 s on a busy 2-core machine) a Ctrl-C went unanswered; once, a
``KeyboardInterrupt`` raised while Keras was starting an epoch was swallowed and the run went on
to its end. Here Python's C-level handler also writes the signal to a socket (``set_wakeup_fd``)
that a watcher thread reads: it prints what stopping saves the moment the signal arrives. The
main thread then stops at its next bytecode (a callback raises again at the next batch if the
first ``KeyboardInterrupt`` was swallowed) and saves. In the ``nfnets`` program, if the main
thread has not begun saving within :data:`GRACE_SECONDS`, the watcher saves the weights as they
are and ends the process itself (exit status 128 + the signal: 130, 143).
"""

import os
import signal
import socket
import sys
import threading

import keras

from keras_nfnets import _startup

GRACE_SECONDS = 1.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interruption:
    """A context manager around ``fit``. ``describe``: what stopping saves (the first line);
    ``save()`` writes it and returns the last line; ``end_process``: the watcher may end the
    process (the ``nfnets`` program, never a user's Python session)."""

    def __init__(self, describe, save, end_process=False):
        self.describe, self.save, self.end_process = describe, save, end_process
        self.requested = None  # the signal, once one came
        self._lock, self._saved, self._installed = threading.Lock(), False, False

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # signals are the main thread's business: leave them alone
        self._reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._writer = writer
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._previous = {number: signal.signal(number, self._on_signal) for number in SIGNALS}
        self._installed = True
        threading.Thread(target=self._watch, name="keras_nfnets-interrupt", daemon=True).start()
        return self

    def __exit__(self, *exc):
        if self._installed:
            for number, handler in self._previous.items():
                signal.signal(number, signal.SIG_DFL if handler is None else handler)
            signal.set_wakeup_fd(self._previous_fd)
            self._writer.close()
            self._reader.close()  # the watcher's recv returns: it ends
        return False

    def _on_signal(self, signum, frame):  # the main thread, at its next bytecode
        self.requested = self.requested or signum
        _startup.note_stop_signal(self.requested)
        raise KeyboardInterrupt

    def save_once(self):
        """The save, by whichever thread comes first; ``None`` for the other one."""
        with self._lock:
            if self._saved:
                return None
            self._saved = True
            return self.save()

    def _watch(self):
        try:
            data = self._reader.recv(1)
        except OSError:
            return
        if not data or data[0] not in SIGNALS:
            return
        self.requested = self.requested or signal.Signals(data[0])
        _startup.note_stop_signal(self.requested)
        print(f"\n{signal.Signals(data[0]).name} received: {self.describe}.", file=sys.stderr, flush=True)
        if not self.end_process:
            return
        deadline = threading.Event()
        deadline.wait(GRACE_SECONDS)
        if not self._lock.acquire(blocking=False):
            return  # the main thread is saving: it ends the process
        try:
            if self._saved:
                return
            self._saved = True
            line = self.save()
        finally:
            self._lock.release()
        print(line, file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(_startup.interrupted_exit_status())


class StopWhenRequested(keras.callbacks.Callback):
    """Raises ``KeyboardInterrupt`` at the next batch or epoch boundary once a signal came, in
    case the first one was swallowed."""

    def __init__(self, interruption):
        super().__init__()
        self.interruption = interruption

    def _check(self, *args, **kwargs):
        if self.interruption.requested:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_begin = on_epoch_end = _check
