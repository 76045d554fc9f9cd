"""Input pipelines on tf.data: sources (embedded digits, image folders, TFDS) and the paper's
preprocessing and augmentation (NF paper §5.1, App. C; NFNet paper App. A.3)."""

from keras_nfnets.data.pipeline import eval_dataset, train_dataset
from keras_nfnets.data.sources import (
    DIGITS,
    Source,
    default_splits,
    digits_source,
    image_folder_source,
    load_source,
    tfds_source,
)
from keras_nfnets.data.transforms import (
    EVAL_CROPS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augmentation,
    EvalTransform,
    inception_crop,
    mix_batch,
    normalize,
    train_image,
)
