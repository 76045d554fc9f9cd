"""A small harness for layer and variant tests, as keras-hub's ``TestCase`` serves its layers and
backbones (``run_layer_test``, ``run_backbone_test``): the checks every layer and every model
family must pass, written once. The keras-hub roles have keras-hub's own harness
(tests/kerashub/test_kerashub.py).

``TOY`` holds each family's block types at toy widths (one block per stage), so that a variant
test builds in a second and an XLA compile takes seconds."""

import dataclasses
import os
import tempfile

import numpy as np

import keras
from keras import ops

TOY = {  # family -> its variant with one block per stage at small widths (dropout and stochastic depth off)
    "nf_resnet": dict(base="NFResNet26", depths=(1, 1, 1, 1), widths=(32, 64, 96, 128), stem_width=16),
    "nf_regnet": dict(base="NFRegNetB0", depths=(1, 1, 1, 1)),
    "nfnet": dict(base="NFNetF0", depths=(1, 1, 1, 1), widths=(32, 64, 96, 128), stem_width=16, group_width=16,
                  final_conv_channels=256),
    # timm's layout: ECA attention, symmetric padding ("same" in timm's sense), its own stem
    "eca_nfnet": dict(base="ECANFNetL0", depths=(1, 1, 1, 1), widths=(32, 64, 96, 128), stem_width=16, group_width=16,
                      final_conv_channels=256),
}


def toy_config(family, **changes):
    """``family``'s :class:`~keras_nfnets.NFConfig` at toy size (:data:`TOY`), with ``changes``."""
    from keras_nfnets.applications import BUILDERS

    row = dict(TOY[family])
    config = BUILDERS[row.pop("base")].config
    return dataclasses.replace(config, **{"name": f"toy_{family}", "drop_rate": 0.0, "stochastic_depth_rate": 0.0,
                                          **row, **changes})


def build_named(name, **arguments):
    """The builder ``name``'s model, or for ``toy_FAMILY`` that family's toy variant, with the
    builders' keyword ``arguments`` (``input_shape``, ``classes``, ...)."""
    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.models import build_nf_model

    if name.startswith("toy_"):
        return build_nf_model(toy_config(name.removeprefix("toy_")), **arguments)
    return BUILDERS[name](**arguments)


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(ops.cast(x, "float32")))


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape, *, expected_trainable_weights,
                   seed=0):
    """What every layer must do: its output has ``expected_output_shape`` (eagerly and as Keras
    infers it symbolically) and its ``expected_trainable_weights`` count; ``get_config`` /
    ``from_config`` and Keras' serialization rebuild it, and the rebuilt layer with the same
    weights gives the same output; a model holding it round-trips through a ``.keras`` file
    (Keras' own loader, no custom objects passed); every trainable weight gets a finite gradient;
    under ``mixed_bfloat16`` it computes in bfloat16 and keeps its variables in float32."""
    x = np.random.default_rng(seed).standard_normal(input_shape).astype("float32")
    layer = layer_cls(**init_kwargs)
    y = layer(x)
    assert tuple(y.shape) == tuple(expected_output_shape), (y.shape, expected_output_shape)
    symbolic = layer_cls(**init_kwargs)(keras.Input(batch_shape=input_shape))
    assert tuple(symbolic.shape) == tuple(expected_output_shape), (symbolic.shape, expected_output_shape)
    assert len(layer.trainable_weights) == expected_trainable_weights, [w.path for w in layer.trainable_weights]

    config = layer.get_config()
    for clone in (layer_cls.from_config(config),
                  keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))):
        assert type(clone) is layer_cls and clone.get_config() == config
        clone(x)
        clone.set_weights(layer.get_weights())
        np.testing.assert_array_equal(_numpy(clone(x)), _numpy(y))

    inputs = keras.Input(batch_shape=input_shape)
    model = keras.Model(inputs, layer_cls(**init_kwargs)(inputs))
    expected = _numpy(model(x))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "layer.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(_numpy(loaded(x)), expected)

    if layer.trainable_weights:
        gradients = _gradients(layer, x)
        for weight, gradient in zip(layer.trainable_weights, gradients):
            assert gradient is not None and np.isfinite(_numpy(gradient)).all(), weight.path

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = layer_cls(**init_kwargs)
        out = mixed(x)
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16", out.dtype
        assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in mixed.weights)
    finally:
        keras.config.set_dtype_policy(previous)


def _gradients(layer, x):
    """d(sum of squares of the output)/d(each trainable weight), on the running backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.cast(layer(x, training=True), "float32")))
        return tape.gradient(loss, layer.trainable_weights)
    if backend == "jax":
        import jax

        values = [w.value for w in layer.trainable_weights]
        non_trainable = [w.value for w in layer.non_trainable_weights]

        def loss(trainable):
            out, _ = layer.stateless_call(trainable, non_trainable, x, training=True)
            return ops.sum(ops.square(ops.cast(out, "float32")))

        return jax.grad(loss)(values)
    import torch

    out = layer(torch.as_tensor(x), training=True)
    loss = (out.float() ** 2).sum()
    return torch.autograd.grad(loss, [w.value for w in layer.trainable_weights])


def run_variant_test(config, image_size=32, classes=10, seed=0):
    """What every model family must do, on ``config`` (a toy variant): it builds as a functional
    model with ``classes`` logits; its parameters are those Keras counts for its layers; a
    ``.keras`` file and ``keras.models.clone_model`` give the same logits and keep what the model
    is (its ``NFConfig``); rebuilt from ``get_config`` it has the same layers and shapes; the
    features without the top have the width the config gives."""
    from keras_nfnets.models import build_nf_model

    model = build_nf_model(config, input_shape=(image_size, image_size, 3), classes=classes,
                           classifier_activation=None)
    x = np.random.default_rng(seed).standard_normal((2, image_size, image_size, 3)).astype("float32")
    logits = _numpy(model(x))
    assert logits.shape == (2, classes) and np.isfinite(logits).all()
    assert model.count_params() == sum(int(np.prod(w.shape)) for w in model.weights)
    assert model.architecture == config

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "variant.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(_numpy(loaded(x)), logits)
    assert loaded.architecture == config

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(_numpy(clone(x)), logits)
    assert clone.architecture == config

    rebuilt = model.__class__.from_config(model.get_config())
    assert [(l.name, l.__class__) for l in rebuilt.layers] == [(l.name, l.__class__) for l in model.layers]
    assert [tuple(w.shape) for w in rebuilt.weights] == [tuple(w.shape) for w in model.weights]

    features = build_nf_model(config, input_shape=(image_size, image_size, 3), include_top=False)
    width = config.final_conv_channels or config.widths[-1]
    assert features.output.shape[-1] == width, (features.output.shape, width)
    return model
