"""Every use of a Keras, TensorFlow or LiteRT private interface, in one place.

These are not public APIs and may change in any release; when one breaks, this module is the
only one to fix. Each function says which internal it relies on and why no public API does.
"""

import contextlib


def producer_layer(tensor):
    """The layer that produced a symbolic Keras tensor (``KerasTensor._keras_history``: Keras 3
    has no public accessor for a tensor's producer)."""
    return tensor._keras_history.operation


def all_sublayers(model):
    """Every layer of ``model``, nested ones included, the model itself first
    (``Layer._flatten_layers``: ``model.layers`` lists only the top level)."""
    return list(model._flatten_layers(include_self=True, recursive=True))


def tflite_op_names(path):
    """The operator names in a ``.tflite`` file (``Interpreter._get_ops_details``: LiteRT's only
    listing of the ops in a model)."""
    import os

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path))
    return {op["op_name"] for op in interpreter._get_ops_details()}


def freeze_concrete_function(concrete):
    """The concrete function with every variable turned into a constant
    (``tensorflow.python.framework.convert_to_constants``: TF exposes no public equivalent)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(concrete)


@contextlib.contextmanager
def keras_tensorflow_conv(replacement):
    """Temporarily route Keras' built-in convolution layers, on the TensorFlow backend, through
    ``replacement(original, inputs, kernel, strides, padding, data_format, dilation_rate)``
    (patches ``keras.src.backend.tensorflow.nn.conv``, which Keras' Conv layers call and which no
    public hook reaches)."""
    from keras.src.backend.tensorflow import nn as tf_nn

    original = tf_nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        return replacement(original, inputs, kernel, strides, padding, data_format, dilation_rate)

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = original
