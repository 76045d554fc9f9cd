"""``nfnets train --strategy multi_worker`` as a light parent and a worker child, so that a SIGTERM
sent to the program alone stops it while the cluster forms.

TensorFlow's ``MultiWorkerMirroredStrategy`` constructor blocks in C++ with Python's GIL held until
every peer joins, and installs its own SIGTERM handler (its preemption notifier): a ``kill PID`` or
``docker stop`` during that wait did nothing until ``--cluster-timeout`` (issue 44). No code in the
blocked process can answer, so the program the user started is a parent that imports neither
TensorFlow nor Keras (standard library only) and runs the worker as its child, in a process group
of its own. The parent receives every signal meant for the program (a terminal's Ctrl-C, ``kill``,
``docker stop``, ``nfnets launch``) and:

- while the cluster forms, says so and ends the worker (SIGKILL: TensorFlow's handler would
  swallow anything else), exit status 128 + the signal;
- once the worker reports the cluster formed (one byte on a pipe:
  :func:`keras_nfnets.backend.cluster.report_formed`), passes the signal on, once,
  and the worker saves and stops as a one-process run does (:mod:`keras_nfnets.training.interrupt`).

The worker dies with the parent (``PR_SET_PDEATHSIG`` on Linux), and the parent's exit status is
the worker's.
"""

import os
import select
import signal
import subprocess
import sys
import time

from keras_nfnets.backend.cluster import FORMED_FD_VARIABLE  # set in the worker: where it reports the formed cluster

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
POLL_SECONDS = 0.1


def wanted(args, environ=None):
    """Whether this ``nfnets`` process should be the parent: ``train --strategy multi_worker`` on a
    POSIX system, and not already the worker."""
    environ = os.environ if environ is None else environ
    return (os.name == "posix" and getattr(args, "command", None) == "train"
            and getattr(args, "strategy", None) == "multi_worker" and FORMED_FD_VARIABLE not in environ)


def _end_with_parent():
    """In the worker, before it runs: its own process group (a terminal's or a launcher's group
    signal reaches the parent only, which passes it on once), and death with the parent (Linux)."""
    os.setpgid(0, 0)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker outlives a SIGKILLed parent
        pass


def run(argv, stream=None):
    """Run ``nfnets`` ``argv`` as the worker child and answer signals as the module says. Returns
    the exit status."""
    stream = sys.stderr if stream is None else stream
    read_end, write_end = os.pipe()
    received = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum)) for number in FORWARDED}
    try:
        started = time.monotonic()
        worker = subprocess.Popen([sys.executable, "-m", "keras_nfnets.cli", *argv], pass_fds=(write_end,),
                                  env=dict(os.environ, **{FORMED_FD_VARIABLE: str(write_end)}),
                                  preexec_fn=_end_with_parent)
        os.close(write_end)
        formed = ended = False  # ended: the pipe closed without a report (the worker is ending)
        while True:
            if received:
                signum = received.pop(0)
                if formed:
                    worker.send_signal(signum)
                else:
                    name = signal.Signals(signum).name
                    print(f"keras_nfnets: stopped by {name} while waiting for the cluster to form "
                          f"({time.monotonic() - started:.0f} s).", file=stream, flush=True)
                    _kill_group(worker)
                    return 128 + signum
            code = worker.poll()
            if code is not None:
                return code if code >= 0 else 128 - code
            if formed or ended:
                time.sleep(POLL_SECONDS)
                continue
            ready, _, _ = select.select([read_end], [], [], POLL_SECONDS)
            if ready:
                formed = bool(os.read(read_end, 1))
                ended = not formed
    finally:
        os.close(read_end)
        for number, handler in previous.items():
            signal.signal(number, handler)


def _kill_group(worker):
    """The worker and what it started (the cluster watchdog), at once."""
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.wait()
