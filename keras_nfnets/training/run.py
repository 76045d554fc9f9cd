"""``train`` and ``evaluate``: a complete run with ``model.fit`` — strategy, precision, the
paper's recipe, tf.data pipelines, per-epoch checkpoints with exact resume, TensorBoard, EMA."""

import dataclasses
import os
import sys
from typing import Optional

from keras_nfnets import _compat, backend, messages
from keras_nfnets.saving import load_model as load_keras_file
from keras_nfnets.training import inputs
from keras_nfnets.training.callbacks import backup_progress, history_callback, throughput_callback
from keras_nfnets.training.distribute import is_multi_worker
from keras_nfnets.training.config import TrainConfig, check_names, signature
from keras_nfnets.training.options import AUGMENT_CHOICES, DATASET_DEFAULTS, DEFAULT_DATASET, DEFAULT_MODEL  # noqa: F401
from keras_nfnets.training.plan import DataFacts, make_plan, output_directory
from keras_nfnets.training.run_dir import INTERRUPTED, LOGS, MODEL_FILE, RunDir, load_run  # noqa: F401


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


def build_classifier(model_name, num_classes, image_size, weights=None, drop_rate=None, stochastic_depth_rate=None):
    """``model_name`` with ``num_classes`` logits. With ``weights`` (``"imagenet"`` or a file) the
    pretrained backbone gets a new, zero-initialised head (:func:`add_classifier_head`) unless the
    classes already fit its ImageNet head."""
    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.models.builder import add_classifier_head
    from keras_nfnets.models.model import NFModel

    builder = BUILDERS[model_name]
    shape = (image_size, image_size, 3)
    if weights in (None, "none"):
        return builder(input_shape=shape, classes=num_classes, classifier_activation=None, drop_rate=drop_rate,
                       stochastic_depth_rate=stochastic_depth_rate)
    if weights == "imagenet" and num_classes == 1000:
        return builder(weights="imagenet", input_shape=shape, classifier_activation=None, drop_rate=drop_rate,
                       stochastic_depth_rate=stochastic_depth_rate)
    backbone = builder(weights=weights, include_top=False, input_shape=shape, stochastic_depth_rate=stochastic_depth_rate)
    rate = builder.config.drop_rate if drop_rate is None else drop_rate
    logits = add_classifier_head(backbone.output, num_classes, drop_rate=rate, init_std=0.0)
    return NFModel(backbone.input, logits, name=backbone.name, architecture=backbone.architecture.replace(drop_rate=rate),
                   checkpoint=backbone.checkpoint)  # the fine-tuned model still knows what it is


def _build_and_compile(plan, recipe, distribution, jit_compile="auto"):
    """The classifier of ``plan`` (``remat``: each residual block recomputed in the backward pass,
    set before compiling), compiled with ``recipe`` under ``distribution``; ``jit_compile`` as the
    backend resolved it (``True`` on a model with a layer XLA cannot compile is refused here,
    where Keras would warn and run uncompiled)."""
    config = plan.config
    with distribution.scope():
        model = build_classifier(config.model_name, plan.classes, config.image_size, config.weights,
                                 config.drop_rate, config.stochastic_depth_rate)
        model.remat = config.remat
        if jit_compile is True:
            uncompilable = [layer.name for layer in _compat.all_sublayers(model) if not layer.supports_jit]
            if uncompilable:
                raise ValueError(f"`jit_compile=True`, but these layers do not support XLA: {uncompilable}. Use "
                                 "`jit_compile=\"auto\"` or `jit_compile=False`.")
        model.compile(optimizer=recipe.optimizer, loss=recipe.loss, metrics=recipe.metrics, jit_compile=jit_compile)
    if is_multi_worker(distribution):
        backend.current().prepare_multi_worker_model(model)
    return model


def _tensorboard_available():
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _callbacks(recipe, run_dir, throughput, extra, tensorboard, role):
    """Atomic per-epoch backups (weights, optimizer, EMA state, random states), the recipe's
    callbacks, throughput, TensorBoard (on the chief, when it is installed), and the caller's."""
    import keras

    from keras_nfnets.training.callbacks import EpochBackup

    participants = [c for c in recipe.callbacks if hasattr(c, "backup_state")]  # EMA
    callbacks = [EpochBackup(run_dir.backup, participants, is_chief=role.is_chief), throughput, *recipe.callbacks, *extra]
    if tensorboard and role.is_chief and _tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(run_dir.file(LOGS), write_graph=False))
    elif tensorboard and role.is_chief:
        print('TensorBoard logs skipped: the tensorboard package is missing (pip install "keras-nfnets[train]").',
              file=sys.stderr, flush=True)
    return callbacks


