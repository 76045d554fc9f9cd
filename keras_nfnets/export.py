"""Deployment: fold Scaled WS and the NF scalars into plain weights; SavedModel, TFLite, ONNX.

Scaled WS depends only on the weights (paper §4.2), so at inference each ``ScaledWSConv2D`` is a
plain convolution with the standardized, gain-scaled kernel. The scalars the NF structure adds
(γ of the activations, 1/β, α, the SkipInit gain, the SE ×2) are positive-homogeneous factors
that travel through linear layers and are absorbed into the next or previous convolution or
dense layer wherever that is exact; the folded model holds only Keras built-in layers.
"""

import contextlib
import dataclasses
import os
from typing import Callable, Optional

import keras
import numpy as np
from keras import layers

from keras_nfnets import _compat, graph
from keras_nfnets.layers.activations import GammaActivation
from keras_nfnets.layers.blocks import ECA, SkipInitGain, SqueezeExcite, StochasticDepth, SymmetricMaxPooling2D
from keras_nfnets.layers.conv_ops import symmetric_padding
from keras_nfnets.layers.ws_conv import GroupConv2D

# GammaActivation names → Keras built-in activation names ("gelu" is tanh-GELU: built below).
_BUILTIN_ACTIVATIONS = {
    "relu": "relu", "silu": "silu", "gelu_exact": "gelu", "tanh": "tanh", "elu": "elu", "selu": "selu",
    "softplus": "softplus", "sigmoid": "sigmoid", "relu6": "relu6", "celu": "celu", "soft_sign": "softsign",
    "log_sigmoid": "log_sigmoid",
}
_PASS_THROUGH = (StochasticDepth, layers.Dropout)
QUANTIZATIONS = (None, "float16", "dynamic", "int8")


@dataclasses.dataclass
class _Value:
    """A tensor of the folded graph standing for ``scale × tensor`` of the original one.

    ``absorb(c)`` multiplies the producing layer's weights by ``c`` (returns False if it cannot)."""

    tensor: object
    scale: float = 1.0
    absorb: Optional[Callable[[float], bool]] = None


def _materialize(value):
    if value.scale == 1.0:
        return value.tensor
    if value.absorb is not None and value.absorb(value.scale):
        return value.tensor
    return layers.Rescaling(value.scale)(value.tensor)


def _conv(layer, value, consumers):
    """A built-in Conv2D with the standardized kernel, absorbing the input's pending scale."""
    kernel = keras.ops.convert_to_numpy(layer.effective_kernel()) * value.scale
    bias = layer.bias.numpy() if layer.bias is not None else np.zeros(layer.filters, "float32")
    x, padding = value.tensor, layer.padding
    if padding == "symmetric":
        pad_h, pad_w = symmetric_padding(layer.kernel_size, layer.strides, layer.dilation_rate)
        if pad_h or pad_w:
            x = layers.ZeroPadding2D(((pad_h, pad_h), (pad_w, pad_w)), name=f"{layer.name}_pad")(x)
        padding = "valid"
    conv = layers.Conv2D(
        layer.filters, layer.kernel_size, strides=layer.strides, padding=padding,
        dilation_rate=layer.dilation_rate, groups=layer.groups, name=layer.name,
    )
    out = conv(x)
    conv.set_weights([kernel.astype("float32"), bias.astype("float32")])

    def absorb(c):
        if consumers != 1:
            return False
        k, b = conv.get_weights()
        conv.set_weights([k * c, b * c])
        return True

    return _Value(out, 1.0, absorb)


