"""keras-hub's dense tasks with an NF encoder: ``RetinaNetObjectDetector`` and
``DeepLabV3ImageSegmenter`` built on an :class:`NFNetBackbone`'s ``pyramid_outputs``, and a
generated dataset (shapes on noise, with boxes and masks) with the two quality figures:
the share of objects found at IoU ≥ 0.5 and the mean IoU of the masks."""

import numpy as np

from keras_nfnets.kerashub import _require  # noqa: F401
from keras_nfnets.kerashub.nfnet_backbone import NFNetBackbone

import keras_hub  # noqa: E402

SHAPE_CLASSES = ("square", "disc")  # class 0 and 1; segmentation adds 0 = background before them


def _encoder(backbone, image_shape):
    """An :class:`NFNetBackbone` from itself, a keras_nfnets model (its own layers), a preset
    directory or a builder or timm name."""
    import os

    from keras_nfnets.models.model import NFModel

    if isinstance(backbone, NFNetBackbone):
        return backbone
    if isinstance(backbone, NFModel):
        return NFNetBackbone.from_model(backbone)
    if isinstance(backbone, (str, os.PathLike)) and os.path.isdir(backbone):
        return NFNetBackbone.from_preset(os.fspath(backbone), image_shape=image_shape)  # a saved preset
    if isinstance(backbone, str):
        return NFNetBackbone(backbone, image_shape=image_shape)
    raise TypeError(f"The encoder is an NFNetBackbone, a keras_nfnets model, a preset directory or a builder or timm "
                    f"name; received {type(backbone).__name__}.")


def retinanet_detector(backbone, num_classes, image_shape=(None, None, 3), min_level=3, max_level=7, **kwargs):
    """keras-hub's ``RetinaNetObjectDetector`` on an NF encoder: ``backbone`` is an
    :class:`NFNetBackbone`, a keras_nfnets model, a builder or timm name (``"NFRegNetB0"``) or a
    preset directory (``save_preset``'s or ``save_to_preset``'s).
    Boxes are ``"yxyx"`` in pixels (keras-hub's default)."""
    encoder = _encoder(backbone, image_shape)
    levels = [int(level[1:]) for level in encoder.pyramid_outputs]
    if min_level not in levels:
        raise ValueError(f"min_level={min_level}: {encoder.name!r} has pyramid levels P{min(levels)}…P{max(levels)}; "
                         "RetinaNet takes its first level from them: choose min_level among them.")
    retina = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=min_level, max_level=max_level,
                                                use_p5=False, image_shape=image_shape)
    return keras_hub.models.RetinaNetObjectDetector(backbone=retina, num_classes=num_classes, **kwargs)


def deeplab_segmenter(backbone, num_classes, image_shape=(None, None, 3), pooling_level="P5", low_level="P2",
                      dilation_rates=(6, 12, 18), **kwargs):
    """keras-hub's ``DeepLabV3ImageSegmenter`` on an NF encoder (see :func:`retinanet_detector`):
    atrous spatial pyramid pooling on ``pooling_level``, the decoder's skip from ``low_level``."""
    encoder = _encoder(backbone, image_shape)
    for argument, level in (("pooling_level", pooling_level), ("low_level", low_level)):
        if level is not None and level not in encoder.pyramid_outputs:
            raise ValueError(f"{argument}={level!r}: {encoder.name!r} has the pyramid levels "
                             f"{', '.join(encoder.pyramid_outputs)}; choose one of them.")
    upsampling = 2 ** (int(pooling_level[1:]) - int(low_level[1:])) if low_level else 1
    deeplab = keras_hub.models.DeepLabV3Backbone(image_encoder=encoder, spatial_pyramid_pooling_key=pooling_level,
                                                 upsampling_size=upsampling, dilation_rates=list(dilation_rates),
                                                 low_level_feature_key=low_level, image_shape=image_shape)
    return keras_hub.models.DeepLabV3ImageSegmenter(backbone=deeplab, num_classes=num_classes, **kwargs)


def shapes_dataset(count, size=96, max_objects=3, seed=0):
    """``(images, boxes, labels, masks)``: ``count`` noisy RGB images (0–255) with 1…``max_objects``
    squares and discs of random colour and size; ``boxes`` ``(count, max_objects, 4)`` yxyx in
    pixels and ``labels`` ``(count, max_objects)`` (0 square, 1 disc, -1 padding); ``masks``
    ``(count, size, size)`` with 0 background, 1 square, 2 disc (a later shape covers an earlier)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(110.0, 30.0, (count, size, size, 3))
    boxes = np.zeros((count, max_objects, 4), "float32")
    labels = -np.ones((count, max_objects), "int32")
    masks = np.zeros((count, size, size), "int32")
    rows, cols = np.mgrid[0:size, 0:size]
    for i in range(count):
        for j in range(rng.integers(1, max_objects + 1)):
            side = rng.integers(size // 4, size // 2)
            top, left = rng.integers(0, size - side, 2)
            kind = rng.integers(0, 2)
            if kind == 0:
                region = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
            else:
                radius = side / 2.0
                region = (rows + 0.5 - top - radius) ** 2 + (cols + 0.5 - left - radius) ** 2 <= radius ** 2
            images[i][region] = rng.uniform(0, 255, 3)
            masks[i][region] = kind + 1
            boxes[i, j] = (top, left, top + side, left + side)
            labels[i, j] = kind
    images += rng.normal(0.0, 12.0, images.shape)
    return np.clip(images, 0, 255).astype("float32"), boxes, labels, masks


def box_iou(a, b):
    """IoU of yxyx boxes ``a`` (N, 4) and ``b`` (M, 4): an (N, M) array."""
    top, left = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    bottom, right = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def detection_recall(predictions, boxes, labels, threshold=0.5):
    """The share of ground-truth objects that a detection of the same class covers at IoU ≥
    ``threshold``, each detection used once (keras-hub's decoded predictions: ``boxes``,
    ``labels``, ``num_detections``)."""
    found = total = 0
    for i in range(len(boxes)):
        count = int(predictions["num_detections"][i])
        predicted, predicted_labels = np.asarray(predictions["boxes"][i][:count]), np.asarray(
            predictions["labels"][i][:count])
        used = set()
        for box, label in zip(boxes[i], labels[i]):
            if label < 0:
                continue
            total += 1
            if not count:
                continue
            ious = box_iou(box[None], predicted)[0]
            for k in np.argsort(-ious):
                if ious[k] < threshold:
                    break
                if k not in used and predicted_labels[k] == label:
                    used.add(k)
                    found += 1
                    break
    return found / max(total, 1)


def mean_iou(predicted, masks, num_classes):
    """Mean over classes (background included) of the intersection over union of class masks."""
    ious = []
    for c in range(num_classes):
        inter = np.sum((predicted == c) & (masks == c))
        union = np.sum((predicted == c) | (masks == c))
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


def detect(detector, images, batch_size=16):
    """The detector's decoded predictions (``boxes``, ``labels``, ``confidence``,
    ``num_detections``) on ``images``, batch by batch with a known batch size: keras-hub's
    non-max suppression needs it, which ``predict`` on TensorFlow does not give it."""
    import keras

    parts = []
    for start in range(0, len(images), batch_size):
        batch = keras.ops.convert_to_tensor(images[start:start + batch_size])
        decoded = detector.decode_predictions(detector(batch, training=False), batch)
        parts.append({key: keras.ops.convert_to_numpy(value) for key, value in decoded.items()})
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