def _fit(model, train_ds, eval_ds, config, callbacks, run_dir, start_epoch, role):
    """``model.fit`` from ``start_epoch``; SIGTERM (preemption) stops like Ctrl-C, which saves the
    current weights (on the chief): a line says so the moment the signal arrives, then the weights
    are written (:mod:`keras_nfnets.training.interrupt`). Running out of memory is a
    :class:`TrainingOutOfMemoryError` that says what to change; the backups of completed epochs
    stay as they are."""
    from keras_nfnets import _startup
    from keras_nfnets.training.interrupt import Interruption, StopWhenRequested

    def save():
        path = run_dir.file(INTERRUPTED)
        model.save_weights(path)
        finished = backup_progress(run_dir.backup)[0]
        where = (f"the last completed epoch ({finished}) is in {run_dir.backup}. Run the same command again to resume "
                 "from it." if finished else "no epoch completed. Run the same command again to start over.")
        return f"\nInterrupted: weights saved to {path}; {where}"

    describe = f"saving the current weights to {run_dir.file(INTERRUPTED)}" if role.is_chief else "stopping"
    interruption = Interruption(describe, save, end_process=_startup.is_program() and role.is_chief)
    verbose = config.verbose
    if verbose == "auto":  # Keras' bar redraws with control characters: a line per epoch into files and pipes
        verbose = 1 if sys.stdout.isatty() else 2
    try:
        with interruption:
            model.fit(train_ds, epochs=config.epochs,
                      steps_per_epoch=config.steps_per_epoch * config.accumulation_steps, initial_epoch=start_epoch,
                      validation_data=eval_ds, shuffle=False, callbacks=[*callbacks, StopWhenRequested(interruption)],
                      verbose=verbose)
    except KeyboardInterrupt:
        if not role.is_chief:
            raise
        line = interruption.save_once()
        if line:
            print(line, file=sys.stderr, flush=True)
        raise
    except Exception as error:  # out of memory: a message naming the run and the fixes (nothing more is written)
        from keras_nfnets.training import memory

        if not memory.is_out_of_memory(error):
            raise
        message = memory.out_of_memory_message(config, backup_progress(run_dir.backup)[0], run_dir.backup)
        raise memory.TrainingOutOfMemoryError(message) from error


def _agreed_start_epoch(distribution, role, backup_dir):
    """The epoch to start from, the last backed-up one; in a cluster, read by every worker after
    the chief has written (a collective) and checked to be the same everywhere."""
    if role.count == 1:
        return backup_progress(backup_dir)[0]
    from keras_nfnets.training.distribute import all_workers

    all_workers(distribution, 0)  # wait for the chief's run record / removal of an old backup
    epochs = all_workers(distribution, backup_progress(backup_dir)[0])
    if len(set(epochs)) > 1:
        raise RuntimeError(f"The workers see different backups in {backup_dir} (finished epochs by worker: {epochs}): "
                           "the output directory must be on storage that every worker reads (the same host, NFS, "
                           "GCS), at the same path.")
    return epochs[0]


def _reload_finished(model, recipe, run_dir, distribution):
    """The final model of a finished run (``model.keras``, else the last backup's weights)."""
    from keras_nfnets.models.builder import load_weights_file

    final = run_dir.file(MODEL_FILE)
    if os.path.exists(final):
        with distribution.scope():
            model = load_keras_file(final)
            model.compile(loss=recipe.loss, metrics=recipe.metrics)
        if is_multi_worker(distribution):
            backend.current().prepare_multi_worker_model(model)
    else:
        load_weights_file(model, os.path.join(backup_progress(run_dir.backup)[1], "model.weights.h5"))
    return model


def _evaluate_and_record(model, eval_ds, run_dir, history, stopped, role):
    """Test metrics (none when training stopped on a NaN), written with the history to
    ``history.json`` by the chief."""
    metrics = model.evaluate(eval_ds, verbose=0, return_dict=True) if stopped is None else {}
    metrics = {k: float(v) for k, v in metrics.items()}
    if role.is_chief:
        run_dir.write_history(history, metrics, stopped)
    return metrics


