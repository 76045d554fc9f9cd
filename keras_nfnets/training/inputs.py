"""A run's inputs: the training and evaluation datasets under a strategy, and the input-pipeline
report (the sizes and steps are the plan's: :mod:`keras_nfnets.training.plan`)."""


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
