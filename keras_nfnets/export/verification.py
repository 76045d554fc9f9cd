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


# The least top-1 agreement with the Keras model an exported classifier must reach on the
# verification images, by TFLite quantization (None: float32 formats, SavedModel, ONNX). Measured
# on a trained digits run's 360 held-out images: 100% agreement for every one of them, int8
# included (its 7.6e-2 of the logit scale moves no prediction there).
AGREEMENT_BOUNDS = {None: 0.99, "float16": 0.99, "dynamic": 0.95, "int8": 0.9}


def verify_export(model, path, inputs, labels=None, quantization=None, batch_size=64):
    """Compare an exported artifact with the Keras ``model`` on ``inputs`` (what the user cares
    about: the task's images, e.g. a run's held-out split): the largest difference, absolute and
    relative to the output scale, the top-1 agreement and, with ``labels`` (class indices), the
    accuracy of each. ``informative`` is False when the model's outputs do not depend on the input
    (random weights with a zero-initialised classifier): equal outputs then prove nothing. ``passed``:
    informative, and the agreement at least ``agreement_bound`` (:data:`AGREEMENT_BOUNDS`)."""
    inputs = np.asarray(inputs, "float32")
    chunks = range(0, len(inputs), batch_size)
    expected = np.concatenate([keras.ops.convert_to_numpy(model(inputs[i:i + batch_size], training=False))
                               for i in chunks])
    actual = np.concatenate([run_exported(path, inputs[i:i + batch_size]) for i in chunks])
    diff = float(np.abs(actual - expected).max())
    scale = max(float(np.abs(expected).max()), 1e-12)
    spread = float(np.abs(expected - expected[:1]).max())
    result = dict(images=len(inputs), max_abs_diff=diff, relative_diff=diff / scale,
                  informative=spread > 1e-6 * scale, agreement_bound=AGREEMENT_BOUNDS[quantization])
    result["passed"] = result["informative"]
    if expected.ndim == 2:
        result["top1_agreement"] = float(np.mean(actual.argmax(-1) == expected.argmax(-1)))
        result["passed"] = result["informative"] and result["top1_agreement"] >= result["agreement_bound"]
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            result["keras_accuracy"] = float(np.mean(expected.argmax(-1) == labels))
            result["exported_accuracy"] = float(np.mean(actual.argmax(-1) == labels))
    return result