def _activation(layer, value):
    x = _materialize(value)
    name = layer.activation
    if name == "identity":
        return _Value(x, layer.gamma)
    if name == "gelu":  # tanh-GELU (JAX's default, DeepMind's models): 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
        cube = layers.Multiply(name=f"{layer.name}_cube")([x, x, x])
        inner = layers.Add(name=f"{layer.name}_inner")([x, layers.Rescaling(0.044715, name=f"{layer.name}_c")(cube)])
        inner = layers.Rescaling(float(np.sqrt(2.0 / np.pi)), name=f"{layer.name}_scale")(inner)
        gate = layers.Activation("tanh", name=f"{layer.name}_tanh")(inner)
        gate = layers.Rescaling(0.5, offset=0.5, name=f"{layer.name}_gate")(gate)
        return _Value(layers.Multiply(name=layer.name)([x, gate]), layer.gamma)
    if name == "leaky_relu":
        return _Value(layers.LeakyReLU(negative_slope=0.01, name=layer.name)(x), layer.gamma)
    if name not in _BUILTIN_ACTIVATIONS:
        raise ValueError(f"Activation {name!r} of layer '{layer.name}' has no Keras built-in equivalent to fold into.")
    return _Value(layers.Activation(_BUILTIN_ACTIVATIONS[name], name=layer.name)(x), layer.gamma)


def _channel_attention(layer, value):
    """SE / ECA as built-in layers; the input scale s goes into fc1 (SE) or the 1-D conv (ECA), the
    gain joins the pending scale, and absorbing c later scales the input producer (and 1/c into fc1)."""
    x, s = value.tensor, value.scale
    channels = x.shape[-1]
    pooled = layers.GlobalAveragePooling2D(name=f"{layer.name}_squeeze")(x)
    if isinstance(layer, SqueezeExcite):
        fc1 = layers.Dense(layer.hidden_channels, activation="relu", name=f"{layer.name}_fc1")
        fc2 = layers.Dense(channels, activation="sigmoid", name=f"{layer.name}_fc2")
        gate = fc2(fc1(pooled))
        fc1.set_weights([layer.fc1.kernel.numpy() * s, layer.fc1.bias.numpy()])
        fc2.set_weights([layer.fc2.kernel.numpy(), layer.fc2.bias.numpy()])
        first = fc1
    else:
        sequence = layers.Reshape((channels, 1), name=f"{layer.name}_to_sequence")(pooled)
        first = layers.Conv1D(1, layer.kernel.shape[0], padding="same", use_bias=False, name=f"{layer.name}_conv")
        gate = layers.Activation("sigmoid", name=f"{layer.name}_gate")(first(sequence))
        first.set_weights([layer.kernel.numpy() * s])
        gate = layers.Reshape((channels,), name=f"{layer.name}_flat")(gate)
    gate = layers.Reshape((1, 1, channels), name=f"{layer.name}_expand")(gate)
    out = layers.Multiply(name=layer.name)([x, gate])
    inner_absorb = value.absorb

    def absorb(c):
        if inner_absorb is None or not inner_absorb(c):
            return False
        if c != 0:  # the gate saw c·x: undo it on the first linear map (at c = 0 the output is 0 anyway)
            weights = first.get_weights()
            first.set_weights([weights[0] / c] + weights[1:])
        return True

    return _Value(out, s * layer.gain, absorb)


def _symmetric_max_pool(layer, value):
    """PyTorch-style −∞-padded max pool from built-ins: replicate-padding is exact for max pooling
    because every padded cell is a copy of a cell inside the same window."""
    x = value.tensor
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None or layer.pool_size != 3:
        raise ValueError(
            f"Folding '{layer.name}' (symmetric max pooling) needs a static input size; rebuild the model with a "
            "concrete `input_shape` before folding or exporting."
        )
    first_row = layers.Cropping2D(((0, height - 1), (0, 0)), name=f"{layer.name}_top")(x)
    last_row = layers.Cropping2D(((height - 1, 0), (0, 0)), name=f"{layer.name}_bottom")(x)
    x = layers.Concatenate(axis=1, name=f"{layer.name}_rows")([first_row, x, last_row])
    first_col = layers.Cropping2D(((0, 0), (0, width - 1)), name=f"{layer.name}_left")(x)
    last_col = layers.Cropping2D(((0, 0), (width - 1, 0)), name=f"{layer.name}_right")(x)
    x = layers.Concatenate(axis=2, name=f"{layer.name}_cols")([first_col, x, last_col])
    pooled = layers.MaxPooling2D(layer.pool_size, layer.strides, padding="valid", name=layer.name)(x)
    return _Value(pooled, value.scale, None)


