"""The TensorFlow backend's table entries (see :mod:`keras_nfnets.backend`).

Convolutions (:mod:`keras_nfnets.backend.tf_conv`) call TensorFlow's own ops; a grouped one runs
natively on GPU (cuDNN) and on x86 CPUs with oneDNN (a probe decides once per process; one
convolution per group where a build has none).
γ-scaled activations, Scaled WS and the optimizer's step run as fused kernels
(:mod:`keras_nfnets.backend.tf_fused`).
"""

import concurrent.futures
import functools
import os
import re

from keras_nfnets.backend.common import (
    keras_variable_initialization,
    portable_kernel_moments,
    run_as_is,
    split_groups,
)
from keras_nfnets.backend.tf_conv import conv2d, device_type, standardized_conv2d  # noqa: F401
from keras_nfnets.backend.tf_fused import (  # noqa: F401
    fused,
    fused_kernels_enabled,
    scaled_activation,
    scaled_product,
    sgd_variable_update,
    standardized_kernel,
    xla_fused,
)

kernel_moments = portable_kernel_moments
compiled_when_eager = run_as_is  # eager TensorFlow runs precompiled kernels op by op
variable_initialization = keras_variable_initialization
_MULTI_WORKER = []  # the process's MultiWorkerMirroredStrategy: TensorFlow allows one, created before any op


def native_grouped_conv_supported(device_type, dtype="float32"):
    """GPUs and TPUs always. On CPU, TensorFlow's grouped ``Conv2D`` has a forward kernel in every
    build but gradient kernels only where oneDNN runs it: float32 and bfloat16 where oneDNN is on
    (TensorFlow turns it on by default only on x86 CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX;
    ``TF_ENABLE_ONEDNN_OPTS`` overrides), float16 never. So the answer is computed, once per
    process and dtype (:func:`grouped_conv_probe`)."""
    if device_type != "CPU":
        return True
    return grouped_conv_probe(dtype)["native"]


# How far the native grouped results may be from one conv per group, by dtype (of the values' scale).
_PROBE_TOLERANCE = {"float32": 1e-4, "float16": 4e-3, "bfloat16": 3e-2}


@functools.lru_cache(maxsize=None)
def grouped_conv_probe(dtype="float32"):
    """``{"runs": bool, "native": bool, "onednn": bool or None, "reason": str}`` for convolutions in
    ``dtype`` on the CPU: ``runs``, whether a convolution's output and its input and kernel
    gradients compute at all (one conv per group); ``native``, whether TensorFlow's own grouped
    convolution computes the same three (within :data:`_PROBE_TOLERANCE`); oneDNN's state as
    TensorFlow reports it."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 7, 12)).astype("float32")
    kernel = rng.standard_normal((3, 3, 4, 6)).astype("float32")  # 3 groups of 4 inputs, 2 outputs each
    upstream = rng.standard_normal((2, 4, 4, 6)).astype("float32")

    def values(groups_split):
        x_t, k_t = tf.constant(x, dtype), tf.constant(kernel, dtype)
        with tf.GradientTape() as tape:
            tape.watch([x_t, k_t])
            conv = functools.partial(tf.nn.conv2d, strides=2, padding="SAME")
            y = split_groups(conv, x_t, k_t, 3) if groups_split else conv(x_t, k_t)
        grads = tape.gradient(y, [x_t, k_t], output_gradients=tf.constant(upstream, dtype))
        if any(g is None for g in grads):
            raise RuntimeError("the tape computed no gradient")
        return [np.asarray(tf.cast(t, tf.float32)) for t in (y, *grads)]

    def attempt(groups_split):
        try:
            return values(groups_split), None
        except (tf.errors.OpError, RuntimeError) as error:  # a kernel this build or CPU lacks
            message = re.sub(r"\{\{.*?\}\}\s*", "", str(error)).strip().splitlines()[0]
            return None, f"{type(error).__name__}: {message[:160]}"

    def probe():
        with tf.device("/CPU:0"):
            reference, error = attempt(groups_split=True)
            return (reference, error) + (attempt(groups_split=False) if error is None else (None, error))

    # In a thread of its own: eager, outside any caller's tf.function, replica context or tape
    # (the first call may come from inside a distributed train step's trace; tf.init_scope would
    # pause the tape, and a paused tape computes no gradient, so nothing would be tested).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reference, reference_error, native, native_error = pool.submit(probe).result()
    result = {"onednn": onednn_enabled(), "runs": reference_error is None}
    if reference_error is not None or native_error is not None:
        result.update(native=False, reason=reference_error or native_error)
        return result
    errors = [float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)) for a, b in zip(native, reference)]
    agree = max(errors) <= _PROBE_TOLERANCE.get(dtype, 1e-4)
    result.update(native=agree, reason="forward and gradients match one conv per group" if agree else
                  f"native results differ from one conv per group by {max(errors):.1e} of their scale")
    return result


def unsupported_precision(compute_dtype):
    """Why convolutions cannot train in ``compute_dtype`` on this process's CPU, or None."""
    if device_type() != "CPU" or compute_dtype == "float32":
        return None
    probe = grouped_conv_probe(compute_dtype)
    if probe["runs"]:
        return None
    fix = " Train in float32."
    if probe["onednn"]:
        fix = (" TensorFlow sends this dtype to oneDNN on CPUs with AVX-512, and oneDNN cannot run it here (its "
               "code may be held below AVX-512, e.g. by ONEDNN_MAX_CPU_ISA): train in float32, or start with "
               "TF_ENABLE_ONEDNN_OPTS=0 to run it on TensorFlow's slower Eigen kernels.")
    return f"this CPU cannot train {compute_dtype} convolutions ({probe['reason']}).{fix}"


