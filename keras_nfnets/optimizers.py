"""SGD with Adaptive Gradient Clipping and DeepMind-style weight decay (NFNet paper §4, App. A).

AGC clips each unit's gradient to ``λ · max(‖W_unit‖, eps)`` where a unit is an output channel
of a conv kernel (norm over H, W, in), an output unit of a dense kernel (norm over inputs), or a
whole vector/scalar (DeepMind's ``unitwise_norm``). It runs in ``update_step``, which Keras calls
*after* gradients are summed across replicas under ``tf.distribute`` (clipping in ``train_step``
would clip per-replica, 1/N-scaled gradients), and before weight decay, which is added to the
gradient (coupled L2, as DeepMind's ``SGD_AGC``), not applied to gains, biases or SkipInit gains.
"""

import keras
from keras import ops

from keras_nfnets import _compat, backend, names

DEFAULT_AGC_EXCLUDE = (names.CLASSIFIER_KERNEL,)
DEFAULT_DECAY_EXCLUDE = ("gain", "bias", "skip_gain", "gamma", "beta")


def _unit_axes(shape):
    """The axes DeepMind's unit-wise norm reduces over: ``None`` (the whole tensor) for ≤1
    non-trivial dims, the inputs of a dense (I, O) kernel, the fan-in (H, W, I) of a conv kernel."""
    non_trivial = [d for d in shape if d != 1]
    if len(non_trivial) <= 1:
        return None
    if len(shape) in (2, 3):
        return (0,)
    if len(shape) == 4:
        return (0, 1, 2)
    raise ValueError(f"unitwise_norm supports tensors of rank <= 4; got shape {tuple(shape)}.")


def unitwise_norm(x):
    """DeepMind's unit-wise L2 norm: whole tensor for ≤1 non-trivial dims, per output unit for
    dense (I, O) kernels, per output channel for HWIO conv kernels (broadcastable to ``x``)."""
    axes = _unit_axes(x.shape)
    if axes is None:
        return ops.sqrt(ops.sum(ops.square(x)))
    if len(axes) > 1:  # a conv kernel's fan-in as the rows of a matrix: one reduction axis (faster under XLA)
        rows = ops.reshape(x, (-1, x.shape[-1]))
        return ops.reshape(ops.sqrt(ops.sum(ops.square(rows), axis=0)), (1,) * (len(x.shape) - 1) + (x.shape[-1],))
    return ops.sqrt(ops.sum(ops.square(x), axis=axes, keepdims=True))


def adaptive_grad_clip(gradient, parameter, clip_factor=0.01, eps=1e-3):
    """Clip ``gradient`` unit-wise to ``clip_factor · max(‖parameter‖, eps)`` (NFNet paper Eq. 3)."""
    max_norm = ops.maximum(unitwise_norm(parameter), eps) * clip_factor
    grad_norm = unitwise_norm(gradient)
    clipped = gradient * (max_norm / ops.maximum(grad_norm, 1e-6))
    return ops.where(grad_norm > max_norm, clipped, gradient)


def prepare_gradient(gradient, value, clip_factor, eps, l2):
    """AGC (``clip_factor`` > 0), then the coupled weight decay ``l2 · value`` (> 0): the gradient
    the SGD step applies (DeepMind's ``SGD_AGC``, the update order of the NFNet paper's App. A)."""
    if clip_factor:
        gradient = adaptive_grad_clip(gradient, value, clip_factor, eps)
    if l2:
        gradient = gradient + ops.cast(l2, value.dtype) * value
    return gradient


def _matches(path, patterns):
    name = path.split("/")[-1]
    return any(path == p or path.endswith("/" + p) or name == p for p in patterns)


