"""``train`` and ``evaluate``: a complete run with ``model.fit`` — strategy, precision, the
paper's recipe, tf.data pipelines, per-epoch checkpoints with exact resume, TensorBoard, EMA."""

import dataclasses
import json
import os
import signal
import sys
import time
from typing import Optional

from keras_nfnets.data import transforms

DEFAULT_MODEL = "NFResNet14"
DEFAULT_DATASET = "digits"

# Dataset-specific defaults. Digits: 8×8 ink on black, not flipped, mildly cropped, scaled to
# [0, 1] rather than centred (ImageNet's mean would turn the empty background into a large
# constant whose zero-padded borders dominate an unnormalised net's first activations).
DATASET_DEFAULTS = {
    "digits": dict(image_size=32, batch_size=64, epochs=15, flip=False, area_range=(0.6, 1.0), eval_crop="resize",
                   augmentation=None, mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0)),
}


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: object
    history: dict
    metrics: dict
    output_dir: str
    settings: dict
    images_per_second: Optional[float] = None
    stopped: Optional[str] = None


def _throughput_callback(batch_size):
    """A callback recording ``(images, seconds)`` of every epoch's training steps."""
    import keras

    class Throughput(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._steps = time.perf_counter(), 0

        def on_train_batch_end(self, batch, logs=None):
            self._steps += 1

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((self._steps * batch_size, time.perf_counter() - self._start))

        def images_per_second(self):
            """Over every epoch after the first (which includes tracing)."""
            timed = self.epochs[1:] or self.epochs
            seconds = sum(t for _, t in timed)
            return sum(n for n, _ in timed) / seconds if seconds > 0 else None

    return Throughput()


def _read_progress(backup_dir):
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def _pipeline_settings(model_name, dataset, config, weights, image_size, eval_image_size):
    """Image sizes, crop rule and normalisation for a model/dataset pair."""
    from keras_nfnets.preprocessing import eval_transform

    defaults = DATASET_DEFAULTS.get(dataset, {})
    mean = defaults.get("mean", transforms.IMAGENET_MEAN)
    std = defaults.get("std", transforms.IMAGENET_STD)
    if weights == "imagenet":
        checkpoint = eval_transform(model_name)
        mean = tuple(255.0 * m for m in checkpoint.mean)
        std = tuple(255.0 * s for s in checkpoint.std)
        train_size, test_size = checkpoint.train_size, checkpoint.test_size
    else:
        train_size, test_size = config.train_size, config.test_size
    size = image_size or defaults.get("image_size") or train_size
    return dict(
        image_size=int(size),
        eval_image_size=int(eval_image_size or (image_size or defaults.get("image_size") or test_size)),
        eval_crop=defaults.get("eval_crop", "resize_crop_32" if config.family == "nfnet" else "crop_resize"),
        flip=defaults.get("flip", True),
        area_range=tuple(defaults.get("area_range", (0.08, 1.0))),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


def build_classifier(model_name, num_classes, image_size, weights=None, drop_rate=None):
    """``model_name`` with ``num_classes`` logits. ``weights="imagenet"`` loads the pretrained
    backbone (``include_top=False``) and adds a new dropout + ``predictions`` layer."""
    import keras

    from keras_nfnets.applications import BUILDERS

    if model_name not in BUILDERS:
        raise ValueError(f"Unknown model {model_name!r}; choose one of {', '.join(BUILDERS)}.")
    builder = BUILDERS[model_name]
    shape = (image_size, image_size, 3)
    if weights in (None, "none"):
        return builder(input_shape=shape, classes=num_classes, classifier_activation=None, drop_rate=drop_rate)
    if weights == "imagenet" and num_classes == 1000:
        return builder(weights="imagenet", input_shape=shape, classifier_activation=None)
    backbone = builder(weights=weights, include_top=False, pooling="avg", input_shape=shape)
    rate = builder.config.drop_rate if drop_rate is None else drop_rate
    x = backbone.output
    if rate:
        x = keras.layers.Dropout(rate, name="top_dropout")(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer="zeros", name="predictions", dtype="float32")(x)
    return keras.Model(backbone.input, outputs, name=backbone.name)


def train(model=DEFAULT_MODEL, dataset=DEFAULT_DATASET, *, epochs=None, batch_size=None, image_size=None,
          eval_image_size=None, weights=None, strategy="auto", precision="float32", output_dir=None, seed=0,
          learning_rate=None, clip_factor="paper", weight_decay=None, ema="paper", augment="default",
          steps_per_epoch=None, data_dir=None, manual_dir=None, tpu=None, resume=True, tensorboard=True,
          verbose="auto", drop_rate=None, callbacks=None):
    """Train ``model`` on ``dataset`` with the paper's recipe and ``model.fit``.

    Args:
        model: builder name (default ``NFResNet14``); dataset: ``"digits"`` (embedded), an image
            folder, or a TFDS name (``"imagenet2012"`` with ``manual_dir``).
        epochs, batch_size (global), image_size, eval_image_size: default to the dataset's
            (digits: 15 epochs, batch 64, 32 px) or else the paper's batch/epochs and the model's
            train/test sizes.
        weights: ``None``, ``"imagenet"`` (fine-tune: new classifier, LR one tenth of the recipe's)
            or a ``.weights.h5`` file.
        strategy: ``auto | one_device | mirrored | multi_worker | tpu``; precision: ``float32 |
            mixed_bfloat16 | mixed_float16``.
        output_dir: where ``model.keras``, ``run.json``, ``history.json``, ``backup/`` (per-epoch
            checkpoints) and ``logs/`` (TensorBoard) go (default ``runs/<model>_<dataset>``).
        seed: data order, crops and initialisation (``None``: not reproducible).
        learning_rate, clip_factor, weight_decay, ema: override the recipe (``"paper"``: keep).
        augment: ``"default"`` (the paper's, none for digits), ``"paper"``, or ``"none"``.
        steps_per_epoch: cap the steps of each epoch (quick runs, benchmarks).
        resume: continue from ``output_dir/backup`` if present (else start over).
        callbacks: extra Keras callbacks for ``fit``.
    """
    import keras

    from keras_nfnets import data
    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.training.callbacks import RandomStateBackup
    from keras_nfnets.training.distribute import make_strategy, set_precision
    from keras_nfnets.training.ema import ExponentialMovingAverage
    from keras_nfnets.training.recipes import paper_hyperparameters, recipe

    if model not in BUILDERS:
        raise ValueError(f"Unknown model {model!r}; choose one of {', '.join(BUILDERS)}.")
    if augment not in ("default", "paper", "none"):
        raise ValueError(f"`augment` must be 'default', 'paper' or 'none'; received {augment!r}.")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("image_size", image_size),
                        ("steps_per_epoch", steps_per_epoch)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"`{name}` must be a positive integer (or None for the default); received {value!r}.")
    paper = paper_hyperparameters(model)
    defaults = DATASET_DEFAULTS.get(dataset, {})
    epochs = int(epochs or defaults.get("epochs") or paper.epochs)
    batch_size = int(batch_size or defaults.get("batch_size") or paper.batch_size)
    output_dir = output_dir or os.path.join("runs", f"{model}_{os.path.basename(os.path.normpath(dataset))}")
    backup_dir = os.path.join(output_dir, "backup")
    if seed is not None:
        keras.utils.set_random_seed(int(seed))

    train_split, eval_split = data.default_splits(dataset, data_dir)
    train_source = data.load_source(dataset, train_split, data_dir=data_dir, manual_dir=manual_dir)
    eval_source = data.load_source(dataset, eval_split, data_dir=data_dir, manual_dir=manual_dir)
    settings = _pipeline_settings(model, dataset, BUILDERS[model].config, weights, image_size, eval_image_size)

    distribution = make_strategy(strategy, tpu)
    replicas = distribution.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch_size {batch_size} must be divisible by the {replicas} replicas of the strategy.")
    steps = train_source.num_examples // batch_size
    if steps_per_epoch:
        steps = min(steps, int(steps_per_epoch))
    if steps < 1:
        raise ValueError(f"batch_size {batch_size} exceeds the {train_source.num_examples} training images.")

    if augment == "none" or (augment == "default" and "augmentation" in defaults):
        augmentation = None
    else:
        augmentation = paper.augmentation()
    fine_tune = weights is not None and weights != "none"
    set_precision(precision)
    with distribution.scope():
        net = build_classifier(model, train_source.num_classes, settings["image_size"], weights, drop_rate)
        base_lr = None if learning_rate is None else float(learning_rate)
        if base_lr is None and fine_tune:
            base_lr = paper.base_learning_rate * batch_size / paper.base_batch_size / 10.0
        plan = recipe(
            model, batch_size, epochs, steps, train_source.num_classes, learning_rate=base_lr,
            augmentation=augmentation,
            **({} if clip_factor == "paper" else {"clip_factor": clip_factor}),
            **({} if weight_decay is None else {"weight_decay": weight_decay}),
            **({} if ema == "paper" else {"ema": ema}),
        )
        net.compile(optimizer=plan.optimizer, loss=plan.loss, metrics=plan.metrics)

    if not resume and os.path.isdir(backup_dir):
        import shutil

        shutil.rmtree(backup_dir)
    start_epoch = _read_progress(backup_dir)
    settings.update(model=model, dataset=dataset, weights=weights, classes=train_source.num_classes,
                    class_names=list(train_source.class_names), epochs=epochs, batch_size=batch_size,
                    steps_per_epoch=steps, precision=precision, strategy=strategy, replicas=replicas, seed=seed,
                    recipe=plan.summary(), eval_split=eval_split)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "run.json"), "w") as f:
        json.dump(settings, f, indent=2)

    eval_ds = data.eval_dataset(eval_source, settings["eval_image_size"], batch_size, crop=settings["eval_crop"],
                                mean=settings["mean"], std=settings["std"])
    throughput = _throughput_callback(batch_size)
    for callback in plan.callbacks:
        if isinstance(callback, ExponentialMovingAverage):
            callback.backup_dir = backup_dir  # EMA state is checkpointed alongside the weights
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False), RandomStateBackup(backup_dir),
                 throughput, *plan.callbacks, *(callbacks or [])]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), write_graph=False))
    history = {}
    stopped = None
    if start_epoch < epochs:
        train_ds = data.train_dataset(
            train_source, settings["image_size"], batch_size, epochs=epochs, start_epoch=start_epoch, seed=seed,
            flip=settings["flip"], area_range=settings["area_range"], augmentation=plan.augmentation,
            mean=settings["mean"], std=settings["std"], steps_per_epoch=steps)
        if start_epoch:
            print(f"Resuming from {backup_dir} at epoch {start_epoch + 1}/{epochs}.", flush=True)
        def on_sigterm(signum, frame):  # preemption: stop like Ctrl-C, keep what was done
            raise KeyboardInterrupt

        try:
            previous, installed = signal.signal(signal.SIGTERM, on_sigterm), True
        except ValueError:  # not the main thread: leave signals alone
            previous, installed = None, False
        try:
            fit = net.fit(train_ds, epochs=epochs, steps_per_epoch=steps, validation_data=eval_ds, shuffle=False,
                          callbacks=callbacks, verbose=verbose)
            history = {k: [float(v) for v in values] for k, values in fit.history.items()}
        except KeyboardInterrupt:
            path = os.path.join(output_dir, "interrupted.weights.h5")
            net.save_weights(path)
            print(f"\nInterrupted: weights saved to {path}; the last completed epoch is in {backup_dir}. "
                  "Run the same command again to resume from it.", file=sys.stderr, flush=True)
            raise
        finally:
            if installed:
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        stopped = next((c.message for c in plan.callbacks if getattr(c, "message", None)), None)
        if stopped is None:
            net.save(os.path.join(output_dir, "model.keras"))
    else:
        print(f"{output_dir}: all {epochs} epochs were already done; evaluating the saved model.", flush=True)
        final = os.path.join(output_dir, "model.keras")
        if os.path.exists(final):
            net = keras.saving.load_model(final)
            net.compile(loss=plan.loss, metrics=plan.metrics)
        else:
            net.load_weights(os.path.join(backup_dir, "latest.weights.h5"))
    metrics = net.evaluate(eval_ds, verbose=0, return_dict=True) if stopped is None else {}
    metrics = {k: float(v) for k, v in metrics.items()}
    with open(os.path.join(output_dir, "history.json"), "w") as f:
        json.dump({"history": history, "test": metrics, "stopped": stopped}, f, indent=2)
    return TrainResult(net, history, metrics, output_dir, settings, throughput.images_per_second(), stopped)


