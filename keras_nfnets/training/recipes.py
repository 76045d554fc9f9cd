"""The papers' training recipes as data, scaled to the user's batch size and run length.

- NF-ResNets (NF paper §5.1): SGD + Nesterov 0.9, batch 1024, 90 epochs, LR 0.4 (0.1 per 256),
  5-epoch warmup then cosine to 0, weight decay 5e-5, label smoothing 0.1; dropout 0.25 and
  stochastic depth 0.1 live in the model config. No AGC, no EMA.
- NF-RegNets (NF paper App. C, §6): batch 1024, 360 epochs, LR 0.4, 5-epoch warmup, cosine to
  0, weight decay 5e-5, label smoothing 0.1, EMA 0.99999 with warm-up, CutMix + MixUp (no
  RandAugment: §6 found it degrades NF-RegNets).
- NFNets (NFNet paper §4, App. A): batch 4096, 360 epochs, LR 0.1 per 256, 5-epoch warmup,
  cosine to 0, weight decay 2e-5, AGC λ = 0.01 (ε 1e-3, classifier kernel excluded), label
  smoothing 0.1, EMA 0.99999, CutMix + MixUp on half the batch each, then RandAugment with 4
  layers and magnitude 5/10/10/15/15/15/15/15 for F0–F7.
- The BatchNorm ResNetV2 baseline (§5.1): as NF-ResNets.

Scaling rules: the learning rate scales linearly with the (effective) batch size (``base_lr × batch /
base_batch``); warmup keeps the paper's fraction of the run (5/90 or 5/360 of the epochs); the
EMA horizon ``1 / (1 − decay)`` keeps the paper's fraction of the run's steps (capped at 0.99999).
"""

import dataclasses
import warnings
from typing import Optional, Tuple

from keras_nfnets.data.transforms import Augmentation


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """One paper recipe (values at the paper's ``batch_size`` and ``epochs``)."""

    family: str
    batch_size: int
    epochs: int
    base_learning_rate: float
    base_batch_size: int = 256
    warmup_epochs: float = 5.0
    momentum: float = 0.9
    weight_decay: float = 5e-5
    clip_factor: Optional[float] = None
    label_smoothing: float = 0.1
    ema_decay: Optional[float] = None
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    randaugment: Optional[Tuple[int, float]] = None
    steps_per_epoch: int = 1251  # ImageNet train set (1,281,167) at batch 1024
    source: str = ""

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def peak_learning_rate(self):
        return self.base_learning_rate * self.batch_size / self.base_batch_size

    def augmentation(self):
        return Augmentation(self.mixup_alpha, self.cutmix_alpha, self.randaugment)


NF_RESNET = Hyperparameters(
    family="nf_resnet", batch_size=1024, epochs=90, base_learning_rate=0.1, weight_decay=5e-5,
    source="NF paper §5.1 (Table 1)")
NF_REGNET = Hyperparameters(
    family="nf_regnet", batch_size=1024, epochs=360, base_learning_rate=0.1, weight_decay=5e-5,
    ema_decay=0.99999, mixup_alpha=0.2, cutmix_alpha=1.0, source="NF paper App. C, §6 (CutMix + MixUp)")
NFNET = Hyperparameters(
    family="nfnet", batch_size=4096, epochs=360, base_learning_rate=0.1, weight_decay=2e-5, clip_factor=0.01,
    ema_decay=0.99999, mixup_alpha=0.2, cutmix_alpha=1.0, randaugment=(4, 5), steps_per_epoch=312,
    source="NFNet paper §4, App. A")
BN_RESNET = NF_RESNET.replace(family="bn_resnet", source="NF paper §5.1 (BatchNorm baseline)")

def paper_hyperparameters(model_name):
    """The paper's :class:`Hyperparameters` for a builder name (``"NFNetF1"``, ``"NFRegNetB0"``,
    ``"NFResNet50"``, ``"BNResNetV2"``) or a family (``"nfnet"``, ``"nf_regnet"``, ``"nf_resnet"``)."""
    from keras_nfnets.registry import builders

    by_family = {"nf_resnet": NF_RESNET, "nf_regnet": NF_REGNET, "nfnet": NFNET, "bn_resnet": BN_RESNET}
    if model_name in by_family:
        return by_family[model_name]
    if model_name == "BNResNetV2":
        return BN_RESNET
    table = builders()
    if model_name not in table:
        raise ValueError(f"No recipe for {model_name!r}. Use a builder name ({', '.join(table)}), "
                         f"'BNResNetV2', or a family ({', '.join(by_family)}).")
    row = table[model_name]
    if row.randaugment_magnitude is not None:  # NFNet-F0…F7 (DeepMind's cutmix_mixup_randaugment_405/410/415)
        return NFNET.replace(randaugment=(4, row.randaugment_magnitude))
    if row.family == "nfnet":  # timm's NFNet-L / ECA-NFNet-L: the F0 recipe
        return NFNET.replace(source=NFNET.source + "; F0 settings for timm's L variants")
    return by_family[row.family]