def _is_builtin(layer):
    return type(layer).__module__.startswith("keras.")


def fold_weight_standardization(model):
    """A new functional model with the WS conv kernels and NF scalars folded into built-in layers.

    Every ``ScaledWSConv2D`` becomes a ``keras.layers.Conv2D`` holding ``γ·gain·(W−μ)/√(Nσ²)``;
    γ, 1/β, α, SkipInit gains and the SE ×2 are absorbed into neighbouring convolutions and dense
    layers where that is exact (a ``Rescaling`` layer remains only where it is not, e.g. a
    feature-map output). Stochastic depth and dropout are dropped (identity at inference).
    The result loads with ``keras.models.load_model`` without importing keras_nfnets.
    """
    if not isinstance(model, keras.Model) or getattr(model, "inputs", None) is None:
        raise TypeError("fold_weight_standardization expects a functional keras.Model (as the builders return).")
    consumers = graph.consumer_counts(model)
    new_inputs = [layers.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]

    def fold(layer, args, inbound):
        value = args[0]
        single = consumers.get(id(inbound[0]), 0) == 1
        if isinstance(layer, GroupConv2D):
            return _conv(layer, value, consumers.get(id(layer.output), 0))
        if isinstance(layer, GammaActivation):
            return _activation(layer, value)
        if isinstance(layer, (SqueezeExcite, ECA)):
            return _channel_attention(layer, value)
        if isinstance(layer, (layers.Rescaling, SkipInitGain)) and getattr(layer, "offset", 0.0) == 0.0:
            factor = float(layer.skip_gain.numpy()) if isinstance(layer, SkipInitGain) else float(layer.scale)
            return _Value(value.tensor, value.scale * factor, value.absorb if single else None)
        if isinstance(layer, _PASS_THROUGH):
            return _Value(value.tensor, value.scale, value.absorb if single else None)
        if isinstance(layer, SymmetricMaxPooling2D):  # max pooling commutes with a scale >= 0
            return _symmetric_max_pool(layer, value if value.scale >= 0 else _Value(_materialize(value)))
        if isinstance(layer, (layers.AveragePooling2D, layers.GlobalAveragePooling2D, layers.MaxPooling2D,
                              layers.GlobalMaxPooling2D)):
            if value.scale < 0:
                value = _Value(_materialize(value))
            clone = layer.__class__.from_config(layer.get_config())
            return _Value(clone(value.tensor), value.scale, None)
        if isinstance(layer, layers.Add):
            return _Value(layers.Add(name=layer.name)([_materialize(v) for v in args]))
        if isinstance(layer, layers.Dense):
            dense = layers.Dense.from_config(layer.get_config())
            out = dense(value.tensor)
            dense.set_weights([layer.kernel.numpy() * value.scale, layer.bias.numpy()])
            return _Value(out)
        if _is_builtin(layer):
            clone = layer.__class__.from_config(layer.get_config())
            out = clone([_materialize(v) for v in args] if len(args) > 1 else _materialize(value))
            clone.set_weights(layer.get_weights())
            return _Value(out)
        raise ValueError(
            f"Cannot fold layer '{layer.name}' of type {type(layer).__name__}: it is neither a keras_nfnets "
            "layer nor a Keras built-in. Replace it with built-in layers, or export the unfolded model."
        )

    outputs = [_materialize(v) for v in graph.propagate(model, [_Value(t) for t in new_inputs], fold)]
    return keras.Model(
        new_inputs if len(new_inputs) > 1 else new_inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        name=f"{model.name}_folded",
    )


