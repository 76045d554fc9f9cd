"""Every use of a Keras, TensorFlow or LiteRT private interface, in one place.

These are not public APIs and may change in any release; when one breaks, this module is the
only one to fix. Each function says which internal it relies on and why no public API does.
"""

import contextlib


def producer_layer(tensor):
    """The layer that produced a symbolic Keras tensor (``KerasTensor._keras_history``: Keras 3
    has no public accessor for a tensor's producer)."""
    return tensor._keras_history.operation


def call_tensors(layer):
    """``(inputs, outputs)``: the symbolic tensors of ``layer``'s one call in a functional graph
    (``Layer._inbound_nodes``). For a functional model nested as a layer, ``layer.input`` and
    ``layer.output`` are its own graph's ends, not the tensors of its call in the outer graph."""
    node = layer._inbound_nodes[-1]
    return list(node.input_tensors), list(node.output_tensors)


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


def worker_count(strategy):
    """The number of workers a ``tf.distribute`` strategy spans (``extended._num_workers``: the
    public API gives only the replica count, which a one-worker cluster with several GPUs shares
    with a multi-worker one)."""
    return getattr(strategy.extended, "_num_workers", 1)


def variable_index(optimizer, variable):
    """The position of ``variable`` in ``optimizer``'s variable list, which indexes its slot
    variables (``BaseOptimizer._get_variable_index``: Keras keeps the mapping private)."""
    return optimizer._get_variable_index(variable)


def accumulation_state(optimizer, variables):
    """``(accumulators, micro_batches_seen)`` of an optimizer with ``gradient_accumulation_steps``:
    each variable's gradient accumulator (``BaseOptimizer._accumulated_gradients``) and the count
    of micro-batches applied so far (``_iterations``; the public ``iterations`` counts optimizer
    steps). Keras keeps both private; a replica-context accumulation needs them."""
    accumulators = [optimizer._accumulated_gradients[variable_index(optimizer, v)].value for v in variables]
    return accumulators, optimizer._iterations


def merge_call_on_replicas(optimizer, fn, *args):
    """``fn(distribution, *args)`` once in the cross-replica context of ``optimizer``'s
    ``tf.distribute`` strategy, from a replica context (``tf.__internal__.distribute.interim.
    maybe_merge_call`` and ``BaseOptimizer._distribution_strategy``: the merge TensorFlow's own
    optimizers use, not exported)."""
    import tensorflow as tf

    return tf.__internal__.distribute.interim.maybe_merge_call(fn, optimizer._distribution_strategy, *args)


class FunctionalRunHook:
    """Functional-model mixin: Keras runs a functional model's graph through
    ``Functional._run_through_graph`` (every call, and once more inside ``clone_model``); this
    calls ``self.run_graph(keras_run, *args, **kwargs)`` there instead, with Keras' own run as
    ``keras_run``. The public API has no hook that sees the graph being run: the model's identity
    through ``clone_model`` and per-block rematerialisation both need one."""

    def run_graph(self, keras_run, *args, **kwargs):
        return keras_run(*args, **kwargs)

    def _run_through_graph(self, *args, **kwargs):
        return self.run_graph(super()._run_through_graph, *args, **kwargs)


class ImageConverterHook:
    """keras-hub ``ImageConverter`` mixin: ``ImageConverter._call_python`` (the eager path that
    receives the raw images, lists and dicts included, before keras-hub's resize) calls
    ``self.convert_images(keras_call, inputs)``. keras-hub's public ``call`` is the graph path that
    resizes first, too late for an evaluation crop computed from the original size."""

    def convert_images(self, keras_call, inputs):
        return keras_call(inputs)

    def _call_python(self, inputs):
        return self.convert_images(super()._call_python, inputs)


def build_training_state(model, batch_spec):
    """Create the optimizer's slots and the compiled loss's and metrics' state before ``fit``,
    from ``batch_spec`` (a dataset's ``element_spec``: shapes and dtypes only), with Keras' own
    ``Trainer._symbolic_build``. Keras' TensorFlow trainer runs it only under a tf.distribute
    strategy; without one, the first traced training step creates these variables, and
    TensorFlow then traces the step a second time without them (a wasted trace per run: 2.3 s
    of NF-ResNet-14's start on 2 cores). The public ``optimizer.build`` covers only the slots."""
    model._symbolic_build(data_batch=batch_spec)


