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

    from keras_nfnets._startup import stderr_silenced

    with stderr_silenced():  # LiteRT logs its XNNPACK delegate from C++
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


def is_multi_worker(strategy):
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` spanning more than one worker
    (``extended._num_workers``: the public API gives only the replica count, which a one-worker
    cluster with several GPUs shares with a multi-worker one)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and getattr(strategy.extended, "_num_workers", 1) > 1)


def enable_keras_multi_worker_training(model):
    """Make ``model.fit``/``evaluate`` work under ``MultiWorkerMirroredStrategy`` in Keras 3.

    Keras 3 (checked up to 3.15; keras-team/keras#20585, open) fails there twice:
    ``TensorFlowTrainer._maybe_symbolic_build`` calls ``strategy.reduce`` on the first data batch
    as a nest, which the collective strategy cannot reduce (only the batch's shapes are used: this
    takes the first local replica's batch instead), and ``reduce_per_replica`` reduces every step
    output with ``axis=0``, which fails for the scalar metric values (reduced here with
    ``axis=None``: the mean over all replicas of the workers). Patches the model's
    ``_maybe_symbolic_build`` and, once, ``keras.src.backend.tensorflow.trainer.reduce_per_replica``
    (for multi-worker strategies only; everything else goes to Keras' own function).
    """
    import types

    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    def first_local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return model.distribute_strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(first_local, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)
    if getattr(trainer.reduce_per_replica, "_keras_nfnets_original", None) is None:
        original = trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
                return original(values, strategy, reduction)

            def mean(value):
                local = strategy.experimental_local_results(value)[0]
                return strategy.reduce("MEAN", value, axis=None if local.shape.rank == 0 else 0)

            return tree.map_structure(mean, values)

        reduce_per_replica._keras_nfnets_original = original
        trainer.reduce_per_replica = reduce_per_replica