def train(model_name=None, dataset=None, *, config=None, **options):
    """Train the builder ``model_name`` on ``dataset`` with the paper's recipe and ``model.fit``.

    Every option is a field of :class:`~keras_nfnets.training.config.TrainConfig` (its help text
    there is ``nfnets train --help``'s): pass them as keywords, or a ``config`` (keywords given as
    well override it). The main ones:

        model_name: builder name (default ``NFResNet14``); dataset: ``"digits"`` (embedded), an
            image folder, or a TFDS name (``"imagenet2012"`` with ``manual_dir``).
        epochs, batch_size (global), image_size, eval_image_size: default to the dataset's
            (digits: 15 epochs, batch 48, 32 px, LR 0.4 per 256) or else the paper's batch/epochs and the model's
            train/test sizes.
        weights: ``None``, ``"imagenet"`` (fine-tune: new classifier, LR one tenth of the recipe's)
            or a ``.weights.h5`` file.
        strategy: ``auto | one_device | mirrored | multi_worker | tpu``; precision: ``float32 |
            mixed_bfloat16 | mixed_float16``. ``multi_worker``: the cluster comes from ``TF_CONFIG``
            (``cluster_timeout`` seconds to form); run the same call on every worker with the same
            ``output_dir`` (storage all of them read); the chief alone writes the run's files.
            With a strategy object of your own, call :func:`run_training`.
        output_dir: where ``model.keras``, ``run.json``, ``history.json``, ``backup/`` (per-epoch
            checkpoints) and ``logs/`` (TensorBoard) go (default ``runs/<model>_<dataset>``).
        seed: data order, crops and initialisation (``None``: not reproducible).
        learning_rate, clip_factor, weight_decay, ema: override the recipe (``"paper"``: keep).
        augment: ``"default"`` (the paper's, none for digits), ``"paper"``, or ``"none"``.
        randaugment: ``"paper"`` (the recipe's RandAugment), ``(num_layers, magnitude)``
            (DeepMind's magnitude scale, extrapolating above 10), or ``None`` (off).
        steps_per_epoch: cap the steps of each epoch (quick runs, benchmarks).
        resume: continue from ``output_dir/backup`` if present (else start over).
        tensorboard: write TensorBoard logs (skipped, with a note, when tensorboard is missing).
        verbose: Keras' progress output (0, 1 a bar, 2 a line per epoch); ``"auto"``: a bar when
            standard output is a terminal, else a line per epoch.
        drop_rate, stochastic_depth_rate: override the model's dropout before the classifier and
            its stochastic depth (``None``: the model's).
        callbacks: extra Keras callbacks for ``fit``.
        jit_compile: compile each training step with XLA: ``"auto"`` (Keras' rule: on under JAX,
            on a TensorFlow GPU without a strategy, off on a CPU; always on a TPU), ``True`` or
            ``False``. ``True`` where the backend (PyTorch) or a layer cannot compile is refused.
        accumulation_steps: N micro-batches of ``batch_size`` per optimizer step (gradient
            accumulation): the step of one batch of N·``batch_size`` (AGC clips the mean gradient;
            LR, warm-up, EMA, weight decay, momentum, steps and epochs per optimizer step). The
            micro-batches hold that batch's examples and crops; CutMix/MixUp partners come from the
            same micro-batch, as from the same replica. ``batch_size`` defaults to the default
            batch divided by N.
        remat: recompute each residual block's activations in the backward pass instead of
            keeping them (less memory, about a third more compute; the same gradients).
        input_report: at the start of training, measure the input pipeline alone and print
            whether it or the model sets the pace, with the cause and the fixes when the model
            waits for data (one machine; a cluster's workers are not measured).

    Returns a :class:`TrainResult`; its ``settings`` are the run's ``run.json``.
    """
    check_names(options)
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a keras_nfnets.training.TrainConfig; received {type(config).__name__}.")
    if model_name is not None:
        options["model_name"] = model_name
    if dataset is not None:
        options["dataset"] = dataset
    config = config.replace(**options) if config is not None else TrainConfig(**options)
    return run_training(config)


train.__signature__ = signature(train)


