"""Saving and loading whole models (``.keras`` files) with errors that name the file."""

import os

from keras_nfnets import backend


def register_keras_objects():
    """Import every module that registers a class with Keras' serialization (the layers, the
    NFModel and the SGDAGC optimizer), so that ``keras.saving.load_model`` can rebuild a keras_nfnets model.
    ``import keras_nfnets`` alone is lazy and registers nothing."""
    import keras_nfnets.layers  # noqa: F401
    import keras_nfnets.models.model  # noqa: F401  (NFModel)
    import keras_nfnets.optimizers  # noqa: F401


def load_model(path):
    """A ``.keras`` file saved from a keras_nfnets model (by :func:`~keras_nfnets.train` or
    ``model.save``), with the custom layers registered and errors that name the file."""
    import zipfile

    import keras

    register_keras_objects()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No trained model at {path!r}; pass a run directory or a .keras file.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a complete .keras file (a .keras file is a zip archive): it is truncated "
                         "or of another format; save the model again or point to another file.")
    try:
        with backend.current().variable_initialization():  # rebuilt layers draw initial values first
            return keras.saving.load_model(path)
    except Exception as error:
        raise ValueError(f"Cannot load {path!r} as a Keras model: {error}") from error


def save_model_atomically(model, path):
    """``model.save(path)`` through a new temporary ``.keras`` file next to it, renamed into place:
    a crash while saving leaves the previous file (or none), never a torn one."""
    from keras_nfnets._files import write_file_into_place

    write_file_into_place(path, model.save, replace=True)