def evaluate(model, dataset=None, *, split=None, image_size=None, batch_size=64, crop=None, data_dir=None,
             manual_dir=None, verbose=0):
    """Accuracy (and top-5) of a trained model on a dataset split.

    ``model``: a run directory written by :func:`train` (uses its ``model.keras`` and settings),
    a ``.keras`` file, or a Keras model. The dataset, image size, crop and normalisation default
    to the run's.
    """
    import keras

    from keras_nfnets import data

    settings = {}
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        run_dir = path if os.path.isdir(path) else os.path.dirname(path)
        if os.path.exists(os.path.join(run_dir, "run.json")):
            with open(os.path.join(run_dir, "run.json")) as f:
                settings = json.load(f)
        file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
        if not os.path.exists(file):
            raise FileNotFoundError(f"No trained model at {file!r}; pass a run directory or a .keras file.")
        import keras_nfnets  # noqa: F401  (registers the custom layers)

        model = keras.saving.load_model(file)
    dataset = dataset or settings.get("dataset")
    if dataset is None:
        raise ValueError("Which dataset? Pass dataset= (or --dataset).")
    split = split or (settings.get("eval_split") if dataset == settings.get("dataset") else None) or \
        data.default_splits(dataset, data_dir)[1]
    source = data.load_source(dataset, split, data_dir=data_dir, manual_dir=manual_dir)
    size = int(image_size or settings.get("eval_image_size") or model.input.shape[1] or 224)
    classes = model.output.shape[-1]
    if classes != source.num_classes:
        raise ValueError(f"The model predicts {classes} classes but {dataset!r} has {source.num_classes}.")
    eval_ds = data.eval_dataset(source, size, batch_size, crop=crop or settings.get("eval_crop", "crop_resize"),
                                mean=tuple(settings.get("mean", transforms.IMAGENET_MEAN)),
                                std=tuple(settings.get("std", transforms.IMAGENET_STD)))
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if classes > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
    softmax = getattr(model.layers[-1], "activation", None) is keras.activations.softmax
    model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=not softmax), metrics=metrics)
    result = model.evaluate(eval_ds, verbose=verbose, return_dict=True)
    result = {k: float(v) for k, v in result.items()}
    result.update(dataset=dataset, split=split, examples=source.num_examples, image_size=size)
    return result