def run_training(config, distribution=None):
    """Train as :func:`train` does, from a :class:`~keras_nfnets.training.config.TrainConfig`,
    under ``distribution``: a strategy already made (``tf.distribute`` on TensorFlow, a
    :class:`~keras_nfnets.training.KerasDataParallel` on JAX/PyTorch), else the one
    ``config.strategy`` names. The steps: plan (no TensorFlow) → build → data → fit."""
    import keras

    from keras_nfnets import data
    from keras_nfnets.training.distribute import check_precision, make_strategy, set_precision, worker_role
    from keras_nfnets.training.recipes import build_recipe

    # 1. where the run goes (checked before any work), the strategy (first: a multi-worker strategy
    #    must precede every TensorFlow op), what the devices can run
    run_dir = output_directory(config)
    if distribution is None:
        distribution = make_strategy(config.strategy, config.tpu, config.cluster_timeout)
    role = worker_role(distribution)
    jit_compile = backend.current().jit_compile(config.jit_compile, distribution)  # refused here, before any work
    check_precision(config.precision, backend.current().compute_devices(distribution))  # likewise
    if config.seed is not None:
        keras.utils.set_random_seed(int(config.seed))

    # 2. the plan: sizes, steps, learning rate, recipe (from the data's size and classes)
    train_split, eval_split = data.default_splits(config.dataset, config.data_dir)
    train_source = data.load_source(config.dataset, train_split, data_dir=config.data_dir, manual_dir=config.manual_dir)
    eval_source = data.load_source(config.dataset, eval_split, data_dir=config.data_dir, manual_dir=config.manual_dir)
    plan = make_plan(config, DataFacts.of(train_source, eval_split), distribution.num_replicas_in_sync, role.count)
    config = plan.config  # resolved: every default decided
    record = plan.to_json()

    # 3. what an earlier run left, decided before any model is built: refuse other settings, stop
    #    if finished
    if config.resume:
        run_dir.check_resumable(record)
        if run_dir.is_finished(config.epochs):
            return _finished_run(run_dir, config.epochs)

    # 4. build: the recipe's optimizer, loss, metrics and callbacks, the model; the run record
    #    (every worker reads; the chief alone writes, and everyone waits for it)
    set_precision(config.precision)
    with distribution.scope():
        recipe = build_recipe(plan.recipe, plan.classes)
    model = _build_and_compile(plan, recipe, distribution, jit_compile)
    record["jit_compile"] = bool(model.jit_compile)  # what Keras resolved "auto" to (not a resume setting)
    record["compute"] = backend.current().compute_description()  # e.g. oneDNN's state and the grouped-conv path
    if role.is_chief:
        run_dir.start(record, config.resume)
    start_epoch = _agreed_start_epoch(distribution, role, run_dir.backup)

    # 5. data pipelines (one shard per worker in a cluster) and callbacks
    def make_train(input_context, augmentation=plan.augmentation):
        return data.train_dataset(
            train_source, config.image_size, config.batch_size, epochs=config.epochs,
            start_epoch=min(start_epoch, config.epochs - 1), seed=config.seed, flip=plan.flip,
            area_range=plan.area_range, augmentation=augmentation, mean=plan.eval_transform.mean,
            std=plan.eval_transform.std, steps_per_epoch=config.steps_per_epoch * config.accumulation_steps,
            input_context=input_context)

    def make_eval(input_context):
        return data.eval_dataset(eval_source, plan.eval_transform, config.batch_size, input_context)

    train_ds, eval_ds = inputs.datasets(distribution, role, make_train, make_eval)
    if role.count == 1:  # a cluster's Keras builds this itself, from a distributed batch
        with distribution.scope():
            _compat.build_training_state(model, train_ds.element_spec)
    throughput = throughput_callback(config.batch_size)
    history = history_callback(run_dir if role.is_chief else None, start_epoch)
    # the history first: at an epoch's end it is written before the backup, so a resume never finds
    # a backed-up epoch missing from history.json (an extra one is dropped)
    fit_callbacks = [history, *_callbacks(recipe, run_dir, throughput, config.callbacks or [], config.tensorboard, role)]
    if config.input_report and role.count == 1 and start_epoch < config.epochs:
        fit_callbacks.append(inputs.input_report(train_ds, make_train, plan.augmentation, config.batch_size))

    # 6. fit (or reload a run whose final save is missing), save, evaluate
    stopped = None
    if start_epoch < config.epochs:
        if start_epoch:
            print(f"Resuming from {run_dir.backup} at epoch {start_epoch + 1}/{config.epochs}.", flush=True)
        _fit(model, train_ds, eval_ds, config, fit_callbacks, run_dir, start_epoch, role)
        stopped = next((c.message for c in recipe.callbacks if getattr(c, "message", None)), None)
        if stopped is None:
            run_dir.save_final_model(model, role.is_chief)
    else:
        model = _reload_finished(model, recipe, run_dir, distribution)
    metrics = _evaluate_and_record(model, eval_ds, run_dir, history.history, stopped, role)
    return TrainResult(model, history.history, metrics, run_dir.path, record, throughput.images_per_second(), stopped)


def _finished_run(run_dir, epochs):
    """The :class:`TrainResult` of the finished run in ``run_dir``, read from disk (nothing is
    rewritten)."""
    record = run_dir.history()
    summary = ", ".join(f"{k} {v:.4f}" for k, v in record["test"].items())
    messages.say(f"{run_dir.path}: this run already finished its {epochs} epochs (test {summary}); nothing to do. "
                 "Pass `resume=False` to train it again.")
    return TrainResult(load_keras_file(run_dir.file(MODEL_FILE)), record.get("history", {}), record["test"],
                       run_dir.path, run_dir.settings() or {}, None, record.get("stopped"))