@keras.saving.register_keras_serializable(package="keras_nfnets")
class SGDAGC(_compat.WholeStepUpdate, keras.optimizers.SGD):
    """SGD (Nesterov momentum) with AGC and coupled weight decay, as DeepMind's ``SGD_AGC``.

    Args:
        learning_rate: float or schedule.
        momentum, nesterov: as ``keras.optimizers.SGD`` (defaults 0.9, True).
        weight_decay: L2 coefficient added to the gradient after clipping (DeepMind: 2e-5).
        clip_factor: AGC's λ (``None`` or 0 disables AGC); eps: AGC's floor on weight norms.
        agc_exclude: variable paths or names not clipped (default: the classifier kernel).
        decay_exclude: variable names without weight decay (gains, biases, SkipInit gains, BN).
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=0.0,
        clip_factor=0.01,
        eps=1e-3,
        agc_exclude=DEFAULT_AGC_EXCLUDE,
        decay_exclude=DEFAULT_DECAY_EXCLUDE,
        name="sgd_agc",
        **kwargs,
    ):
        kwargs.pop("weight_decay", None)
        steps = kwargs.get("gradient_accumulation_steps")
        if (steps and isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule)
                and not isinstance(learning_rate, PerOptimizerStep)):
            learning_rate = PerOptimizerStep(learning_rate, steps)  # Keras would advance it per micro-batch
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, name=name, **kwargs)
        if clip_factor is not None and clip_factor < 0:
            raise ValueError(f"`clip_factor` must be >= 0 or None; received {clip_factor!r}.")
        if weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0; received {weight_decay!r}.")
        self.l2 = float(weight_decay)
        self.clip_factor = float(clip_factor or 0.0)
        self.eps = float(eps)
        self.agc_exclude = tuple(agc_exclude)
        self.decay_exclude = tuple(decay_exclude)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._clipped = [self.clip_factor > 0 and not _matches(v.path, self.agc_exclude) for v in variables]
        self._decayed = [self.l2 > 0 and not _matches(v.path, self.decay_exclude) for v in variables]

    def _prepared_gradient(self, gradient, variable, value):
        """The all-reduced gradient of ``variable`` (whose value is ``value``) clipped by AGC, plus
        the coupled weight decay: what the SGD step then applies (one fused program on TensorFlow)."""
        index = _compat.variable_index(self, variable)
        gradient = ops.cast(gradient, value.dtype)
        clip_factor = self.clip_factor if self._clipped[index] else 0.0
        l2 = self.l2 if self._decayed[index] else 0.0
        if not clip_factor and not l2:
            return gradient
        return backend.current().fused(prepare_gradient, gradient, value, clip_factor=clip_factor, eps=self.eps, l2=l2)

    def update_step(self, gradient, variable, learning_rate):
        """Runs per variable on the all-reduced gradient: clip, add weight decay, SGD step (in place
        where the backend has a fused training op)."""
        gradient = self._prepared_gradient(gradient, variable, variable)
        momentum = self.momentums[_compat.variable_index(self, variable)] if self.momentum else None
        if not backend.current().sgd_variable_update(variable, momentum, gradient, learning_rate, self.momentum,
                                                     self.nesterov):
            super().update_step(gradient, variable, learning_rate)

    def update_all(self, grads, variables, learning_rate):
        """The whole step at once where the backend has a multi-tensor update (PyTorch): the same
        clipping and decay as :meth:`update_step`, then one momentum update of every tensor.
        Returns False where Keras' per-variable path runs instead."""
        step = backend.current().sgd_momentum_step
        if step is None:
            return False
        values = [v.value for v in variables]
        buffers = [self.momentums[_compat.variable_index(self, v)].value for v in variables] if self.momentum else []
        step(lambda: [self._prepared_gradient(g, v, value) for g, v, value in zip(grads, variables, values)],
             values, buffers, learning_rate, self.momentum, self.nesterov)
        return True

    def apply_accumulated(self, grads, variables):
        """A micro-batch of gradient accumulation where Keras' own cannot run it (TensorFlow
        replicas: :func:`keras_nfnets.backend.tf_backend.accumulate_on_replicas`)."""
        return backend.current().accumulate_on_replicas(self, grads, variables)

    def get_config(self):
        config = super().get_config()
        config.update(
            weight_decay=self.l2,
            clip_factor=self.clip_factor,
            eps=self.eps,
            agc_exclude=list(self.agc_exclude),
            decay_exclude=list(self.decay_exclude),
        )
        return config


@keras.saving.register_keras_serializable(package="keras_nfnets")
class PerOptimizerStep(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` evaluated at the optimizer step, ``micro_step // accumulation_steps``.

    Keras' gradient accumulation counts every micro-batch in ``optimizer._iterations`` and
    evaluates a schedule there; the large batch that the accumulation stands for takes one
    step per ``accumulation_steps`` micro-batches, so its warm-up and decay are in those steps.
    """

    def __init__(self, schedule, accumulation_steps):
        if isinstance(accumulation_steps, bool) or not isinstance(accumulation_steps, int) or accumulation_steps < 1:
            raise ValueError(f"`accumulation_steps` must be a positive integer; received {accumulation_steps!r}.")
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        self.schedule = schedule
        self.accumulation_steps = accumulation_steps

    def __call__(self, step):
        return self.schedule(ops.floor_divide(step, self.accumulation_steps))

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "accumulation_steps": self.accumulation_steps}


def warmup_cosine_decay(peak_learning_rate, total_steps, warmup_steps, final_learning_rate=0.0):
    """Linear warmup from 0 to ``peak_learning_rate``, then cosine decay to ``final_learning_rate``
    (DeepMind's ``WarmupCosineDecay``), as Keras' own ``CosineDecay`` schedule."""
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"Need 0 <= warmup_steps < total_steps; received {warmup_steps}, {total_steps}.")
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=total_steps - warmup_steps,
        alpha=final_learning_rate / peak_learning_rate if peak_learning_rate else 0.0,
        warmup_target=peak_learning_rate,
        warmup_steps=warmup_steps,
    )
