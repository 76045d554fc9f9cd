"""Choosing a ``tf.distribute`` strategy and a mixed-precision policy by name; a worker's role
in a multi-worker cluster (``TF_CONFIG``)."""

import dataclasses
import json
import os

from keras_nfnets import _compat

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
_MULTI_WORKER = []  # the process's MultiWorkerMirroredStrategy: TensorFlow allows one, created before any op


def make_strategy(name="auto", tpu=None):
    """A ``tf.distribute.Strategy`` by name.

    ``auto``: a TPU if one is reachable (``TPU_NAME`` or Colab's TPU runtime), all local GPUs
    with ``mirrored`` when there are several, else the default one-device strategy.
    ``one_device``: the first GPU, else the CPU. ``mirrored``: all local GPUs (or the CPU).
    ``multi_worker``: ``MultiWorkerMirroredStrategy`` (the cluster comes from ``TF_CONFIG``).
    ``tpu``: ``TPUStrategy`` on ``tpu`` (a name or grpc address; default: ``TPU_NAME`` / local).
    """
    import keras

    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if keras.backend.backend() != "tensorflow":
        return KerasDataParallel.for_strategy(name)
    import tensorflow as tf

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
        cluster_from_tf_config()  # a malformed TF_CONFIG is an error here, not a hang in TensorFlow
        if _MULTI_WORKER:  # one per process: created by the command line's quiet start, or earlier here
            return _MULTI_WORKER[0]
        try:
            _MULTI_WORKER.append(tf.distribute.MultiWorkerMirroredStrategy())
            return _MULTI_WORKER[0]
        except RuntimeError as error:
            if "program startup" not in str(error):
                raise
            raise RuntimeError("The multi_worker strategy must be created before TensorFlow runs anything in this "
                               "process: start each worker as a fresh process (nfnets train --strategy multi_worker, "
                               "or nfnets launch) and create the strategy first.") from error
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError, tf.errors.UnavailableError) as error:
        raise RuntimeError(f"No TPU found ({error}). On a TPU VM pass --tpu local, on Colab pick a TPU runtime, "
                           "or use --strategy auto.") from error
    return tf.distribute.TPUStrategy(resolver)


class KerasDataParallel:
    """What ``train`` needs of a strategy, on the JAX and PyTorch backends: Keras' own
    ``keras.distribution.DataParallel`` over every local device when there are several (JAX:
    the step is compiled for all of them and the gradient is the whole batch's, so AGC clips the
    averaged gradient), else one device. ``scope()`` is a no-op: the distribution is global."""

    def __init__(self, devices):
        self.devices = list(devices)
        self.num_replicas_in_sync = max(1, len(self.devices))

    @classmethod
    def for_strategy(cls, name):
        import keras

        if name in ("multi_worker", "tpu"):
            raise ValueError(f"--strategy {name} is a tf.distribute strategy: run it with KERAS_BACKEND=tensorflow "
                             "(on JAX/PyTorch use auto, mirrored or one_device).")
        if keras.backend.backend() == "torch" and name == "mirrored":
            import torch

            if torch.cuda.device_count() > 1:
                raise ValueError(
                    f"--strategy mirrored over {torch.cuda.device_count()} GPUs: Keras has no data-parallel engine "
                    "for PyTorch. Use KERAS_BACKEND=jax or tensorflow for several devices, or one_device here.")
        devices = keras.distribution.list_devices() if keras.backend.backend() == "jax" else []
        if name == "one_device" or len(devices) < 2:
            keras.distribution.set_distribution(None)
            return cls(devices[:1])
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return cls(devices)

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


def set_precision(precision="float32"):
    """Set Keras' global dtype policy. ``mixed_float16`` gets dynamic loss scaling from
    ``model.compile`` (Keras wraps the optimizer in ``LossScaleOptimizer``); weight
    standardization statistics are computed in float32 under every policy (ScaledWSConv2D)."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    keras.config.set_dtype_policy(precision)
    return keras.config.dtype_policy()


TF_CONFIG_SHAPE = ('{"cluster": {"worker": ["host0:port", "host1:port", ...]}, "task": {"type": "worker", "index": I}}'
                   ' (optionally a "chief" list of one address, then "task" type "chief" or "worker")')


def cluster_from_tf_config(environ=None):
    """``(cluster dict, task type, task index)`` from ``TF_CONFIG``, checked; ``None`` when the
    variable is not set (``MultiWorkerMirroredStrategy`` then runs as a one-worker cluster)."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], int(task["index"])
        members = cluster[task_type]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is not a valid cluster description ({error!r}); it must look like "
                         f"{TF_CONFIG_SHAPE}.") from error
    if task_type not in ("chief", "worker") or not 0 <= index < len(members):
        raise ValueError(f"TF_CONFIG's task {task!r} is not one of its cluster's chief/worker entries "
                         f"{ {k: v for k, v in cluster.items()} }; it must look like {TF_CONFIG_SHAPE}.")
    return cluster, task_type, index


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in a multi-worker cluster: ``index`` in ``0 … count − 1`` (the chief,
    or worker 0 when there is no chief, is index 0 and ``is_chief``)."""

    index: int = 0
    count: int = 1
    is_chief: bool = True


def worker_role(strategy):
    """The :class:`WorkerRole` of this process under ``strategy`` (one worker, the chief, for
    every single-machine strategy)."""
    if not _compat.is_multi_worker(strategy):
        return WorkerRole()
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    chiefs = len(spec.get("chief", []))
    count = chiefs + len(spec.get("worker", []))
    index = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return WorkerRole(index=index, count=count, is_chief=index == 0)


def all_workers(strategy, value):
    """``value`` (an int) from every worker, in worker order: a collective, so it also waits until
    every worker got there (a barrier)."""
    import tensorflow as tf

    @tf.function
    def gather():
        return strategy.gather(strategy.run(lambda: tf.constant([int(value)], tf.int64)), axis=0)

    values = gather().numpy().tolist()
    replicas_per_worker = strategy.num_replicas_in_sync // worker_role(strategy).count
    return values[::replicas_per_worker]
