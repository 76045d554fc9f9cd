"""Messages the library prints or raises name Python arguments in backticks (`` `learning_rate` ``,
`` `resume=False` ``). The ``nfnets`` command installs a translator while it runs a command
(:func:`keras_nfnets.cli.as_flags`), so that its users read the same messages with its flags
(``--learning-rate``, ``--restart``); errors are translated where the command catches them."""

import contextlib
import sys

_TRANSLATORS = []


def text(message):
    """``message`` as the current reader reads it (the command line's flags while it runs)."""
    return _TRANSLATORS[-1](message) if _TRANSLATORS else message


def say(message, file=None):
    """Print ``message`` (translated) and flush."""
    print(text(message), file=file or sys.stdout, flush=True)


@contextlib.contextmanager
def translated(translator):
    """Within this context, :func:`text` and :func:`say` pass messages through ``translator``."""
    _TRANSLATORS.append(translator)
    try:
        yield
    finally:
        _TRANSLATORS.pop()
