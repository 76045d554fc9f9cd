"""Inference latency of an NF model as Keras (unfolded, folded), SavedModel and TFLite, in one run.

Prints batch-1 and batch-8 median latency (2 threads by default) as ratios to the unfolded Keras
model, plus artifact sizes. Usage: python tools/benchmark_inference.py [--model NFRegNetB0]
[--image-size 224] [--threads 2] [--repeats 20]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from timing import median_seconds  # noqa: E402


def directory_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="NFRegNetB0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from ai_edge_litert.interpreter import Interpreter

    from keras_nfnets import export as exporting
    from keras_nfnets.applications import BUILDERS

    size = args.image_size
    model = BUILDERS[args.model](input_shape=(size, size, 3))
    folded = exporting.fold_weight_standardization(model)
    work = tempfile.mkdtemp()
    saved_model_dir = os.path.join(work, "saved_model")
    exporting.export_saved_model(model, saved_model_dir)
    serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    tflite = {}
    for quantization in (None, "float16", "int8"):
        path = os.path.join(work, f"model_{quantization or 'fp32'}.tflite")
        calibration = [exporting.sample_images(8, size, seed=1)] if quantization == "int8" else None
        exporting.export_tflite(model, path, quantization=quantization, representative_data=calibration)
        tflite[quantization or "fp32"] = path
    keras_weights = os.path.join(work, "model.weights.h5")
    model.save_weights(keras_weights)

    def keras_runner(m, native=False):
        compiled = tf.function(lambda x: m(x, training=False))
        if native:  # trace once inside the context: the graph keeps TF's native grouped Conv2D
            with exporting.native_grouped_convolutions():
                compiled.get_concrete_function(tf.TensorSpec((None, size, size, 3), tf.float32))
        return lambda x: compiled(x).numpy()

    def tflite_runner(path, batch):
        interpreter = Interpreter(model_path=path, num_threads=args.threads)
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, (batch, size, size, 3))
        interpreter.allocate_tensors()
        output = interpreter.get_output_details()[0]["index"]

        def run(x):
            interpreter.set_tensor(index, x)
            interpreter.invoke()
            return interpreter.get_tensor(output)

        return run

    print(f"{args.model} at {size}px, {args.threads} threads, median of {args.repeats} runs")
    print(f"{'runtime':<22} {'batch 1 ms':>10} {'ratio':>7} {'batch 8 ms':>11} {'ratio':>7} {'size MB':>9}")
    rows = [
        ("Keras unfolded", lambda b: keras_runner(model), keras_weights),
        ("Keras folded (XLA grp)", lambda b: keras_runner(folded), None),
        ("Keras folded (native)", lambda b: keras_runner(folded, native=True), None),
        ("SavedModel (folded)", lambda b: (lambda x: serve(images=tf.constant(x))), saved_model_dir),
        ("TFLite fp32", lambda b: tflite_runner(tflite["fp32"], b), tflite["fp32"]),
        ("TFLite fp16", lambda b: tflite_runner(tflite["float16"], b), tflite["float16"]),
        ("TFLite int8", lambda b: tflite_runner(tflite["int8"], b), tflite["int8"]),
    ]
    baseline = {}
    for name, make, artifact in rows:
        cells = []
        for batch in (1, 8):
            x = exporting.sample_images(batch, size, seed=batch)
            run = make(batch)
            seconds = median_seconds(lambda: run(x), args.repeats)
            baseline.setdefault(batch, seconds)
            cells.append((seconds * 1000, baseline[batch] / seconds))
        size_mb = directory_size(artifact) / 1e6 if artifact else float("nan")
        print(f"{name:<22} {cells[0][0]:>10.1f} {cells[0][1]:>6.2f}x {cells[1][0]:>11.1f} {cells[1][1]:>6.2f}x "
              f"{size_mb:>9.1f}", flush=True)
    print("ratio = speed-up over the unfolded Keras model (higher is faster)")


if __name__ == "__main__":
    main()
