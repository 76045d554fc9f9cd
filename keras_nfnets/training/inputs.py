"""A run's inputs: the pipeline settings of a model and dataset, the training and evaluation
datasets under a strategy, steps per epoch, and the input-pipeline report."""

import math

from keras_nfnets.data import transforms
from keras_nfnets.training.options import DATASET_DEFAULTS
from keras_nfnets.training.settings import RunSettings

def steps_per_epoch(source, batch_size, cap, replicas, accumulation_steps=1):
    """Optimizer steps per epoch: full effective batches (``accumulation_steps`` micro-batches of
    ``batch_size``) of the source, at most ``cap``."""
    if batch_size % replicas:
        raise ValueError(f"batch_size {batch_size} must be divisible by the {replicas} replicas of the strategy.")
    steps = min(source.num_examples // (batch_size * accumulation_steps), cap or source.num_examples)
    if steps < 1:
        fits = max(replicas, 2 ** int(math.log2(max(1, source.num_examples // 2))) // replicas * replicas)
        if accumulation_steps > 1:
            raise ValueError(f"The effective batch, `batch_size` {batch_size} × `accumulation_steps` "
                             f"{accumulation_steps}, exceeds the {source.num_examples} training images of this "
                             "dataset: pass fewer accumulation steps or a smaller batch.")
        raise ValueError(f"`batch_size` {batch_size} exceeds the {source.num_examples} training images of this "
                         f"dataset: pass a smaller one, e.g. `batch_size={fits}` (any number up to "
                         f"{source.num_examples} that the {replicas} replica(s) divide).")
    return steps

def input_report(train_ds, make_train, augmentation, batch_size):
    """An :class:`InputBoundReport` with the pipeline's rate alone, and without augmentation
    when there is some (each measured on its own iterator, for about two seconds)."""
    import keras

    from keras_nfnets.training.callbacks import InputBoundReport, measure_input_rate

    rate = measure_input_rate(train_ds, batch_size, seconds=2.0)
    if rate is None:  # fewer than four batches in the whole run: nothing to time
        return keras.callbacks.Callback()
    plain = None
    if augmentation is not None and augmentation.enabled:
        plain = measure_input_rate(make_train(None, augmentation=None), batch_size, seconds=2.0)
    described = None if augmentation is None else (
        ", ".join(filter(None, [f"CutMix {augmentation.cutmix_alpha:g}" if augmentation.cutmix_alpha else "",
                                f"MixUp {augmentation.mixup_alpha:g}" if augmentation.mixup_alpha else "",
                                "RandAugment {} layers, magnitude {:g}".format(*augmentation.randaugment)
                                if augmentation.randaugment else ""])))
    return InputBoundReport(rate, batch_size, plain_rate=plain, augmentation=described)

def datasets(distribution, role, make_train, make_eval):
    """The training and evaluation datasets: as built for one machine (Keras splits each global
    batch over local replicas), or, with several workers, one shard per input pipeline through
    ``distribute_datasets_from_function`` (each example once per epoch across the workers)."""
    if role.count == 1:
        return make_train(None), make_eval(None)
    return (distribution.distribute_datasets_from_function(make_train),
            distribution.distribute_datasets_from_function(make_eval))

def pipeline_settings(model_name, dataset, weights=None, image_size=None, eval_image_size=None):
    """Training image size, flip, crop area, normalisation and the evaluation transform for a
    model/dataset pair: the dataset's defaults (digits), else the checkpoint's evaluation when
    fine-tuning ``weights="imagenet"``, else the model's sizes and the paper's evaluation crop."""
    from keras_nfnets.weights.presets import checkpoint_for, variant

    row = variant(model_name)
    defaults = DATASET_DEFAULTS.get(dataset, {})
    checkpoint = checkpoint_for(model_name) if weights == "imagenet" else None
    if checkpoint is not None:
        evaluation, train_size = checkpoint.eval_transform(), checkpoint.train_size
    else:
        evaluation = transforms.EvalTransform(row.test_size, crop=row.eval_crop, pil_resize=False)
        train_size = row.train_size
    if "mean" in defaults:
        evaluation = evaluation.replace(mean=defaults["mean"], std=defaults["std"])
    if "eval_crop" in defaults:
        evaluation = evaluation.replace(crop=defaults["eval_crop"])
    size = int(image_size or defaults.get("image_size") or train_size)
    evaluation = evaluation.replace(size=int(eval_image_size or image_size or defaults.get("image_size")
                                             or evaluation.size))
    return RunSettings(image_size=size, flip=defaults.get("flip", True),
                       area_range=tuple(defaults.get("area_range", (0.08, 1.0))), eval_transform=evaluation)