def onednn_enabled():
    """Whether this process's TensorFlow runs oneDNN kernels (None where the build does not say)."""
    from keras_nfnets._compat import tensorflow_runs_onednn

    return tensorflow_runs_onednn()


sgd_momentum_step = None  # one variable at a time instead: sgd_variable_update


def accumulate_on_replicas(optimizer, grads, variables):
    """One micro-batch of gradient accumulation under a tf.distribute strategy (replica context).

    Keras' accumulation puts the update, and with it the all-reduce of the gradients, inside
    ``ops.cond``, which TensorFlow refuses in a replica context (``merge_call`` in control flow).
    Here the micro-batch gradients are summed over the replicas first (every micro-batch: the
    all-reduce cannot be conditional), then each variable's update runs on each device: add to its
    accumulator, and on every N-th micro-batch take the optimizer's step on the mean
    (``update_step``: AGC, weight decay, momentum) and reset the accumulator. Returns False
    outside a replica context (Keras' own path works there)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or not tf.distribute.has_strategy():
        return False
    if optimizer.clipnorm or optimizer.clipvalue or optimizer.global_clipnorm or optimizer.use_ema:
        raise ValueError("Gradient accumulation under a tf.distribute strategy supports no clipnorm, clipvalue, "
                         "global_clipnorm or use_ema on the optimizer (AGC and EMA callbacks do work).")
    steps = optimizer.gradient_accumulation_steps
    variables = list(variables)
    grads = context.all_reduce(tf.distribute.ReduceOp.SUM, list(grads))
    from keras_nfnets import _compat

    accumulators, micro_batches = _compat.accumulation_state(optimizer, variables)
    is_update = tf.equal((micro_batches + 1) % steps, 0)
    learning_rate = optimizer.learning_rate

    def each_variable(distribution, grads, variables, accumulators):
        def update(variable, grad, accumulator):
            total = accumulator + grad

            def step():
                optimizer.update_step(total / steps, variable, learning_rate)
                accumulator.assign(tf.zeros_like(total))
                return tf.constant(True)

            def accumulate():
                accumulator.assign(total)
                return tf.constant(False)

            return tf.cond(is_update, step, accumulate)

        for grad, variable, accumulator in zip(grads, variables, accumulators):
            distribution.extended.update(variable, update, args=(grad, accumulator), group=False)

    _compat.merge_call_on_replicas(optimizer, each_variable, grads, [v.value for v in variables], accumulators)
    return True


def ema_updater(update, weights):
    """One graph per step instead of eager ops (the variables are fixed once training runs)."""
    import tensorflow as tf

    fixed = weights()
    return tf.function(lambda decay: update(decay, fixed))


def compute_description():
    """E.g. ``"TensorFlow on CPU; oneDNN on, set by keras_nfnets; grouped convolutions native"``."""
    from keras_nfnets.backend import onednn

    kind = device_type()
    if kind != "CPU":
        return f"TensorFlow on {kind}"
    probe = grouped_conv_probe()  # float32 (a mixed precision's grouped convs: see grouped_conv_probe(dtype))
    state = {True: "on", False: "off", None: "not in this build"}[probe["onednn"]]
    from keras_nfnets.backend.cpu import onednn_on_by_default

    origin = {"keras_nfnets": "set by keras_nfnets",
              "user": f"{onednn.VARIABLE}={os.environ.get(onednn.VARIABLE, '')} set by the user"}.get(
                  onednn.decided_by, "TensorFlow's default")
    if onednn.decided_by == "keras_nfnets" and probe["onednn"] and onednn_on_by_default():
        origin = "TensorFlow's default on this CPU"  # keras_nfnets set what TensorFlow would have chosen
    grouped = "native" if probe["native"] else "one per group"
    return f"TensorFlow on CPU; oneDNN {state}, {origin}; grouped convolutions {grouped}"


def compute_devices(strategy):
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.TPUStrategy):
        return [("TPU", None)]
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return [("CPU", None)]
    return [("GPU", tf.config.experimental.get_device_details(gpu).get("compute_capability")) for gpu in gpus]


def start_tensorflow(strategy=None, cluster_timeout=None):
    """Create TensorFlow's devices, or for ``strategy="multi_worker"`` the process's
    ``MultiWorkerMirroredStrategy`` in their place (TensorFlow requires it before any op), and
    return it (else ``None``)."""
    import tensorflow as tf

    if strategy == "multi_worker":
        return make_strategy("multi_worker", cluster_timeout=cluster_timeout)  # checks TF_CONFIG first
    tf.config.list_logical_devices()
    return None


def make_strategy(name, tpu=None, cluster_timeout=None):
    """``auto``: a TPU if one is reachable (``TPU_NAME`` or Colab's TPU runtime), all local GPUs
    with ``mirrored`` when there are several, else the default one-device strategy. ``one_device``:
    the first GPU, else the CPU. ``mirrored``: all local GPUs (or the CPU). ``multi_worker``:
    ``MultiWorkerMirroredStrategy`` (the cluster from ``TF_CONFIG``; ``cluster_timeout`` seconds to
    form, default ``KERAS_NFNETS_CLUSTER_TIMEOUT`` or 300). ``tpu``: ``TPUStrategy``."""
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
        if _MULTI_WORKER:  # TensorFlow allows one per process: a second train() in this process reuses it
            return _MULTI_WORKER[0]
        from keras_nfnets.backend.cluster import cluster_from_tf_config

        described = cluster_from_tf_config()  # a malformed TF_CONFIG is an error here, not a hang in TensorFlow
        try:
            _MULTI_WORKER.append(_form_cluster(tf, described, cluster_timeout))
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
        raise RuntimeError(f"No TPU found ({error}). On a TPU VM pass `tpu`='local', on Colab pick a TPU runtime, "
                           "or use `strategy`='auto'.") from error
    return tf.distribute.TPUStrategy(resolver)


def _form_cluster(tf, described, timeout=None):
    """TensorFlow's ``MultiWorkerMirroredStrategy``, waiting for the peers of ``TF_CONFIG`` with a
    report and a time limit (:mod:`keras_nfnets.backend.cluster`)."""
    from keras_nfnets import _startup
    from keras_nfnets.backend import cluster

    timeout = timeout or cluster.cluster_timeout()
    others = cluster.peers(*described) if described else []
    if not others:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = cluster.form(tf.distribute.MultiWorkerMirroredStrategy, others, timeout, _startup.terminal())
    cluster.report_formed()  # to the nfnets parent, which now passes SIGTERM on (keras_nfnets.cli.supervise)
    return strategy


def jit_compile(requested, strategy):
    """``"auto"`` is Keras' rule (XLA on a GPU without a ``tf.distribute`` strategy, never on a
    CPU-only machine), except under ``TPUStrategy``: a TPU runs only compiled steps."""
    import tensorflow as tf

    if requested == "auto" and isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    return requested


def all_workers(strategy, value):
    import tensorflow as tf

    from keras_nfnets import _compat

    @tf.function
    def gather():
        return strategy.gather(strategy.run(lambda: tf.constant([value], tf.int64)), axis=0)

    values = gather().numpy().tolist()
    replicas_per_worker = strategy.num_replicas_in_sync // _compat.worker_count(strategy)
    return values[::replicas_per_worker]


def cluster_environment(ports, index):
    """``TF_CONFIG`` naming every worker."""
    from keras_nfnets.backend.cluster import tf_config

    return {"TF_CONFIG": tf_config(ports, index)}


def prepare_multi_worker_model(model):
    from keras_nfnets import _compat

    _compat.enable_keras_multi_worker_training(model)


def is_multi_worker(strategy):
    import tensorflow as tf

    from keras_nfnets import _compat

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and _compat.worker_count(strategy) > 1