@contextlib.contextmanager
def native_grouped_convolutions():
    """Within this context, Keras built-in convolutions run as TensorFlow's own Conv2D op instead of
    Keras' XLA wrapper for grouped convs: TFLite and ONNX converters then see a plain, natively
    convertible grouped conv, and a folded model traced here runs its grouped convs at native speed
    (e.g. ``with native_grouped_convolutions(): serve = tf.function(folded)``). Where the device
    has no native grouped kernel, Keras' own path is kept."""
    import tensorflow as tf

    from keras_nfnets.layers.conv_ops import current_device_type, native_grouped_conv_supported

    native = native_grouped_conv_supported(current_device_type())

    def conv(original, inputs, kernel, strides, padding, data_format, dilation_rate):
        if native and len(inputs.shape) == 4 and (data_format in (None, "channels_last")):
            return tf.nn.convolution(inputs, kernel, strides, padding.upper(), dilations=dilation_rate)
        return original(inputs, kernel, strides, padding, data_format, dilation_rate)

    with _compat.keras_tensorflow_conv(conv):
        yield


def _serving_function(folded, input_name):
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(folded.input.shape[1:]), tf.float32, name=input_name)

    @tf.function(input_signature=[spec])
    def serve(images):
        return folded(images, training=False)

    with native_grouped_convolutions():
        concrete = serve.get_concrete_function()
    return serve, concrete


# What each format needs beyond the core install (import name -> pip name), checked before any work.
FORMAT_REQUIREMENTS = {
    "saved_model": {},
    "tflite": {"ai_edge_litert": "ai-edge-litert"},
    "onnx": {"tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime"},
}
FORMAT_SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}


def check_export_target(path, fmt):
    """Before any slow work: the format's optional packages are installed, ``path`` fits the
    format (``.tflite`` / ``.onnx`` file, a directory for ``saved_model``), and its parent
    directory exists (created if missing, for every format) and is writable. Returns the path."""
    import importlib.util

    if fmt not in FORMAT_REQUIREMENTS:
        raise ValueError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMAT_REQUIREMENTS)}.")
    missing = [pip for module, pip in FORMAT_REQUIREMENTS[fmt].items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"{fmt} export needs {', '.join(missing)}: pip install \"keras-nfnets[export]\"")
    path = os.fspath(path)
    suffix = FORMAT_SUFFIXES.get(fmt)
    if suffix and not path.endswith(suffix):
        raise ValueError(f"A {fmt} export is a {suffix} file; received {path!r}.")
    if fmt == "saved_model" and os.path.isfile(path):
        raise ValueError(f"A SavedModel is a directory, but {path!r} is a file; choose another path.")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise OSError(f"Cannot create the output directory {parent!r}: {error.strerror}.") from error
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"Cannot write to {parent!r}; choose an output path in a writable directory.")
    return path


def export_saved_model(model, path, input_name="images"):
    """Fold, then write a TensorFlow SavedModel with a ``serving_default`` signature taking
    ``input_name`` (dynamic batch). Returns the folded model."""
    import tensorflow as tf

    path = check_export_target(path, "saved_model")
    folded = fold_weight_standardization(model)
    serve, concrete = _serving_function(folded, input_name)
    module = tf.Module()
    module.model = folded
    module.serve = serve
    tf.saved_model.save(module, os.fspath(path), signatures={"serving_default": concrete})
    return folded


