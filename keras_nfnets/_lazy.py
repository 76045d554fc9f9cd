"""Lazy package attributes (PEP 562): a package names the submodule behind each public name,
and the submodule is imported on first access. ``import keras_nfnets`` therefore loads neither
Keras nor TensorFlow; the first model, layer or training call does, and when that first import
loads TensorFlow its start-up lines (oneDNN, CUDA stubs, CPU features: five lines on stderr) are
held, as the command line holds them, unless ``TF_CPP_MIN_LOG_LEVEL`` asks for TensorFlow's logs."""

import contextlib
import importlib
import sys


def _tensorflow_import_held():
    """Standard error held while a submodule's first import may load TensorFlow
    (:func:`keras_nfnets.backend.loads_tensorflow_next`); else nothing."""
    from keras_nfnets.backend import loads_tensorflow_next

    if not loads_tensorflow_next():
        return contextlib.nullcontext()
    from keras_nfnets._startup import stderr_silenced

    return stderr_silenced()


def lazy_exports(package, exports):
    """Install ``__getattr__``/``__dir__`` on the package module called ``package``.

    ``exports`` maps a submodule (relative, e.g. ``".ws_conv"``) to the names it defines that
    the package re-exports. Submodules themselves (``keras_nfnets.layers``) resolve too.
    Returns the sorted public names (the package's ``__all__``).
    """
    module = sys.modules[package]
    owner = {name: submodule for submodule, names in exports.items() for name in names}

    def __getattr__(name):
        if name in owner:
            with _tensorflow_import_held():
                module_of_name = importlib.import_module(owner[name], package)
            value = getattr(module_of_name, name)
        else:
            try:
                with _tensorflow_import_held():
                    value = importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as error:
                if error.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(module, name, value)  # later accesses skip __getattr__
        return value

    def __dir__():
        return sorted(set(vars(module)) | set(owner))

    module.__getattr__ = __getattr__
    module.__dir__ = __dir__
    return sorted(owner)
