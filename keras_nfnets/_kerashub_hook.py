"""keras-hub finds NF presets after ``import keras_nfnets``, without ``import keras_nfnets``
importing keras-hub (seconds, and an optional extra): keras-hub's ``from_preset`` looks classes
up in Keras' registry, so :mod:`keras_nfnets.kerashub` must have run before it. If keras-hub is
already imported, it runs now; otherwise a one-shot import hook runs it right after keras-hub's
own import completes."""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings


def _register():
    try:
        importlib.import_module("keras_nfnets.kerashub")
    except Exception as error:  # never break the user's `import keras_hub`; say why ours is missing
        warnings.warn(f"keras_nfnets could not register its keras-hub classes ({error!r}); NF presets will not load "
                      "until `import keras_nfnets.kerashub` succeeds.", RuntimeWarning, stacklevel=2)


class _AfterKerasHub(importlib.abc.MetaPathFinder):
    """Wraps keras-hub's loader so that registration follows its import (once)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras_hub":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras_hub")
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _register()

        spec.loader.exec_module = exec_module
        return spec


def install():
    if "keras_hub" in sys.modules:
        _register()
    elif not any(isinstance(finder, _AfterKerasHub) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasHub())
