"""Input pipelines on tf.data: sources (embedded digits, image folders, TFDS) and the paper's
preprocessing and augmentation (NF paper §5.1, App. C; NFNet paper App. A.3). Loaded on first use."""

from keras_nfnets._lazy import lazy_exports

__all__ = lazy_exports(__name__, {
    ".pipeline": ("eval_dataset", "train_dataset"),
    ".sources": ("DIGITS", "CorruptImageError", "Source", "check_images", "default_splits", "find_corrupt_images", "digits_source", "image_folder_source", "load_source",
                 "tfds_source"),
    ".transforms": ("EVAL_CROPS", "IMAGENET_MEAN", "IMAGENET_STD", "Augmentation", "EvalTransform", "crop_window",
                    "cutmix", "decode_and_crop", "inception_crop", "mix_batch", "mixup", "normalize", "train_image"),
    ".randaugment": ("RandAugment",),
})