@dataclasses.dataclass(frozen=True)
class RecipePlan:
    """A recipe's numbers for one run, before any Keras object exists (:func:`plan_recipe`):
    the hyperparameters with the run's overrides, the peak learning rate, warm-up and total
    optimizer steps, the EMA decay, the effective batch and the AGC advice."""

    hyperparameters: Hyperparameters
    learning_rate: float
    warmup_steps: int
    total_steps: int
    ema_decay: Optional[float]
    batch_size: Optional[int] = None  # the global (effective) batch the learning rate is for
    accumulation_steps: int = 1  # micro-batches per optimizer step (batch_size / accumulation_steps each)
    advice: Optional[str] = None  # the AGC advice for batches above the paper's 4096

    @property
    def micro_batch_size(self):
        return None if self.batch_size is None else self.batch_size // self.accumulation_steps

    @property
    def augmentation(self):
        return self.hyperparameters.augmentation()

    def summary(self):
        h = self.hyperparameters
        rate = f"{h.base_learning_rate:g} per {h.base_batch_size}"
        if self.batch_size:
            per_base = self.learning_rate * h.base_batch_size / self.batch_size
            if abs(per_base - h.base_learning_rate) > 1e-6 * h.base_learning_rate:
                rate = f"{per_base:.4g} per {h.base_batch_size}; the paper's: {h.base_learning_rate:g}"
        batch = ""
        if self.batch_size:
            batch = f"batch {self.batch_size}" + (f" (accumulated: {self.accumulation_steps} micro-batches of "
                                                  f"{self.micro_batch_size})" if self.accumulation_steps > 1 else "")
            batch += ", "
        return (f"{h.family} recipe ({h.source}): {batch}SGD Nesterov {h.momentum}, peak LR {self.learning_rate:.4g} "
                f"({rate}), warmup {self.warmup_steps} of "
                f"{self.total_steps} steps then cosine, weight decay {h.weight_decay:g}, "
                f"AGC {'λ=' + format(h.clip_factor, 'g') if h.clip_factor else 'off'}, "
                f"label smoothing {h.label_smoothing:g}, EMA {_rounded(self.ema_decay) if self.ema_decay else 'off'}, "
                f"CutMix {h.cutmix_alpha:g} / MixUp {h.mixup_alpha:g}, RandAugment {h.randaugment or 'off'}"
                + (f". {self.advice}" if self.advice else ""))


@dataclasses.dataclass(frozen=True)
class Recipe(RecipePlan):
    """What :func:`recipe` returns: pass ``optimizer``, ``loss`` and ``metrics`` to
    ``model.compile``, ``callbacks`` to ``model.fit``, ``augmentation`` to
    :func:`keras_nfnets.data.train_dataset`; the numbers are its :class:`RecipePlan`'s."""

    optimizer: object = None  # keras.optimizers.Optimizer (an SGDAGC)
    loss: object = None  # keras.losses.Loss
    metrics: list = dataclasses.field(default_factory=list)
    callbacks: list = dataclasses.field(default_factory=list)


_DEFAULT = object()


def _rounded(decay):
    return round(decay, 8 if decay > 0.999 else 6)


