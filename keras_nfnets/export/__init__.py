"""Deployment: fold Scaled WS and the NF scalars into plain weights (:mod:`.folding`), write a
SavedModel, TFLite or ONNX file (:mod:`.converters`), and check it against the Keras model
(:mod:`.verification`)."""

from keras_nfnets.export.converters import (
    FORMAT_REQUIREMENTS,
    FORMAT_SUFFIXES,
    QUANTIZATIONS,
    check_export_target,
    export_onnx,
    export_saved_model,
    export_tflite,
    native_grouped_convolutions,
    tflite_op_names,
)
from keras_nfnets.export.folding import FOLDERS, fold_weight_standardization
from keras_nfnets.export.verification import run_exported, sample_images, verify_export

__all__ = ["FOLDERS", "FORMAT_REQUIREMENTS", "FORMAT_SUFFIXES", "QUANTIZATIONS", "check_export_target", "export_onnx",
           "export_saved_model", "export_tflite", "fold_weight_standardization", "native_grouped_convolutions",
           "run_exported", "sample_images", "tflite_op_names", "verify_export"]