def export_tflite(model, path, quantization=None, representative_data=None, input_name="images"):
    """Fold, then write a LiteRT (TFLite) flatbuffer made of built-in ops only.

    Args:
        quantization: ``None`` (float32), ``"float16"`` (fp16 weights), ``"dynamic"`` (int8
            weights, dynamic-range activations) or ``"int8"`` (full-integer ops; needs
            ``representative_data``, an iterable of input batches, and a static input size).
    Returns the op names in the file.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}; received {quantization!r}.")
    if quantization == "int8":
        if representative_data is None:
            raise ValueError("Full-integer int8 quantization needs `representative_data`: a few input batches.")
        if None in tuple(model.input.shape[1:3]):
            raise ValueError(
                "Full-integer int8 quantization needs a static input size (calibration fixes the ranges); build "
                "the model with a concrete `input_shape`."
            )
    path = check_export_target(path, "tflite")
    folded = fold_weight_standardization(model)
    _, concrete = _serving_function(folded, input_name)
    frozen = _compat.freeze_concrete_function(concrete)  # every weight becomes a constant
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], trackable_obj=folded)
    flatbuffer = _convert(converter, quantization, representative_data)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    ops = tflite_op_names(path)
    flex = sorted(op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE"))
    if flex:
        raise RuntimeError(f"The TFLite file contains non-built-in ops {flex}; it would need the Flex delegate.")
    return ops


def _convert(converter, quantization, representative_data):
    import tensorflow as tf

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        batches = list(representative_data)

        def representative_dataset():
            for batch in batches:
                batch = np.asarray(batch, "float32")
                for i in range(batch.shape[0]):
                    yield [batch[i:i + 1]]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    import warnings

    from keras_nfnets._startup import stderr_silenced

    # Quiet: the calibrator prints its settings to stderr and warns that float inputs carry no
    # quantization statistics (they are float by design); conversion errors still raise.
    with warnings.catch_warnings(), stderr_silenced():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return converter.convert()


def tflite_op_names(path):
    """The set of operator names in a ``.tflite`` file."""
    return _compat.tflite_op_names(path)


def export_onnx(model, path, opset=17, input_name="images"):
    """Fold, then convert to ONNX with tf2onnx. Returns the folded model."""
    path = check_export_target(path, "onnx")
    import tensorflow as tf
    import tf2onnx

    folded = fold_weight_standardization(model)
    spec = (tf.TensorSpec((None,) + tuple(folded.input.shape[1:]), tf.float32, name=input_name),)
    function = tf.function(lambda images: folded(images, training=False))
    with native_grouped_convolutions():
        tf2onnx.convert.from_function(function, input_signature=spec, opset=opset, output_path=os.fspath(path))
    return folded


def run_exported(path, inputs, num_threads=2):
    """Outputs of an exported artifact (SavedModel dir, ``.tflite`` or ``.onnx``) for ``inputs``."""
    inputs = np.asarray(inputs, "float32")
    path = os.fspath(path)
    if path.endswith(".tflite"):
        from ai_edge_litert.interpreter import Interpreter

        from keras_nfnets._startup import stderr_silenced

        with stderr_silenced():  # LiteRT logs "INFO: Created TensorFlow Lite XNNPACK delegate" from C++
            interpreter = Interpreter(model_path=path, num_threads=num_threads)
            detail = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(detail["index"], inputs.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], inputs)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    if path.endswith(".onnx"):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: inputs})[0]
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]
    return list(serve(tf.constant(inputs)).values())[0].numpy()


def sample_images(count, size, seed=0):
    """``count`` smooth, natural-looking RGB images (low-frequency colour fields with edges),
    normalised with ImageNet mean/std: inputs for int8 calibration and export checks when no real
    images are at hand."""
    import tensorflow as tf

    from keras_nfnets.imagenet import preprocess_input

    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 4, 4, 3)).astype("float32")
    images = tf.image.resize(coarse, (size, size), method="bicubic").numpy()
    yy, xx = np.mgrid[0:size, 0:size] / size
    for image in images:  # one straight edge per image, as objects give
        angle, offset = rng.uniform(0, np.pi), rng.uniform(0.3, 0.7)
        mask = (np.cos(angle) * xx + np.sin(angle) * yy) > offset
        image[mask] = image[mask] * 0.5 + rng.uniform(0, 255, 3) * 0.5
    return preprocess_input(np.clip(images, 0, 255))


def verify_export(model, path, inputs):
    """Compare an exported artifact with the Keras ``model`` on ``inputs``: max abs difference,
    difference relative to the output scale, and top-1 agreement. ``informative`` is False when the
    model's outputs do not depend on the input (e.g. random weights with a zero-initialised
    classifier): equal outputs then prove nothing about the network."""
    expected = keras.ops.convert_to_numpy(model(np.asarray(inputs, "float32"), training=False))
    actual = run_exported(path, inputs)
    diff = float(np.abs(actual - expected).max())
    scale = max(float(np.abs(expected).max()), 1e-12)
    spread = float(np.abs(expected - expected[:1]).max())
    result = dict(max_abs_diff=diff, relative_diff=diff / scale, informative=spread > 1e-6 * scale)
    if expected.ndim == 2:
        result["top1_agreement"] = float(np.mean(actual.argmax(-1) == expected.argmax(-1)))
    return result
