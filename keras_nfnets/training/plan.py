"""A run's plan: every number :func:`~keras_nfnets.training.train` decides before it builds
anything (sizes, batch, epochs, steps, learning rate, the recipe, the run directory), from the
:class:`~keras_nfnets.training.config.TrainConfig` and a few facts about the data. Plain Python:
nothing here imports Keras or TensorFlow, so a plan is made (and tested) in milliseconds."""

import dataclasses
import json
import math
import os
from typing import Any, Tuple

from keras_nfnets.training.config import TrainConfig
from keras_nfnets.training.options import DATASET_DEFAULTS


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What the plan needs to know of the data: training examples, classes, their names and the
    evaluation split (from :func:`keras_nfnets.data.load_source`)."""

    examples: int
    classes: int
    class_names: Tuple[str, ...] = ()
    eval_split: str = ""

    @classmethod
    def of(cls, source, eval_split=""):
        return cls(source.num_examples, source.num_classes, tuple(source.class_names), eval_split)


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    """A planned run. ``config`` is the resolved configuration: every ``None`` and ``"paper"``
    replaced by what runs (epochs, batch, sizes, steps per epoch, peak learning rate, AGC λ, weight
    decay, EMA decay, RandAugment); the rest are facts derived from it and the data."""

    config: TrainConfig
    recipe: Any  # a keras_nfnets.training.recipes.RecipePlan
    flip: bool
    area_range: Tuple[float, float]
    eval_transform: Any  # a keras_nfnets.data.EvalTransform
    classes: int
    class_names: Tuple[str, ...]
    eval_split: str
    replicas: int = 1
    workers: int = 1

    @property
    def effective_batch_size(self):
        """One optimizer step's examples: ``batch_size × accumulation_steps``."""
        return self.config.batch_size * self.config.accumulation_steps

    @property
    def augmentation(self):
        return self.recipe.augmentation

    def to_json(self):
        """The run's ``run.json``: the resolved configuration's JSON and the derived facts."""
        record = self.config.to_json()
        record.update(
            eval_transform=dataclasses.asdict(self.eval_transform), flip=self.flip, area_range=list(self.area_range),
            classes=self.classes, class_names=list(self.class_names), eval_split=self.eval_split,
            replicas=self.replicas, workers=self.workers, effective_batch_size=self.effective_batch_size,
            recipe=self.recipe.summary(), label_smoothing=self.recipe.hyperparameters.label_smoothing,
            agc_advice=self.recipe.advice)
        return json.loads(json.dumps(record))  # plain JSON types (tuples as lists)


def default_output_dir(config):
    """``runs/<model>_<dataset>`` (the dataset's last path component)."""
    return os.path.join("runs", f"{config.model_name}_{os.path.basename(os.path.normpath(config.dataset))}")


def output_directory(config):
    """The run's :class:`~keras_nfnets.training.run_dir.RunDir`, checked before any work: it can be
    written, and holds no file a run would replace that no run of keras_nfnets wrote."""
    from keras_nfnets.training.run_dir import RunDir

    run_dir = RunDir(config.output_dir or default_output_dir(config))
    run_dir.check_writable()
    run_dir.check_not_foreign()
    return run_dir


