"""Choosing a ``tf.distribute`` strategy and a mixed-precision policy by name; a worker's role
in a multi-worker cluster (``TF_CONFIG``)."""

import dataclasses

from keras_nfnets import backend
from keras_nfnets.backend import cpu
from keras_nfnets.backend.common import KerasDataParallel  # noqa: F401  (the strategy on JAX/PyTorch)

from keras_nfnets.backend.cluster import (  # noqa: F401  (re-exported)
    KERAS_CLUSTER_VARIABLES, TF_CONFIG_SHAPE, KerasCluster, cluster_from_keras_env, cluster_from_tf_config)
from keras_nfnets.training.options import PRECISIONS, STRATEGIES  # noqa: F401  (re-exported)


def make_strategy(name="auto", tpu=None, cluster_timeout=None):
    """A distribution strategy by name, as the backend runs one (:mod:`keras_nfnets.backend`).

    TensorFlow (``tf.distribute``): ``auto`` is a TPU if one is reachable (``TPU_NAME`` or Colab's
    TPU runtime), all local GPUs with ``mirrored`` when there are several, else the default
    one-device strategy; ``one_device`` the first GPU, else the CPU; ``mirrored`` all local GPUs
    (or the CPU); ``multi_worker`` ``MultiWorkerMirroredStrategy`` (the cluster from ``TF_CONFIG``);
    ``tpu`` ``TPUStrategy`` on ``tpu`` (a name or grpc address; default ``TPU_NAME`` / local).
    JAX: Keras' ``DataParallel`` over every local device (``one_device``: the first). PyTorch: one
    device. ``multi_worker`` and ``tpu`` need TensorFlow. ``cluster_timeout``: seconds a
    ``multi_worker`` cluster may take to form (default ``KERAS_NFNETS_CLUSTER_TIMEOUT``, else 300).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown `strategy` {name!r}; choose one of {', '.join(STRATEGIES)}.")
    return backend.current().make_strategy(name, tpu, cluster_timeout)  # a malformed cluster is an error there, not a hang


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
    """Refuse a mixed policy that a device cannot compute (:data:`PRECISION_NEEDS`), and warn where a
    CPU computes it slower than float32 (:mod:`keras_nfnets.backend.cpu`), before any work. ``devices``: ``(kind, compute capability or None)`` pairs, as
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
        cpu.advise_precision(precision, "CPU")  # runs, but slower than float32: said before any work


def set_precision(precision="float32"):
    """Set Keras' global dtype policy. ``mixed_float16`` gets dynamic loss scaling from
    ``model.compile`` (Keras wraps the optimizer in ``LossScaleOptimizer``); weight
    standardization statistics are computed in float32 under every policy (ScaledWSConv2D)."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    keras.config.set_dtype_policy(precision)
    return keras.config.dtype_policy()


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