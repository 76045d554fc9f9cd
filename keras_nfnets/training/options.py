"""The choices and defaults of :func:`~keras_nfnets.training.train`, as plain data (no Keras
import): the ``nfnets`` command line offers exactly these."""

DEFAULT_MODEL = "NFResNet14"
DEFAULT_DATASET = "digits"
AUGMENT_CHOICES = ("default", "paper", "none")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = ("auto", True, False)  # the command line: --jit-compile auto | true | false
