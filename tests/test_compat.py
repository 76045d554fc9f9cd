"""Every private Keras / TensorFlow / LiteRT interface keras_nfnets uses lives in _compat.py; each is
exercised here by name, so a release that breaks one fails this file first (issue 22)."""

import numpy as np
import pytest

import keras
from keras_nfnets import _compat


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x))


def test_producer_layer():
    model = _tiny_model()
    assert _compat.producer_layer(model.output).name == "pool"
    assert _compat.producer_layer(model.get_layer("pool").input).name == "conv"


def test_all_sublayers():
    from keras_nfnets.layers import SqueezeExcite

    inputs = keras.Input((4, 4, 8))
    model = keras.Model(inputs, SqueezeExcite(4, name="se")(inputs))
    found = _compat.all_sublayers(model)
    assert found[0] is model
    se = model.get_layer("se")
    assert se in found and se.fc1 in found and se.fc2 in found  # the nested Dense layers too
    assert se.fc1 not in model.layers


def test_freeze_concrete_function():
    import tensorflow as tf

    variable = tf.Variable(3.0)
    concrete = tf.function(lambda x: x * variable).get_concrete_function(tf.TensorSpec((), tf.float32))
    frozen = _compat.freeze_concrete_function(concrete)
    assert not frozen.variables and float(frozen(tf.constant(2.0))[0]) == 6.0


def test_tflite_op_names(tmp_path):
    import tensorflow as tf

    concrete = tf.function(lambda x: tf.nn.relu(x) + 1.0).get_concrete_function(tf.TensorSpec((1, 4), tf.float32))
    path = tmp_path / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([concrete]).convert())
    assert {"RELU", "ADD"} <= _compat.tflite_op_names(path)


def test_keras_tensorflow_conv_routes_keras_convolutions():
    calls = []

    def replacement(original, inputs, kernel, strides, padding, data_format, dilation_rate):
        calls.append(tuple(kernel.shape))
        return original(inputs, kernel, strides, padding, data_format, dilation_rate)

    model = _tiny_model()
    x = np.ones((1, 8, 8, 3), "float32")
    expected = keras.ops.convert_to_numpy(model(x))
    with _compat.keras_tensorflow_conv(replacement):
        got = keras.ops.convert_to_numpy(model(x))
    assert calls == [(3, 3, 3, 4)] and np.array_equal(got, expected)
    model(x)
    assert len(calls) == 1  # restored afterwards


def test_worker_count():
    import tensorflow as tf

    assert _compat.worker_count(tf.distribute.get_strategy()) == 1
    assert _compat.worker_count(tf.distribute.MirroredStrategy(["/cpu:0"])) == 1


def test_variable_index_and_the_whole_step_hook():
    class Recorder(_compat.WholeStepUpdate, keras.optimizers.SGD):
        take_over = False

        def update_all(self, grads, variables, learning_rate):
            self.seen = [_compat.variable_index(self, v) for v in variables]
            return self.take_over

    variables = [keras.Variable(np.ones(3, "float32")), keras.Variable(np.ones(2, "float32"))]
    optimizer = Recorder(0.5)
    optimizer.build(variables)
    grads = [np.ones(3, "float32"), np.ones(2, "float32")]
    optimizer.apply(grads, variables)
    assert optimizer.seen == [0, 1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[0]), 0.5)  # Keras' own step ran
    optimizer.take_over = True
    optimizer.apply(grads, variables)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[0]), 0.5)  # the hook took the step


def test_the_multi_worker_patch_leaves_other_strategies_to_keras():
    """The patch wraps Keras' reduce_per_replica once; for a strategy that is not multi-worker it
    returns what Keras' own function returns (the multi-worker path: tests/training/test_multi_worker.py)."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    model = _tiny_model()
    _compat.enable_keras_multi_worker_training(model)
    patched = trainer.reduce_per_replica
    original = patched._keras_nfnets_original
    assert original is not None and original is not patched
    _compat.enable_keras_multi_worker_training(model)  # patched once, not wrapped twice
    assert trainer.reduce_per_replica is patched
    for strategy in (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["/cpu:0"])):
        values = {"loss": tf.constant(1.5)}
        assert float(patched(values, strategy, "auto")["loss"]) == float(original(values, strategy, "auto")["loss"])


def test_call_tensors_of_a_nested_model():
    inner_input = keras.Input((4,))
    inner = keras.Model(inner_input, keras.layers.Dense(3, name="d")(inner_input), name="inner")
    outer_input = keras.Input((4,))
    called = inner(outer_input)
    inputs, outputs = _compat.call_tensors(inner)
    assert inputs[0] is outer_input and outputs[0] is called and outputs[0] is not inner.output


def test_build_training_state_spares_fit_a_second_trace():
    import tensorflow as tf

    class Counting(keras.Model):  # counts the traces of the training step (TensorFlow traces it)
        traces = 0

        def train_step(self, data):
            Counting.traces += 1
            return super().train_step(data)

    def compiled():
        inputs = keras.Input((8, 8, 3))
        outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
        model = Counting(inputs, outputs)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "categorical_crossentropy", metrics=["accuracy"])
        return model

    x, y = np.ones((8, 8, 8, 3), "float32"), np.eye(4, dtype="float32")[np.arange(8) % 4]
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    traces = {}
    for prebuilt in (False, True):
        model, Counting.traces = compiled(), 0
        if prebuilt:
            _compat.build_training_state(model, data.element_spec)
            assert model.optimizer.built and model.metrics_variables  # slots and metric state exist
        model.fit(data, epochs=1, verbose=0)
        traces[prebuilt] = Counting.traces
    assert traces == {False: 2, True: 1}  # Keras alone traces twice (variables made in the first trace)


def test_keras_random_draws_replaced_reaches_keras_random_and_the_initialisers():
    """The random draws keras.random and every random initialiser call are the module functions
    this patches (here on TensorFlow; on JAX, test_backends.py checks the size-class draws it
    carries against Keras' own values), and Keras' own come back after the block."""
    calls, seeds = [], []

    def replacements(originals, draw_seed):
        seeds.append(keras.ops.convert_to_numpy(draw_seed(5)))  # Keras' seed-to-key function: [seed, 0]

        def recorded(name):
            def draw(shape, *args, seed=None, **kwargs):
                calls.append((name, tuple(shape)))
                return originals[name](shape, *args, seed=seed, **kwargs)
            return draw
        return {name: recorded(name) for name in _compat.KERAS_RANDOM_DRAWS}

    keras.utils.set_random_seed(0)
    expected = [keras.ops.convert_to_numpy(v) for v in (keras.initializers.HeNormal()((3, 3, 4, 8)),
                                                        keras.initializers.GlorotUniform()((5, 2)),
                                                        keras.random.normal((6,)))]
    keras.utils.set_random_seed(0)
    with _compat.keras_random_draws_replaced("tensorflow", replacements):
        drawn = [keras.ops.convert_to_numpy(v) for v in (keras.initializers.HeNormal()((3, 3, 4, 8)),
                                                         keras.initializers.GlorotUniform()((5, 2)),
                                                         keras.random.normal((6,)))]
    assert calls == [("truncated_normal", (3, 3, 4, 8)), ("uniform", (5, 2)), ("normal", (6,))]
    assert [list(seed) for seed in seeds] == [[5, 0]]
    for a, b in zip(expected, drawn):
        np.testing.assert_array_equal(a, b)
    keras.initializers.HeNormal()((2, 2))
    assert len(calls) == 3  # restored

