"""The choices and defaults of :func:`~keras_nfnets.training.train`, as plain data (no Keras
import): the ``nfnets`` command line offers exactly these."""

DEFAULT_MODEL = "NFResNet14"
DEFAULT_DATASET = "digits"
AUGMENT_CHOICES = ("default", "paper", "none")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = ("auto", True, False)  # the command line: --jit-compile auto | true | false

# Dataset-specific defaults. Digits: 8×8 ink on black, not flipped, mildly cropped, scaled to
# [0, 1] rather than centred (ImageNet's mean would turn the empty background into a large
# constant whose zero-padded borders dominate an unnormalised net's first activations). Its
# recipe trains 1,437 images for 15 epochs at batch 48 with 4× the paper's LR per 256 and crops of
# 80-100% of the area: 98.9-99.7% over seeds 0-4 (batch 64, LR 0.1 per 256, 60-100% crops gave
# 96.1-96.9% in the same time; tools/digits_seeds.py, docs/training.md).
DATASET_DEFAULTS = {
    "digits": dict(image_size=32, batch_size=48, epochs=15, flip=False, area_range=(0.8, 1.0), eval_crop="resize",
                   augmentation=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), learning_rate_per_256=0.4),
}