def plan_recipe(model_name, batch_size, epochs, steps_per_epoch, *, learning_rate=None, clip_factor=_DEFAULT,
                weight_decay=None, label_smoothing=None, ema=_DEFAULT, warmup_epochs=None, augmentation=_DEFAULT,
                accumulation_steps=1):
    """The numbers of :func:`recipe` (a :class:`RecipePlan`), without Keras: the same arguments
    less ``num_classes`` and ``from_logits``."""
    for name, value in (("batch_size", batch_size), ("epochs", epochs), ("steps_per_epoch", steps_per_epoch),
                        ("accumulation_steps", accumulation_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
    if batch_size % accumulation_steps:
        raise ValueError(f"`batch_size` {batch_size} (the effective batch) must be a multiple of "
                         f"`accumulation_steps` {accumulation_steps}.")
    h = paper_hyperparameters(model_name)
    advice = None
    if clip_factor is _DEFAULT and h.clip_factor and batch_size > 4096:
        advice = (f"The paper validates AGC λ=0.01 up to batch 4096; at the effective batch {batch_size} a smaller "
                  "λ may be needed (§4.1: larger batches need stronger clipping)")
        warnings.warn(advice + ".", stacklevel=3)
    h = h.replace(
        clip_factor=h.clip_factor if clip_factor is _DEFAULT else (clip_factor or None),
        weight_decay=h.weight_decay if weight_decay is None else float(weight_decay),
        label_smoothing=h.label_smoothing if label_smoothing is None else float(label_smoothing),
    )
    if augmentation is not _DEFAULT:
        augmentation = augmentation or Augmentation()
        h = h.replace(mixup_alpha=augmentation.mixup_alpha, cutmix_alpha=augmentation.cutmix_alpha,
                      randaugment=augmentation.randaugment)
    peak = float(learning_rate) if learning_rate is not None else h.base_learning_rate * batch_size / h.base_batch_size
    total_steps = epochs * steps_per_epoch
    warmup = h.warmup_epochs * epochs / h.epochs if warmup_epochs is None else float(warmup_epochs)
    warmup_steps = min(int(round(warmup * steps_per_epoch)), total_steps - 1)
    if ema is _DEFAULT:
        ema_decay = None
        if h.ema_decay:
            paper_horizon = 1.0 / (1.0 - h.ema_decay)
            horizon = paper_horizon * total_steps / (h.epochs * h.steps_per_epoch)
            ema_decay = min(h.ema_decay, 1.0 - 1.0 / max(horizon, 10.0))
    else:
        ema_decay = ema
    return RecipePlan(h, peak, warmup_steps, total_steps, ema_decay or None, batch_size, accumulation_steps, advice)


def recipe(model_name, batch_size, epochs, steps_per_epoch, num_classes=1000, *, learning_rate=None,
           clip_factor=_DEFAULT, weight_decay=None, label_smoothing=None, ema=_DEFAULT, warmup_epochs=None,
           augmentation=_DEFAULT, from_logits=True, accumulation_steps=1):
    """The paper's optimizer, loss, metrics, callbacks and augmentation for ``model_name``.

    Args:
        model_name: builder name or family (see :func:`paper_hyperparameters`).
        batch_size: the global batch size of one optimizer step: with ``accumulation_steps`` N, the
            effective batch N·b of N micro-batches of b. The learning rate, warm-up, EMA horizon and
            AGC advice read it. epochs, steps_per_epoch: the run's length in optimizer steps.
        num_classes: for metrics (top-5 accuracy is added when there are more than 5 classes).
        learning_rate: peak LR (default: the paper's, scaled linearly with ``batch_size``).
        clip_factor: AGC's λ (default: the paper's; ``None``/0 turns AGC off).
        weight_decay, label_smoothing, warmup_epochs: override the paper's values.
        ema: EMA decay (default: scaled from the paper's; ``None`` turns EMA off).
        augmentation: an :class:`~keras_nfnets.data.Augmentation` (default: the paper's).
        from_logits: the model ends without softmax (``classifier_activation=None``).
        accumulation_steps: average the gradients of this many micro-batches into each optimizer
            step (Keras' ``gradient_accumulation_steps``); AGC clips the average.
    """
    plan = plan_recipe(model_name, batch_size, epochs, steps_per_epoch, learning_rate=learning_rate,
                       clip_factor=clip_factor, weight_decay=weight_decay, label_smoothing=label_smoothing, ema=ema,
                       warmup_epochs=warmup_epochs, augmentation=augmentation, accumulation_steps=accumulation_steps)
    return build_recipe(plan, num_classes, from_logits)


def build_recipe(plan, num_classes=1000, from_logits=True):
    """The Keras objects of a :class:`RecipePlan`: SGD with AGC on the warm-up + cosine schedule,
    the label-smoothed loss, accuracy (and top-5 above 5 classes), the NaN stop and the EMA."""
    import keras

    from keras_nfnets.optimizers import SGDAGC, warmup_cosine_decay
    from keras_nfnets.training.callbacks import StopOnNaN
    from keras_nfnets.training.ema import ExponentialMovingAverage

    h = plan.hyperparameters
    schedule = warmup_cosine_decay(plan.learning_rate, plan.total_steps, plan.warmup_steps)
    optimizer = SGDAGC(learning_rate=schedule, momentum=h.momentum, nesterov=True, weight_decay=h.weight_decay,
                       clip_factor=h.clip_factor or 0.0,
                       gradient_accumulation_steps=plan.accumulation_steps if plan.accumulation_steps > 1 else None)
    loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=h.label_smoothing)
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if num_classes > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
    callbacks = [StopOnNaN(clip_factor=h.clip_factor, learning_rate=plan.learning_rate)]
    if plan.ema_decay:
        callbacks.append(ExponentialMovingAverage(plan.ema_decay))
    ema_decay = None if not plan.ema_decay else _rounded(plan.ema_decay)  # as reported (the callback's is exact)
    fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(RecipePlan)}
    return Recipe(**dict(fields, ema_decay=ema_decay), optimizer=optimizer, loss=loss, metrics=metrics,
                  callbacks=callbacks)
