"""Verification: run an exported artifact and compare it with the Keras model on the same images."""

import os

import keras
import numpy as np

def randomise_weights(model, seed=0, std=0.2):
    """Add N(0, ``std``²) noise to every weight that starts constant (biases, WS gains, SkipInit
    gains, zero-initialised kernels such as NF-RegNets' classifier), in place: a model whose
    every layer acts, for parity checks that must see a mix-up. Returns ``model``."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight.value)
        if value.ndim <= 1 or not value.any():
            weight.assign(value + rng.normal(0, std, value.shape).astype(value.dtype))
    return model


def run_exported(path, inputs, num_threads=None):
    """Outputs of an exported artifact (SavedModel dir, ``.tflite`` or ``.onnx``) for ``inputs``;
    ``num_threads``: the interpreter's threads (default: the runtime's own choice for this machine)."""
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
        if num_threads:
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
