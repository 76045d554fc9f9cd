"""Walking a functional Keras model layer by layer: shared by weight folding (export) and Signal
Propagation Plots, which both re-run a model's graph with their own per-layer step."""

from keras_nfnets import _compat


def inbound_tensors(layer):
    """The symbolic tensors ``layer`` was called on, as a list."""
    return list(layer.input) if isinstance(layer.input, (list, tuple)) else [layer.input]


def consumer_counts(model):
    """``{id(tensor): number of layers (and model outputs) that read it}``."""
    counts = {}
    for layer in model.layers:
        for tensor in inbound_tensors(layer):
            if tensor is not None:
                counts[id(tensor)] = counts.get(id(tensor), 0) + 1
    for tensor in model.outputs:
        counts[id(tensor)] = counts.get(id(tensor), 0) + 1
    return counts


def producer(tensor):
    """The layer that produced ``tensor``."""
    return _compat.producer_layer(tensor)


def propagate(model, input_values, step, release=False):
    """Run ``step(layer, values_of_its_inputs, its_input_tensors)`` for every non-input layer of the
    functional ``model`` in order, feeding each step the values earlier steps returned.

    ``input_values`` are the values of ``model.inputs``. With ``release`` a value is dropped as soon
    as its last consumer has run (a deep model then never holds more than a block's worth).
    Returns the values of ``model.outputs``.
    """
    import keras

    if not isinstance(model, keras.Model) or getattr(model, "inputs", None) is None:
        raise TypeError(f"Expected a functional keras.Model (as the builders return); received {type(model).__name__}.")
    values = {id(tensor): value for tensor, value in zip(model.inputs, input_values)}
    remaining = consumer_counts(model) if release else None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        nested = isinstance(layer, keras.Model) and getattr(layer, "inputs", None) is not None
        inbound = _compat.call_tensors(layer)[0] if nested else inbound_tensors(layer)
        values[id(layer.output)] = step(layer, [values[id(t)] for t in inbound], inbound)
        if nested:  # its call's outputs in this graph are other tensors than its own outputs
            for tensor in _compat.call_tensors(layer)[1]:
                values[id(tensor)] = values[id(layer.output)]
        if release:
            for tensor in inbound:
                remaining[id(tensor)] -= 1
                if remaining[id(tensor)] == 0:
                    del values[id(tensor)]
    return [values[id(t)] for t in model.outputs]


def inline_nested_models(model):
    """The same network as one flat functional model of copied layers (same configs and
    weights): nested functional models (a keras-hub task's backbone) are opened in place. Copies,
    so that every layer of the result has one call, as :func:`propagate` needs. ``model`` itself
    when nothing is nested."""
    import keras

    def is_functional(layer):
        return isinstance(layer, keras.Model) and getattr(layer, "inputs", None) is not None

    if not any(is_functional(layer) for layer in model.layers):
        return model

    def call(layer, args, inbound):
        if is_functional(layer):
            outputs = propagate(layer, args, call)
            return outputs[0] if len(outputs) == 1 else outputs
        copy = layer.__class__.from_config(layer.get_config())
        output = copy(args if len(args) > 1 else args[0])
        copy.set_weights(layer.get_weights())
        return output

    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]
    outputs = propagate(model, inputs, call)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                       name=model.name)
