"""Keras' own functions find every class the package writes into a file after only ``import
keras_nfnets``, whichever of Keras, keras-hub or keras_nfnets was imported first, and without
``import keras_nfnets`` importing either (seconds, and keras-hub is an optional extra).

Keras' deserializer (``keras.saving.load_model``, ``keras.models.clone_model``,
``model_from_json``, keras-hub's ``from_preset``) looks a class up by its registered name
(``keras_nfnets>NFModel``) in Keras' registry, and imports the module a config names only for
Keras' own packages. So the modules that define those classes (:data:`GROUPS`) must have run
before a file is read: at once where their library is imported, otherwise right after its import
completes (a one-shot import hook). Our own modules import Keras themselves; while one of them is
still executing, the registration waits until the outermost has finished (its classes would be
half-defined), which a second hook, on this package's submodules, tracks.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import warnings

# library -> the modules whose import registers this package's classes for it
GROUPS = {
    "keras": ("keras_nfnets.layers", "keras_nfnets.models.model", "keras_nfnets.optimizers"),
    "keras_hub": ("keras_nfnets.kerashub",),
}

_state = threading.local()
_pending = set(GROUPS)  # libraries whose registration has not run
_lock = threading.RLock()


def _executing():
    return getattr(_state, "depth", 0)


def _register_ready():
    """Import the modules of every library that is imported and not yet served, unless one of this
    package's modules is executing (then its end calls this again)."""
    with _lock:
        if _executing() or getattr(_state, "registering", False):
            return
        ready = [library for library in list(_pending) if library in sys.modules]
        if not ready:
            return
        _state.registering = True
        try:
            for library in ready:
                _pending.discard(library)
                for module in GROUPS[library]:
                    try:
                        importlib.import_module(module)
                    except Exception as error:  # never break the user's import; say what will not load
                        warnings.warn(f"keras_nfnets could not register its classes with {library} ({error!r}); "
                                      f"files naming them will not load until `import {module}` succeeds.",
                                      RuntimeWarning, stacklevel=2)
        finally:
            _state.registering = False


def _wrapped(spec, after):
    load = spec.loader.exec_module

    def exec_module(module):
        _state.depth = _executing() + 1
        try:
            load(module)
        finally:
            _state.depth -= 1
        after()

    spec.loader.exec_module = exec_module
    return spec


class _Hook(importlib.abc.MetaPathFinder):
    """Follows the import of Keras and keras-hub (registration after each) and of this package's
    submodules (registration after the outermost, where it waited)."""

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("keras_nfnets."):
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            return _wrapped(spec, _register_ready)
        if fullname in _pending and fullname not in sys.modules:
            for finder in sys.meta_path:  # the finder that would have found it, after this one
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    return spec if spec.loader is None else _wrapped(spec, _register_ready)
        return None


def install():
    """Register now what can be, and follow the imports that make the rest possible."""
    if not any(isinstance(finder, _Hook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Hook())
    _register_ready()
