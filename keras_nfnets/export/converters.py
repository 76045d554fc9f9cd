"""Converters: a folded model as a SavedModel, a LiteRT (TFLite) flatbuffer of built-in ops only,
or ONNX; each target is checked before any work."""

import contextlib
import os

import numpy as np

from keras_nfnets import _compat, _files
from keras_nfnets.export.folding import fold_weight_standardization
from keras_nfnets.export.formats import FORMAT_REQUIREMENTS, FORMAT_SUFFIXES, QUANTIZATIONS  # noqa: F401


@contextlib.contextmanager
def native_grouped_convolutions(unfused_bias=False):
    """Within this context, Keras built-in convolutions run as TensorFlow's own Conv2D op instead of
    Keras' XLA wrapper for grouped convs: TFLite and ONNX converters then see a plain, natively
    convertible grouped conv, and a folded model traced here runs its grouped convs at native speed
    (e.g. ``with native_grouped_convolutions(): serve = tf.function(folded)``). For inference only:
    TensorFlow's grouped forward kernel exists in every CPU build (with oneDNN off too: only the
    gradients need oneDNN there), so float32 always takes it; another dtype takes it where the
    device's probe says so, else Keras' own path. ``unfused_bias``: a graph TensorFlow itself will
    run (a SavedModel) keeps each grouped conv apart from the BiasAdd after it (an EnsureShape
    between them): where oneDNN is off, TensorFlow's graph optimizer fuses the two into a kernel
    that has no grouped form and fails ("Fused conv implementation does not support grouped
    convolutions")."""
    import tensorflow as tf

    from keras_nfnets.layers.conv_ops import current_device_type, native_grouped_conv_supported

    device_type = current_device_type()

    def forward_native(dtype):
        return dtype == tf.float32 or native_grouped_conv_supported(device_type, dtype.name)

    def conv(original, inputs, kernel, strides, padding, data_format, dilation_rate):
        if len(inputs.shape) == 4 and data_format in (None, "channels_last") and forward_native(inputs.dtype):
            outputs = tf.nn.convolution(inputs, kernel, strides, padding.upper(), dilations=dilation_rate)
            if unfused_bias and kernel.shape[2] != inputs.shape[-1]:  # grouped
                outputs = tf.ensure_shape(outputs, [None] + list(outputs.shape[1:]))
            return outputs
        return original(inputs, kernel, strides, padding, data_format, dilation_rate)

    with _compat.keras_tensorflow_conv(conv):
        yield


def _serving_function(folded, input_name, unfused_bias=False):
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(folded.input.shape[1:]), tf.float32, name=input_name)

    @tf.function(input_signature=[spec])
    def serve(images):
        return folded(images, training=False)

    with native_grouped_convolutions(unfused_bias):
        concrete = serve.get_concrete_function()
    return serve, concrete




def check_export_target(path, fmt):
    """Before any slow work: the format's optional packages are installed, ``path`` fits the
    format (``.tflite`` / ``.onnx`` file, a directory for ``saved_model``), and its parent
    directory exists (created if missing, for every format) and is writable, and nothing is at
    ``path`` yet (an empty folder for a SavedModel): an export never replaces a file. Returns the path."""
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
    _files.check_new_path(path, directory_ok_if_empty=fmt == "saved_model")
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
    serve, concrete = _serving_function(folded, input_name, unfused_bias=True)  # TensorFlow runs it, on any CPU
    module = tf.Module()
    module.model = folded
    module.serve = serve
    staging = _files.staging_directory(path)  # a failed save leaves nothing at `path`
    try:
        tf.saved_model.save(module, staging, signatures={"serving_default": concrete})
        _files.move_directory_into_place(staging, path)
    finally:
        if os.path.isdir(staging):
            import shutil

            shutil.rmtree(staging)
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
    ops = set()

    def write(temporary):
        with open(temporary, "wb") as f:
            f.write(flatbuffer)
        ops.update(tflite_op_names(temporary))
        flex = sorted(op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE"))
        if flex:  # refused before the file is in place
            raise RuntimeError(f"The TFLite file would contain non-built-in ops {flex}: it would need the Flex "
                               "delegate. Nothing was written.")

    _files.write_file_into_place(path, write)
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
    def write(temporary):
        import onnx

        with native_grouped_convolutions():
            tf2onnx.convert.from_function(function, input_signature=spec, opset=opset, output_path=temporary)
        try:  # an op tf2onnx could not convert stays a TensorFlow node: refused before the file is in place
            onnx.checker.check_model(temporary, full_check=True)
        except Exception as error:  # onnx raises its own ValidationError / InferenceError types
            raise RuntimeError(f"tf2onnx produced an invalid ONNX graph ({str(error).splitlines()[0][:300]}); "
                               "nothing was written. Export a SavedModel or TFLite file instead.") from error

    _files.write_file_into_place(path, write)
    return folded
