"""Choosing a ``tf.distribute`` strategy and a mixed-precision policy by name."""

import os

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def make_strategy(name="auto", tpu=None):
    """A ``tf.distribute.Strategy`` by name.

    ``auto``: a TPU if one is reachable (``TPU_NAME`` or Colab's TPU runtime), all local GPUs
    with ``mirrored`` when there are several, else the default one-device strategy.
    ``one_device``: the first GPU, else the CPU. ``mirrored``: all local GPUs (or the CPU).
    ``multi_worker``: ``MultiWorkerMirroredStrategy`` (the cluster comes from ``TF_CONFIG``).
    ``tpu``: ``TPUStrategy`` on ``tpu`` (a name or grpc address; default: ``TPU_NAME`` / local).
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "auto":
        if tpu or os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
            return make_strategy("tpu", tpu)
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError, tf.errors.UnavailableError) as error:
        raise RuntimeError(f"No TPU found ({error}). On a TPU VM pass --tpu local, on Colab pick a TPU runtime, "
                           "or use --strategy auto.") from error
    return tf.distribute.TPUStrategy(resolver)


def set_precision(precision="float32"):
    """Set Keras' global dtype policy. ``mixed_float16`` gets dynamic loss scaling from
    ``model.compile`` (Keras wraps the optimizer in ``LossScaleOptimizer``); weight
    standardization statistics are computed in float32 under every policy (ScaledWSConv2D)."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    keras.config.set_dtype_policy(precision)
    return keras.config.dtype_policy()
