"""Where images come from: scikit-learn's digits (embedded), an image folder, or TFDS by name.

Every source yields ``(uint8 image (H, W, 3), int64 label)`` pairs and says how many examples
and classes it has, so pipelines and recipes can size epochs and classifiers from it.
"""

import dataclasses
import os
from typing import Callable, Optional, Tuple

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
DIGITS = "digits"


@dataclasses.dataclass
class Source:
    """A split of a dataset: ``dataset`` yields ``(uint8 (H, W, 3), int64)``; ``image_shape`` is
    ``(H, W, 3)`` when all images share one size (``None`` when they vary); ``lookup(i)`` returns
    example ``i`` for sources with random access (then epochs are exact stateless permutations);
    otherwise ``records`` yields compact fixed-shape records (encoded images) and ``decode(record)``
    turns one into ``(image, label)``, so windows of records can be shuffled statelessly;
    ``read(i)`` returns example ``i`` still encoded ``(bytes, label)`` (image folders)."""

    name: str
    split: str
    dataset: object
    num_examples: int
    num_classes: int
    class_names: Tuple[str, ...]
    image_shape: Optional[Tuple[int, int, int]] = None
    lookup: Optional[Callable] = None
    records: Optional[object] = None
    decode: Optional[Callable] = None
    read: Optional[Callable] = None

    @property
    def encoded(self):
        """Whether training can take the images still encoded (``read(i)`` or string ``records``),
        so that a JPEG is decoded inside its crop window alone."""
        if self.read is not None:
            return True
        if self.records is None:
            return False
        import tensorflow as tf

        spec = self.records.element_spec
        return isinstance(spec, tuple) and getattr(spec[0], "dtype", None) == tf.string


def _digits_split():
    """scikit-learn's 1,797 8×8 handwritten digits (0–16 ink), split 80/20 stratified, fixed seed."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The embedded 'digits' dataset needs scikit-learn: pip install 'keras-nfnets[train]'."
        ) from error
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype("uint8")
    images = np.repeat(images[..., None], 3, axis=-1)
    return train_test_split(images, digits.target.astype("int64"), test_size=0.2, stratify=digits.target,
                            random_state=0)


def digits_source(split="train"):
    """The embedded digits dataset (1,437 train / 360 test images), no download."""
    import tensorflow as tf

    if split not in ("train", "test", "validation"):
        raise ValueError(f"The digits dataset has splits 'train' and 'test'; received split={split!r}.")
    x_train, x_test, y_train, y_test = _digits_split()
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    images_t, labels_t = tf.constant(images), tf.constant(labels)
    return Source(
        name=DIGITS,
        split="train" if split == "train" else "test",
        dataset=tf.data.Dataset.from_tensor_slices((images, labels)),
        num_examples=len(labels),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        image_shape=(8, 8, 3),
        lookup=lambda i: (tf.gather(images_t, i), tf.gather(labels_t, i)),
    )


class CorruptImageError(ValueError):
    """Image files that cannot be decoded; ``files`` lists them."""

    def __init__(self, message, files):
        super().__init__(message)
        self.files = list(files)


def _looks_complete(path):
    """A fast structural check of an image file: the format's signature at the start and its end
    marker near the end (JPEG EOI, PNG IEND, GIF trailer, BMP's declared size), two small reads."""
    with open(path, "rb") as f:
        head = f.read(16)
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 4096))
        tail = f.read()
    if head.startswith(b"\xff\xd8\xff"):
        return b"\xff\xd9" in tail
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return b"IEND" in tail[-16:]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return b"\x3b" in tail[-16:]
    if head[:2] == b"BM" and len(head) >= 6:
        return int.from_bytes(head[2:6], "little") <= size
    return False


def _decodes(path):
    """Whether TensorFlow decodes ``path`` as an image (the decoder the pipelines use)."""
    import tensorflow as tf

    from keras_nfnets._startup import stderr_silenced

    try:
        with stderr_silenced():  # libjpeg prints "Input file read error" for a broken body: the caller says more
            tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return True
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        return False


def find_corrupt_images(paths):
    """The files among ``paths`` that cannot be decoded: each file gets the structural check, and
    those that fail it are decoded to confirm (a valid file is never reported)."""
    return [path for path in paths if os.path.getsize(path) == 0 or (not _looks_complete(path) and not _decodes(path))]


