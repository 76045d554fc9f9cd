"""The export formats and quantizations, as plain data (no Keras import): the ``nfnets export``
command offers exactly these."""

# What each format needs beyond the core install (import name -> pip name), checked before any work.
FORMAT_REQUIREMENTS = {
    "saved_model": {},
    "tflite": {"ai_edge_litert": "ai-edge-litert"},
    "onnx": {"tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime"},
}
FORMATS = tuple(FORMAT_REQUIREMENTS)
FORMAT_SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}
QUANTIZATIONS = (None, "float16", "dynamic", "int8")
