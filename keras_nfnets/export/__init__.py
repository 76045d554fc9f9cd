"""Deployment: fold Scaled WS and the NF scalars into plain weights (:mod:`.folding`), write a
SavedModel, TFLite or ONNX file (:mod:`.converters`), and check it against the Keras model
(:mod:`.verification`). Submodules load on first use (:mod:`.formats` is plain data)."""

from keras_nfnets._lazy import lazy_exports

__all__ = lazy_exports(__name__, {
    ".converters": ("check_export_target", "export_onnx", "export_saved_model", "export_tflite",
                    "native_grouped_convolutions", "tflite_op_names"),
    ".folding": ("FOLDERS", "fold_weight_standardization"),
    ".formats": ("FORMATS", "FORMAT_REQUIREMENTS", "FORMAT_SUFFIXES", "QUANTIZATIONS"),
    ".verification": ("AGREEMENT_BOUNDS", "randomise_weights", "run_exported", "sample_images", "verify_export"),
})
