"""A quiet start for the ``nfnets`` command line (called by :func:`keras_nfnets.cli.main` only;
``import keras_nfnets`` touches neither standard error nor the environment).

TensorFlow writes start-up lines (oneDNN, CUDA stubs, CPU features, cuInit) from C++ while it
loads and while it creates its devices, some of them before ``TF_CPP_MIN_LOG_LEVEL`` is read.
A command line can only keep them off the terminal by holding standard error during both steps.
Devices are created once per process and a ``MultiWorkerMirroredStrategy`` must exist before
them, so a multi-worker run creates its strategy here, inside the quiet start.
"""

import contextlib
import os
import sys

_PROGRAM = []  # [True] once keras_nfnets.cli.main runs as the nfnets program


def is_program():
    """Whether this process is the ``nfnets`` program (not a user's Python session), which may
    end itself once a Ctrl-C's work is saved."""
    return bool(_PROGRAM)


def mark_program():
    _PROGRAM[:] = [True]


_STOPPED_BY = []  # the signal that stopped the run (keras_nfnets.training.interrupt)


def forget_stop_signal():
    """A new command starts (a Python session may run several)."""
    _STOPPED_BY.clear()


def note_stop_signal(signum):
    if not _STOPPED_BY:
        _STOPPED_BY.append(int(signum))


def interrupted_exit_status():
    """128 + the signal that stopped the program: 130 after Ctrl-C (SIGINT), 143 after SIGTERM,
    as a shell reports a process that a signal ended."""
    return 128 + (_STOPPED_BY[0] if _STOPPED_BY else 2)


def wants_tensorflow_logs(argv=None):
    """The user asked for TensorFlow's logs: ``--verbose`` or ``TF_CPP_MIN_LOG_LEVEL`` already set."""
    return "TF_CPP_MIN_LOG_LEVEL" in os.environ or "--verbose" in (sys.argv if argv is None else argv)


@contextlib.contextmanager
def stderr_silenced():
    """Send the process's standard error (file descriptor 2, C++ included) to /dev/null. A crash
    meanwhile (segmentation fault, abort) still prints Python's traceback to the real standard
    error: faulthandler writes there while it is held."""
    import faulthandler

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    terminal = os.fdopen(os.dup(saved), "w")
    was_enabled = faulthandler.is_enabled()
    faulthandler.enable(file=terminal)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        _restore_faulthandler(was_enabled)
        terminal.close()


def _restore_faulthandler(was_enabled):
    import faulthandler

    try:
        if _TERMINAL:
            faulthandler.enable(file=_TERMINAL[0])
        elif was_enabled:
            faulthandler.enable(file=sys.__stderr__)
        else:
            faulthandler.disable()
    except (AttributeError, ValueError, OSError):  # no file descriptor behind sys.__stderr__
        faulthandler.disable()


_SET_HERE = set()  # environment variables this module set (not the user)
_TERMINAL = []  # a duplicate of the standard error the program started with


def terminal():
    """Where a message goes while :func:`stderr_silenced` may hold standard error: the standard
    error the program started with (the command line), else ``sys.stderr``."""
    return _TERMINAL[0] if _TERMINAL else sys.stderr


def report_fatal_errors():
    """A crash (segmentation fault, abort) prints Python's traceback to the standard error the
    program started with, also while :func:`stderr_silenced` holds file descriptor 2: a process
    that dies in a held section is never silent."""
    import faulthandler

    if not _TERMINAL:
        _TERMINAL.append(os.fdopen(os.dup(2), "w"))
    faulthandler.enable(file=_TERMINAL[0])


def quiet_tensorflow_start(strategy=None, cluster_timeout=None):
    """Load TensorFlow and create its devices with standard error held (later C++ messages below
    ERROR stay off through ``TF_CPP_MIN_LOG_LEVEL=2``). ``strategy="multi_worker"`` creates the
    process's ``MultiWorkerMirroredStrategy`` (from ``TF_CONFIG``) in place of the plain devices;
    and returns it (``None`` otherwise, and where TensorFlow is missing): the caller passes it on
    to the run. An error creating it is raised after standard error is back."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return None
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    _SET_HERE.add("TF_CPP_MIN_LOG_LEVEL")
    with stderr_silenced():
        from keras_nfnets import backend

        return backend.for_backend(backend.selected()).start_tensorflow(strategy, cluster_timeout)


def user_environment():
    """``os.environ`` without the variables set here, for child processes (so that an ``nfnets``
    child starts as quietly, or as verbosely, as its parent was asked to)."""
    return {k: v for k, v in os.environ.items() if k not in _SET_HERE}
