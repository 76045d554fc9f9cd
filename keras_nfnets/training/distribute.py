"""Choosing a ``tf.distribute`` strategy and a mixed-precision policy by name; a worker's role
in a multi-worker cluster (``TF_CONFIG``)."""

import dataclasses
import json
import os

from keras_nfnets import backend
from keras_nfnets.backend.common import KerasDataParallel  # noqa: F401  (the strategy on JAX/PyTorch)

from keras_nfnets.training.options import PRECISIONS, STRATEGIES  # noqa: F401  (re-exported)


def make_strategy(name="auto", tpu=None):
    """A distribution strategy by name, as the backend runs one (:mod:`keras_nfnets.backend`).

    TensorFlow (``tf.distribute``): ``auto`` is a TPU if one is reachable (``TPU_NAME`` or Colab's
    TPU runtime), all local GPUs with ``mirrored`` when there are several, else the default
    one-device strategy; ``one_device`` the first GPU, else the CPU; ``mirrored`` all local GPUs
    (or the CPU); ``multi_worker`` ``MultiWorkerMirroredStrategy`` (the cluster from ``TF_CONFIG``);
    ``tpu`` ``TPUStrategy`` on ``tpu`` (a name or grpc address; default ``TPU_NAME`` / local).
    JAX: Keras' ``DataParallel`` over every local device (``one_device``: the first). PyTorch: one
    device. ``multi_worker`` and ``tpu`` need TensorFlow.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown `strategy` {name!r}; choose one of {', '.join(STRATEGIES)}.")
    return backend.current().make_strategy(name, tpu)  # a malformed cluster is an error there, not a hang


def is_multi_worker(strategy):
    """Whether ``strategy`` spans several worker processes."""
    return backend.current().is_multi_worker(strategy)


# What each mixed policy needs of a device: None = never; a (major, minor) = that CUDA compute
# capability or newer. CPUs: asked of the backend (unsupported_precision), which computes it:
# TensorFlow's float16 runs on Eigen everywhere (grouped convs per group), its bfloat16 on oneDNN
# only where the CPU has AVX-512 BF16/AMX and on Eigen where oneDNN is off. TPUs compute in bfloat16 and have no float16 units; GPUs
# have bfloat16 units from Ampere (8.0) and float16 arithmetic from Pascal (6.0).
PRECISION_NEEDS = {
    "mixed_float16": {"TPU": None, "GPU": (6, 0)},
    "mixed_bfloat16": {"GPU": (8, 0)},
}
_PRECISION_ADVICE = {"mixed_float16": "use precision='mixed_bfloat16' (or 'float32')",
                     "mixed_bfloat16": "use precision='mixed_float16' (or 'float32')"}


def check_precision(precision, devices):
    """Refuse a mixed policy that a device cannot compute (:data:`PRECISION_NEEDS`), before any
    work. ``devices``: ``(kind, compute capability or None)`` pairs, as
    ``keras_nfnets.backend.compute_devices(strategy)`` reports them."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    needs = PRECISION_NEEDS.get(precision, {})
    for kind, capability in devices:
        if kind not in needs:
            continue
        need = needs[kind]
        if need is None:
            raise ValueError(f"precision={precision!r} cannot run on a {kind}: it has no "
                             f"{precision.split('_')[1]} arithmetic; {_PRECISION_ADVICE[precision]}.")
        if capability is not None and tuple(capability) < need:
            raise ValueError(
                f"precision={precision!r} needs a GPU of CUDA compute capability {need[0]}.{need[1]} or newer; "
                f"this one is {capability[0]}.{capability[1]}; {_PRECISION_ADVICE[precision]}.")
    if any(kind == "CPU" for kind, _ in devices) and precision != "float32":
        problem = backend.current().unsupported_precision(precision.split("_")[1])
        if problem:
            raise ValueError(f"precision={precision!r}: {problem}")


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


KERAS_CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                           "KERAS_DISTRIBUTION_PROCESS_ID")


@dataclasses.dataclass(frozen=True)
class KerasCluster:
    """A multi-process JAX cluster as Keras describes it (``keras.distribution.initialize``):
    ``addresses`` (``host:port``; the first is the coordinator), ``num_processes``, this
    ``process_id``."""

    addresses: tuple
    num_processes: int
    process_id: int


def cluster_from_keras_env(environ=None):
    """The :class:`KerasCluster` of Keras' standard variables (``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
    ``…_NUM_PROCESSES``, ``…_PROCESS_ID``), checked; ``None`` when none is set (one process)."""
    environ = os.environ if environ is None else environ
    values = {name: environ.get(name, "").strip() for name in KERAS_CLUSTER_VARIABLES}
    if not any(values.values()):
        return None
    shape = ("KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:port[,host1:port,…] (the first is the coordinator), "
             "KERAS_DISTRIBUTION_NUM_PROCESSES=N, KERAS_DISTRIBUTION_PROCESS_ID=0…N-1")
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"The JAX cluster variables are incomplete: {', '.join(missing)} not set. Set all three: {shape}.")
    addresses = tuple(a.strip() for a in values["KERAS_DISTRIBUTION_JOB_ADDRESSES"].split(",") if a.strip())
    try:
        count, index = int(values["KERAS_DISTRIBUTION_NUM_PROCESSES"]), int(values["KERAS_DISTRIBUTION_PROCESS_ID"])
    except ValueError as error:
        raise ValueError(f"The JAX cluster variables must be integers where they count ({error}); {shape}.") from None
    problems = []
    if count < 1:
        problems.append(f"KERAS_DISTRIBUTION_NUM_PROCESSES is {count}")
    if not 0 <= index < max(count, 1):
        problems.append(f"KERAS_DISTRIBUTION_PROCESS_ID {index} is not in 0…{count - 1}")
    if len(addresses) > 1 and len(addresses) != count:
        problems.append(f"{len(addresses)} addresses for {count} processes")
    bad = [a for a in addresses if a.rpartition(":")[0] == "" or not a.rpartition(":")[2].isdigit()]
    if bad or not addresses:
        problems.append(f"addresses {list(bad) or addresses} are not host:port")
    if problems:
        raise ValueError(f"The JAX cluster variables are inconsistent ({'; '.join(problems)}); {shape}.")
    return KerasCluster(addresses, count, index)


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
    if not is_multi_worker(strategy):
        return WorkerRole()
    if isinstance(strategy, KerasDataParallel):  # a JAX cluster (keras.distribution): its place is on it
        return WorkerRole(index=strategy.worker_index, count=strategy.worker_count, is_chief=strategy.worker_index == 0)
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    chiefs = len(spec.get("chief", []))
    count = chiefs + len(spec.get("worker", []))
    index = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return WorkerRole(index=index, count=count, is_chief=index == 0)


def all_workers(strategy, value):
    """``value`` (an int) from every worker, in worker order: a collective, so it also waits until
    every worker got there (a barrier)."""
    return backend.current().all_workers(strategy, int(value))