def check_images(paths, where):
    """Raise :class:`CorruptImageError` naming every file of ``paths`` that cannot be decoded,
    before any training starts (a run never stops half-way on a bad file)."""
    bad = find_corrupt_images(paths)
    if bad:
        shown = "\n  ".join(bad[:10]) + (f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise CorruptImageError(
            f"{len(bad)} of the {len(paths)} images in {where} cannot be decoded (empty, truncated or not an image); "
            f"remove or replace them, then run again:\n  {shown}", bad)


def _list_image_folder(root):
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    files = {}
    for name in classes:
        directory = os.path.join(root, name)
        files[name] = sorted(
            os.path.join(directory, f) for f in os.listdir(directory) if f.lower().endswith(IMAGE_EXTENSIONS)
        )
    return classes, files


def image_folder_source(path, split="train", validation_fraction=0.1, check=True):
    """Images in ``path/<class>/*.jpg`` (JPEG, PNG, BMP, GIF); classes are sorted folder names.

    If ``path/<split>`` exists (``train``, ``test``, ``validation``, ``val``), that folder is the
    split; otherwise every ``round(1 / validation_fraction)``-th file of each class (in sorted
    order) is held out as the ``test``/``validation`` split, the rest is ``train``.

    ``check``: look at every file first (two small reads each) and raise
    :class:`CorruptImageError` naming the files that cannot be decoded, so that a bad file
    stops a run before it starts rather than in the middle of an epoch.
    """
    import tensorflow as tf

    if not os.path.isdir(path):
        raise FileNotFoundError(f"Image folder {path!r} does not exist.")
    split_dir = next((os.path.join(path, s) for s in ([split] + (["val"] if split == "validation" else []))
                      if os.path.isdir(os.path.join(path, s))), None)
    held_out = None
    if split_dir is not None:
        root = split_dir
    elif split in ("train", "test", "validation"):
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"`validation_fraction` must be in (0, 1); received {validation_fraction!r}.")
        root, held_out = path, split != "train"
    else:
        raise ValueError(f"Image folder {path!r} has no {split!r} sub-folder; use 'train' or 'test'.")
    classes, files = _list_image_folder(root)
    every = max(2, int(round(1.0 / validation_fraction)))
    paths, labels = [], []
    for label, name in enumerate(classes):
        for index, file in enumerate(files[name]):
            if held_out is None or (index % every == 0) == held_out:
                paths.append(file)
                labels.append(label)
    if len(classes) < 2 or not paths:
        rule = ""
        if held_out is not None:
            total = sum(len(f) for f in files.values())
            rule = (f" (of its {total} images, every {every}th file of each class, from the first, is held out as "
                    f"the test split and the rest is the train split: give each class at least 2 images, or make "
                    f"{os.path.join(path, 'train')} and {os.path.join(path, 'test')} folders)")
        raise ValueError(
            f"Image folder {root!r} needs one sub-folder per class (at least 2) holding "
            f"{'/'.join(IMAGE_EXTENSIONS)} files; found {len(classes)} classes and {len(paths)} images for "
            f"split {split!r}{rule}."
        )
    if check:
        check_images(paths, f"{root!r} (split {split!r})")

    def load(file, label):
        image = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, "int64")))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    paths_t, labels_t = tf.constant(paths), tf.constant(np.asarray(labels, "int64"))
    return Source(os.path.basename(os.path.normpath(path)), split, dataset, len(paths), len(classes), tuple(classes),
                  lookup=lambda i: load(tf.gather(paths_t, i), tf.gather(labels_t, i)),
                  read=lambda i: (tf.io.read_file(tf.gather(paths_t, i)), tf.gather(labels_t, i)))


def tfds_source(name, split="train", data_dir=None, manual_dir=None, download=True):
    """A TFDS image-classification dataset (``as_supervised``), e.g. ``"oxford_flowers102"``,
    ``"imagenet2012"`` (needs ``manual_dir`` holding ILSVRC2012_img_train.tar and _val.tar)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("TFDS datasets need tensorflow-datasets: pip install 'keras-nfnets[train]'.") from error
    import tensorflow as tf

    try:  # TFDS's own datasets and any builder class the user has imported
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"Unknown dataset {name!r}: not 'digits', not an existing image folder, and not a TFDS dataset "
            "(see tfds.list_builders(), e.g. 'imagenet2012', 'oxford_flowers102', 'cifar10')."
        ) from None
    kwargs = {}
    if manual_dir is not None:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir))
        }
    image_key, label_key = builder.info.supervised_keys
    try:
        records, info = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, with_info=True,
                                  download=download, shuffle_files=False,
                                  decoders={image_key: tfds.decode.SkipDecoding()}, **kwargs)
    except AssertionError as error:  # TFDS reports missing manual downloads this way
        raise FileNotFoundError(
            f"TFDS could not prepare {name!r}: {error}. For imagenet2012 download ILSVRC2012_img_train.tar and "
            "ILSVRC2012_img_val.tar from image-net.org and pass their folder as `manual_dir`."
        ) from error
    label = info.features[label_key]
    if not hasattr(label, "num_classes"):
        raise ValueError(f"TFDS dataset {name!r} has no class label feature; an image classification dataset is needed.")
    feature = info.features[image_key]

    def decode(encoded, y):
        image = feature.decode_example(encoded)
        if image.shape[-1] != 3:
            image = tf.image.grayscale_to_rgb(image)
        return image, tf.cast(y, tf.int64)

    shape = tuple(feature.shape)
    fixed = None if None in shape else (shape[0], shape[1], 3)
    dataset = records.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    try:
        count = int(info.splits[split].num_examples)
    except KeyError:  # split metadata unavailable (e.g. tfds.testing.mock_data): count the records
        count = int(records.cardinality())
        if count < 0:
            count = int(records.reduce(0, lambda n, _: n + 1))
    return Source(name, split, dataset, count, int(label.num_classes),
                  tuple(label.names), fixed, records=records, decode=decode)


def default_splits(name, data_dir=None):
    """``(train split, evaluation split)`` of a dataset: ImageNet and datasets with no test split
    evaluate on ``validation``."""
    if name == DIGITS or os.path.isdir(name):
        return "train", "test"
    import tensorflow_datasets as tfds

    try:
        splits = tfds.builder(name, data_dir=data_dir).info.splits
        names = set(splits.keys()) or {"train", "test"}
    except Exception:  # metadata unavailable before preparation: TFDS's usual names
        names = {"train", "test"}
    evaluation = "test" if "test" in names else "validation" if "validation" in names else "train"
    return "train", evaluation


def load_source(name, split="train", data_dir=None, manual_dir=None, download=True):
    """``"digits"`` (embedded), a folder path, or a TFDS name → :class:`Source`."""
    if name == DIGITS:
        return digits_source(split)
    if os.path.isdir(name):
        return image_folder_source(name, split)
    if os.sep in name or name.startswith("."):
        raise FileNotFoundError(f"Dataset folder {name!r} does not exist.")
    return tfds_source(name, split, data_dir=data_dir, manual_dir=manual_dir, download=download)
