"""tf.data pipelines for training and evaluation: parallel, prefetched, deterministic when seeded.

Per-image randomness is stateless, seeded by ``(seed, epoch, index)``, so epoch ``e`` of a run
started at epoch ``e`` (a resumed run) sees the same images, order and crops as epoch ``e`` of an
uninterrupted run. Keras' augmentation layers keep their own seeded random state: with a seed
they run in order (deterministic), and their stream restarts at a resumed run's first epoch.
"""

import random

from keras_nfnets.data import transforms

SHUFFLE_BUFFER = 10_000


def _options(deterministic):
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    options.experimental_optimization.map_parallelization = True
    return options


def _shard(input_context):
    """``(pipelines, this pipeline's index, replicas fed by each pipeline)`` of a
    ``tf.distribute.InputContext`` (one pipeline feeding one replica without one)."""
    if input_context is None:
        return 1, 0, 1
    pipelines = input_context.num_input_pipelines
    return pipelines, input_context.input_pipeline_id, input_context.num_replicas_in_sync // pipelines


def train_dataset(source, image_size, batch_size, *, epochs=1, start_epoch=0, seed=None, flip=True,
                  area_range=(0.08, 1.0), augmentation=None, mean=transforms.IMAGENET_MEAN,
                  std=transforms.IMAGENET_STD, shuffle_buffer=SHUFFLE_BUFFER, steps_per_epoch=None,
                  input_context=None):
    """Batches of ``(normalised float32 images, one-hot float32 labels)`` for epochs
    ``start_epoch … epochs − 1``, ``source.num_examples // batch_size`` full batches each.

    With ``input_context`` (a ``tf.distribute.InputContext``, as
    ``strategy.distribute_datasets_from_function`` passes it), this is one input pipeline's shard
    of the same run: pipeline ``k`` of ``K`` takes the positions ``k, k + K, k + 2K, …`` of each
    epoch's order and yields per-replica batches, so every step's global batch holds exactly the
    examples (and crops) of the undistributed run's step, and each example is used once per epoch
    across all workers.

    Args:
        source: a :class:`~keras_nfnets.data.Source`.
        image_size: the training resolution; batch_size: the global batch size.
        seed: makes the run reproducible (``None``: a fresh random seed, parallel order).
        flip, area_range: random flip and the Inception crop's area range.
        augmentation: an :class:`Augmentation` (CutMix/MixUp/RandAugment) or ``None``.
        mean, std: per-channel statistics of [0, 1] RGB used to normalise.
        steps_per_epoch: fewer batches per epoch than the data holds (quick runs).
        input_context: shard for one input pipeline of a distributed run (see above).
    """
    import tensorflow as tf

    steps = source.num_examples // batch_size
    if steps_per_epoch:
        steps = min(steps, int(steps_per_epoch))
    if steps < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the {source.num_examples} training images of "
                         f"{source.name!r}; use a batch size <= {source.num_examples}.")
    if not 0 <= start_epoch < epochs:
        raise ValueError(f"Need 0 <= start_epoch < epochs; received {start_epoch}, {epochs}.")
    pipelines, pipeline, replicas = _shard(input_context)
    if batch_size % (pipelines * replicas):
        raise ValueError(f"batch_size {batch_size} must be divisible by the {pipelines * replicas} replicas.")
    replica_batch = batch_size // (pipelines * replicas)
    deterministic = seed is not None
    seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
    num_classes = source.num_classes

    def shuffled(order_seed):
        """``(position, example)`` in one epoch's order, from the seed alone (no shuffle state to
        save or restore), only the positions of this pipeline's shard."""
        n = source.num_examples
        if source.lookup is not None:  # random access: an exact permutation of all examples
            return tf.data.Dataset.range(pipeline, n, pipelines).map(
                lambda i: (i, source.lookup(tf.random.experimental.index_shuffle(i, order_seed, n - 1))),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # Streaming: sort windows of compact records (encoded images) by stateless random keys.
        window = min(shuffle_buffer, n)
        records = source.records if source.records is not None else source.dataset

        def sort_window(index, record):
            keys = tf.random.stateless_uniform(tf.shape(index), tf.random.experimental.stateless_fold_in(
                order_seed, index[0]))
            return tf.nest.map_structure(lambda t: tf.gather(t, tf.argsort(keys)), record)

        ordered = records.enumerate().batch(window).map(sort_window, num_parallel_calls=tf.data.AUTOTUNE,
                                                         deterministic=True).unbatch().enumerate()
        if pipelines > 1:  # every worker reads the compact records, each decodes only its own
            ordered = ordered.shard(pipelines, pipeline)
        if source.records is not None:
            def decode(i, record):
                return i, source.decode(*record) if isinstance(record, tuple) else source.decode(record)

            ordered = ordered.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ordered

    def one_epoch(epoch):
        order_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), epoch)
        epoch_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 1], tf.int64), epoch)

        def prepare(index, example):
            image, label = example
            image = transforms.train_image(image, image_size,
                                           tf.random.experimental.stateless_fold_in(epoch_seed, index),
                                           flip=flip, area_range=area_range)
            return image, tf.one_hot(label, num_classes, dtype=tf.float32)

        return (shuffled(order_seed)
                .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
                .batch(replica_batch, drop_remainder=True).take(steps * replicas))

    dataset = tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch)
    if augmentation is not None and augmentation.enabled:
        # Keras layers hold a random state: applied in order so a seeded run is deterministic.
        sequential = None if deterministic else tf.data.AUTOTUNE
        cutmix, mixup, rand = augmentation.layers(None if not deterministic else seed * 1000 + start_epoch)
        if augmentation.mixes:
            dataset = dataset.map(lambda x, y: transforms.mix_batch(x, y, cutmix, mixup), num_parallel_calls=sequential)
        if rand is not None:
            dataset = dataset.map(lambda x, y: (tf.map_fn(lambda image: rand(image, training=True), x), y),
                                  num_parallel_calls=sequential)
    dataset = dataset.map(lambda x, y: (transforms.normalize(x, mean, std), y), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=deterministic)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options(deterministic))


def eval_dataset(source, transform, batch_size, input_context=None):
    """Batches of ``(images prepared by transform, one-hot labels)``: every example once, in order.

    ``transform`` is an :class:`~keras_nfnets.data.EvalTransform` (size, crop rule, mean/std).
    With ``input_context`` (a ``tf.distribute.InputContext``): this pipeline's share, every
    ``K``-th example from its index, in per-replica batches.
    """
    import tensorflow as tf

    if not isinstance(transform, transforms.EvalTransform):
        raise TypeError(f"`transform` must be an EvalTransform; received {transform!r}.")

    def prepare(image, label):
        return transform(image), tf.one_hot(label, source.num_classes, dtype=tf.float32)

    pipelines, pipeline, replicas = _shard(input_context)
    examples = source.dataset.shard(pipelines, pipeline) if pipelines > 1 else source.dataset
    return (examples.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(max(1, batch_size // (pipelines * replicas))).prefetch(tf.data.AUTOTUNE)
            .with_options(_options(True)))
