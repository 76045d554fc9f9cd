"""``evaluate``: the accuracy (and top-5) of a trained model on a dataset split, with the run's
transform and loss."""

import os

from keras_nfnets.data import transforms
from keras_nfnets.preprocessing import eval_transform
from keras_nfnets.training.run_dir import load_run


def evaluate(model, dataset=None, *, split=None, image_size=None, batch_size=64, crop=None, data_dir=None,
             manual_dir=None, verbose=0):
    """Accuracy (and top-5) of a trained model on a dataset split.

    ``model``: a run directory written by :func:`train` (uses its ``model.keras`` and settings),
    a ``.keras`` file, or a Keras model. The dataset, image size, crop and normalisation default
    to the run's; the loss is the run's (cross-entropy with its label smoothing), as ``train``
    reports it.
    """
    import keras

    from keras_nfnets import data

    settings, transform = {}, None
    if isinstance(model, (str, os.PathLike)):
        model, settings, transform = load_run(model)
    dataset = dataset or settings.get("dataset")
    if dataset is None:
        raise ValueError("Which dataset? Pass `dataset`.")
    split = split or (settings.get("eval_split") if dataset == settings.get("dataset") else None) or \
        data.default_splits(dataset, data_dir)[1]
    source = data.load_source(dataset, split, data_dir=data_dir, manual_dir=manual_dir)
    classes = model.output.shape[-1]
    if classes != source.num_classes:
        raise ValueError(f"The model predicts {classes} classes but {dataset!r} has {source.num_classes}.")
    if transform is None:  # a model object: its checkpoint's or architecture's transform (it records them)
        transform = eval_transform(model) if getattr(model, "architecture", None) is not None else \
            transforms.EvalTransform(model.input.shape[1] or 224, crop="crop_resize", pil_resize=False)
    changes = {k: v for k, v in dict(size=image_size, crop=crop).items() if v is not None}
    transform = transform.replace(**changes)
    size = transform.size
    eval_ds = data.eval_dataset(source, transform, batch_size)
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if classes > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
    softmax = getattr(model.layers[-1], "activation", None) is keras.activations.softmax
    smoothing = float(settings.get("label_smoothing", 0.0))  # the run's loss, as train reported it
    model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=not softmax, label_smoothing=smoothing),
                  metrics=metrics)
    result = model.evaluate(eval_ds, verbose=verbose, return_dict=True)
    result = {k: float(v) for k, v in result.items()}
    result.update(dataset=dataset, split=split, examples=source.num_examples, image_size=size,
                  label_smoothing=smoothing)
    return result