class WholeStepUpdate:
    """Optimizer mixin: Keras calls ``self.update_all(grads, variables, learning_rate)`` with all of
    a step's gradients at once, and runs its own per-variable ``update_step`` loop when that returns
    False (overrides ``BaseOptimizer._backend_update_step``, the one private method that sees a
    whole step: a multi-tensor update needs it); with gradient accumulation, each micro-batch goes
    to ``self.apply_accumulated(grads, variables)`` first (overrides
    ``BaseOptimizer._backend_apply_gradients``, where Keras accumulates)."""

    def update_all(self, grads, variables, learning_rate):
        return False

    def apply_accumulated(self, grads, variables):
        """One micro-batch of gradient accumulation done by the optimizer itself; False where
        Keras' own ``BaseOptimizer._backend_apply_gradients`` runs instead."""
        return False

    def _backend_apply_gradients(self, grads, trainable_variables):
        # (Keras' private per-call apply, which holds its gradient accumulation)
        if not (self.gradient_accumulation_steps and self.apply_accumulated(grads, trainable_variables)):
            super()._backend_apply_gradients(grads, trainable_variables)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not self.update_all(grads, trainable_variables, learning_rate):
            super()._backend_update_step(grads, trainable_variables, learning_rate)


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
            multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and worker_count(strategy) > 1
            if reduction not in ("auto", "mean") or not multi_worker:
                return original(values, strategy, reduction)

            def mean(value):
                local = strategy.experimental_local_results(value)[0]
                return strategy.reduce("MEAN", value, axis=None if local.shape.rank == 0 else 0)

            return tree.map_structure(mean, values)

        reduce_per_replica._keras_nfnets_original = original
        trainer.reduce_per_replica = reduce_per_replica


KERAS_RANDOM_DRAWS = ("normal", "truncated_normal", "uniform")


@contextlib.contextmanager
def keras_random_draws_replaced(backend_name, replacements):
    """While the block runs, Keras' random draws on backend ``backend_name`` are
    ``replacements(originals, draw_seed)``'s functions (a dict by name, ``originals`` Keras' own
    by name, ``draw_seed`` Keras' seed-to-key function). Patches the functions
    ``keras.src.backend.<backend_name>.random.{normal,truncated_normal,uniform}``, which
    ``keras.random`` and every random initialiser call at each use, and uses
    ``keras.src.random.seed_generator.draw_seed``: no public hook reaches either."""
    import importlib

    from keras.src.random.seed_generator import draw_seed

    module = importlib.import_module(f"keras.src.backend.{backend_name}.random")
    originals = {name: getattr(module, name) for name in KERAS_RANDOM_DRAWS}
    replaced = replacements(originals, draw_seed)
    for name in KERAS_RANDOM_DRAWS:
        setattr(module, name, replaced[name])
    try:
        yield
    finally:
        for name in KERAS_RANDOM_DRAWS:
            setattr(module, name, originals[name])


def graph_nodes(model):
    """The operation nodes of a functional ``model`` in the order Keras runs them (deepest first:
    ``Function._nodes_by_depth``), input nodes left out."""
    return [node for depth in sorted(model._nodes_by_depth, reverse=True) for node in model._nodes_by_depth[depth]
            if node.operation and not node.is_input]


def run_graph_node(model, node, tensors, operation_fn):
    """Run one node of ``model``'s graph as ``Function._run_through_graph`` does (its arguments
    from ``tensors``, a dict by symbolic tensor id, which receives its outputs)."""
    from keras.src import tree

    args, kwargs = node.arguments.fill_in(tensors)
    operation = model._get_operation_for_node(node) if hasattr(model, "_get_operation_for_node") else node.operation
    outputs = operation_fn(operation)(*args, **kwargs)
    for symbolic, value in zip(node.outputs, tree.flatten(outputs)):
        tensors[id(symbolic)] = value


def graph_outputs(model, tensors):
    """``model``'s outputs from ``tensors`` (by symbolic tensor id), packed as its outputs are
    (``Function._outputs_struct``)."""
    from keras.src import tree

    return tree.pack_sequence_as(model._outputs_struct, [tensors[id(x)] for x in model.outputs])


def tensorflow_runs_onednn():
    """Whether this process's TensorFlow runs oneDNN kernels (``_pywrap_util_port.IsMklEnabled``:
    TensorFlow says so only in a start-up log line); None where the build does not say."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None
