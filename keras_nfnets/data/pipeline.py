"""tf.data pipelines for training and evaluation: parallel, prefetched, deterministic when seeded.

All randomness is stateless, seeded by ``(seed, epoch, position)``: crops and flips per image,
CutMix/MixUp per batch (by its first position), RandAugment per image. So every map runs in
parallel on every core, seeded or not, and epoch ``e`` of a run started at epoch ``e`` (a resumed
run) sees the same images, order, crops, mixes and augmentations as epoch ``e`` of an
uninterrupted run.
"""

import random

from keras_nfnets.data import transforms

SHUFFLE_BUFFER = 10_000


def _options(deterministic, threads=None):
    """tf.data options: order kept when seeded; with ``threads``, a private pool of that many
    threads and one thread per op (DeepMind's ``max_intra_op_parallelism = 1``)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    options.experimental_optimization.map_parallelization = True
    if threads:
        options.threading.private_threadpool_size = int(threads)
        options.threading.max_intra_op_parallelism = 1
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
                  input_context=None, threads=None):
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
        threads: a private thread pool of this size (default: TensorFlow's shared pool).
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

    encoded = source.encoded

    def shuffled(order_seed):
        """``(position, example)`` in one epoch's order, from the seed alone (no shuffle state to
        save or restore), only the positions of this pipeline's shard. Examples stay encoded
        where the source allows (a JPEG is then decoded inside its crop window alone)."""
        n = source.num_examples
        if source.lookup is not None:  # random access: an exact permutation of all examples
            fetch = source.read if encoded else source.lookup
            return tf.data.Dataset.range(pipeline, n, pipelines).map(
                lambda i: (i, fetch(tf.random.experimental.index_shuffle(i, order_seed, n - 1))),
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
        if source.records is not None and not encoded:
            def decode(i, record):
                return i, source.decode(*record) if isinstance(record, tuple) else source.decode(record)

            ordered = ordered.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ordered

    def decode_other(image_bytes):  # a non-JPEG record of an encoded TFDS source
        return source.decode(image_bytes, tf.constant(0, tf.int64))[0]

    rand_augment = augmentation.rand_augment() if augmentation is not None else None
    mixes = augmentation is not None and augmentation.mixes

    def one_epoch(epoch):
        order_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), epoch)
        epoch_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 1], tf.int64), epoch)
        mix_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 2], tf.int64), epoch)
        augment_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 3], tf.int64), epoch)

        def prepare(index, example):
            image, label = example
            image = transforms.train_image(image, image_size,
                                           tf.random.experimental.stateless_fold_in(epoch_seed, index),
                                           flip=flip, area_range=area_range,
                                           decode=decode_other if source.records is not None else None)
            return image, tf.one_hot(label, num_classes, dtype=tf.float32), index

        def mix(images, labels, positions):  # a replica batch, seeded by its first position
            images, labels = augmentation.mix(images, labels,
                                              tf.random.experimental.stateless_fold_in(mix_seed, positions[0]))
            return images, labels, positions

        def augment(images, labels, positions):  # each image seeded by its position in the epoch
            images = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8)
            seeds = tf.map_fn(lambda p: tf.random.experimental.stateless_fold_in(augment_seed, p), positions,
                              fn_output_signature=tf.TensorSpec([2], tf.int64))
            images = tf.map_fn(lambda pair: rand_augment(*pair), (images, seeds),
                               fn_output_signature=tf.TensorSpec(images.shape[1:], tf.uint8))
            return tf.cast(images, tf.float32), labels, positions

        batches = (shuffled(order_seed)
                   .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
                   .batch(replica_batch, drop_remainder=True).take(steps * replicas))
        if mixes:
            batches = batches.map(mix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        if rand_augment is not None:
            batches = batches.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        return batches.map(lambda x, y, _: (transforms.normalize(x, mean, std), y),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)

    dataset = tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options(deterministic, threads))


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