def make_plan(config, data, replicas=1, workers=1):
    """The :class:`TrainPlan` of ``config`` on ``data`` (:class:`DataFacts`) with ``replicas``
    devices in sync over ``workers`` processes. Refuses a batch the data or the replicas cannot
    hold, with the fix."""
    from keras_nfnets.training.recipes import paper_hyperparameters, plan_recipe

    paper = paper_hyperparameters(config.model_name)
    defaults = DATASET_DEFAULTS.get(config.dataset, {})
    epochs = int(config.epochs or defaults.get("epochs") or paper.epochs)
    accumulation = int(config.accumulation_steps)
    batch_size = int(config.batch_size or max(1, (defaults.get("batch_size") or paper.batch_size) // accumulation))
    image_size, flip, area_range, evaluation = _pipeline(config)
    steps = steps_per_epoch(data.examples, batch_size, config.steps_per_epoch, replicas, accumulation)
    effective = batch_size * accumulation

    learning_rate = config.learning_rate
    if learning_rate is None and config.weights not in (None, "none"):  # fine-tuning: a tenth of the recipe's LR
        learning_rate = paper.base_learning_rate * effective / paper.base_batch_size / 10.0
    per_256 = defaults.get("learning_rate_per_256")
    if learning_rate is None and per_256:  # the dataset's own rate, scaled to the batch as the paper's
        learning_rate = per_256 * effective / 256
    overrides = {}
    if config.clip_factor != "paper":
        overrides["clip_factor"] = config.clip_factor
    if config.weight_decay is not None:
        overrides["weight_decay"] = config.weight_decay
    if config.ema != "paper":
        overrides["ema"] = config.ema
    recipe = plan_recipe(config.model_name, effective, epochs, steps, learning_rate=learning_rate,
                         accumulation_steps=accumulation, augmentation=_augmentation(config, paper), **overrides)
    h = recipe.hyperparameters
    resolved = config.replace(
        epochs=epochs, batch_size=batch_size, image_size=image_size, eval_image_size=evaluation.size,
        steps_per_epoch=steps, output_dir=config.output_dir or default_output_dir(config),
        learning_rate=recipe.learning_rate, clip_factor=h.clip_factor, weight_decay=h.weight_decay,
        ema=recipe.ema_decay, randaugment=h.randaugment)
    return TrainPlan(resolved, recipe, flip, area_range, evaluation, data.classes, tuple(data.class_names),
                     data.eval_split, replicas, workers)


def steps_per_epoch(examples, batch_size, cap, replicas, accumulation_steps=1):
    """Optimizer steps per epoch: full effective batches (``accumulation_steps`` micro-batches of
    ``batch_size``) of ``examples``, at most ``cap``."""
    if batch_size % replicas:
        raise ValueError(f"batch_size {batch_size} must be divisible by the {replicas} replicas of the strategy.")
    steps = min(examples // (batch_size * accumulation_steps), cap or examples)
    if steps < 1:
        fits = max(replicas, 2 ** int(math.log2(max(1, examples // 2))) // replicas * replicas)
        if accumulation_steps > 1:
            raise ValueError(f"The effective batch, `batch_size` {batch_size} × `accumulation_steps` "
                             f"{accumulation_steps}, exceeds the {examples} training images of this "
                             "dataset: pass fewer accumulation steps or a smaller batch.")
        raise ValueError(f"`batch_size` {batch_size} exceeds the {examples} training images of this "
                         f"dataset: pass a smaller one, e.g. `batch_size={fits}` (any number up to "
                         f"{examples} that the {replicas} replica(s) divide).")
    return steps


def _augmentation(config, paper):
    """The run's augmentation: the recipe's (none for digits by default, none with ``"none"``),
    its RandAugment replaced by ``config.randaugment`` (``(layers, magnitude)``, ``None``: off)."""
    if config.augment == "none" or (config.augment == "default"
                                    and "augmentation" in DATASET_DEFAULTS.get(config.dataset, {})):
        return None
    augmentation = paper.augmentation()
    if config.randaugment != "paper":
        augmentation = dataclasses.replace(
            augmentation, randaugment=None if config.randaugment is None else tuple(config.randaugment))
    return augmentation


def _pipeline(config):
    """Training image size, flip, crop area and the evaluation transform: the dataset's defaults
    (digits), else the checkpoint's evaluation when fine-tuning ``weights="imagenet"``, else the
    model's sizes and the paper's evaluation crop."""
    from keras_nfnets.data import transforms
    from keras_nfnets.weights.presets import checkpoint_for, variant

    row = variant(config.model_name)
    defaults = DATASET_DEFAULTS.get(config.dataset, {})
    checkpoint = checkpoint_for(config.model_name) if config.weights == "imagenet" else None
    if checkpoint is not None:
        evaluation, train_size = checkpoint.eval_transform(), checkpoint.train_size
    else:
        evaluation = transforms.EvalTransform(row.test_size, crop=row.eval_crop, pil_resize=False)
        train_size = row.train_size
    if "mean" in defaults:
        evaluation = evaluation.replace(mean=defaults["mean"], std=defaults["std"])
    if "eval_crop" in defaults:
        evaluation = evaluation.replace(crop=defaults["eval_crop"])
    size = int(config.image_size or defaults.get("image_size") or train_size)
    evaluation = evaluation.replace(size=int(config.eval_image_size or config.image_size
                                             or defaults.get("image_size") or evaluation.size))
    return size, defaults.get("flip", True), tuple(defaults.get("area_range", (0.08, 1.0))), evaluation

