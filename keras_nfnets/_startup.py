"""A quiet start for the ``nfnets`` command line.

TensorFlow writes its start-up log lines (oneDNN, CUDA stubs, CPU features) from C++ before
``TF_CPP_MIN_LOG_LEVEL`` is read, so a command line can only keep them off the terminal by
holding standard error while TensorFlow loads. The package runs this before anything imports
TensorFlow when, and only when, it is imported as the ``nfnets`` program (the console script or
``python -m keras_nfnets...``) and the user asked for neither ``--verbose`` nor a log level.
"""

import contextlib
import os
import sys


def running_as_cli():
    """Whether this process is the ``nfnets`` console script or ``python -m keras_nfnets...``."""
    if sys.argv and os.path.basename(sys.argv[0]) in ("nfnets", "nfnets.exe"):
        return True
    argv = list(getattr(sys, "orig_argv", []))
    if "-m" in argv:
        index = argv.index("-m")
        return index + 1 < len(argv) and argv[index + 1].split(".")[0] == "keras_nfnets"
    return False


def tensorflow_backend():
    """Whether Keras will run on TensorFlow (``KERAS_BACKEND`` unset or ``tensorflow``); on JAX or
    PyTorch TensorFlow is imported only for a TF-only feature (tf.data, export)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"


def wants_tensorflow_logs(argv=None):
    """The user asked for TensorFlow's logs: ``--verbose`` or ``TF_CPP_MIN_LOG_LEVEL`` already set."""
    return "TF_CPP_MIN_LOG_LEVEL" in os.environ or "--verbose" in (sys.argv if argv is None else argv)


@contextlib.contextmanager
def stderr_silenced():
    """Send the process's standard error (file descriptor 2, C++ included) to /dev/null."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_SET_HERE = set()  # environment variables this module set (not the user)


def quiet_tensorflow_start():
    """Load TensorFlow and create its devices with standard error held; later C++ messages below
    ERROR stay off through ``TF_CPP_MIN_LOG_LEVEL=2``."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    _SET_HERE.add("TF_CPP_MIN_LOG_LEVEL")
    with stderr_silenced():
        import tensorflow as tf

        tf.config.list_logical_devices()


def user_environment():
    """``os.environ`` without the variables set here, for child processes (so that an ``nfnets``
    child starts as quietly, or as verbosely, as its parent was asked to)."""
    return {k: v for k, v in os.environ.items() if k not in _SET_HERE}
