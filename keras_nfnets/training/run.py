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
from keras_nfnets.training.options import AUGMENT_CHOICES, DATASET_DEFAULTS, DEFAULT_DATASET, DEFAULT_MODEL  # noqa: F401
from keras_nfnets.training.settings import check_arguments
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


def _augmentation(augment, dataset, paper, randaugment="paper"):
    """The run's augmentation: the recipe's (none for digits by default, none with ``"none"``),
    its RandAugment replaced by ``randaugment`` (``(layers, magnitude)``, or ``None`` for off)."""
    if augment == "none" or (augment == "default" and "augmentation" in DATASET_DEFAULTS.get(dataset, {})):
        return None
    augmentation = paper.augmentation()
    if randaugment != "paper":
        augmentation = dataclasses.replace(augmentation, randaugment=None if randaugment is None else
                                           tuple(randaugment))
    return augmentation


def _make_plan(model_name, settings, distribution, weights, overrides):
    """The paper's recipe scaled to the run's effective batch (its optimizer's variables made under ``distribution``);
    no model is built, so a resume check can refuse or return first."""
    from keras_nfnets.training.recipes import paper_hyperparameters, recipe

    paper = paper_hyperparameters(model_name)
    overrides = dict(overrides)
    learning_rate = overrides.pop("learning_rate")
    if learning_rate is None and weights not in (None, "none"):  # fine-tuning: a tenth of the recipe's LR
        learning_rate = paper.base_learning_rate * settings.effective_batch_size / paper.base_batch_size / 10.0
    per_256 = DATASET_DEFAULTS.get(settings.dataset, {}).get("learning_rate_per_256")
    if learning_rate is None and per_256:  # the dataset's own rate, scaled to the batch as the paper's
        learning_rate = per_256 * settings.effective_batch_size / 256
    with distribution.scope():
        return recipe(model_name, settings.effective_batch_size, settings.epochs, settings.steps_per_epoch,
                      settings.classes, learning_rate=learning_rate, accumulation_steps=settings.accumulation_steps,
                      **overrides,
                      augmentation=_augmentation(settings.augment, settings.dataset, paper, settings.randaugment))


def _build_and_compile(model_name, settings, distribution, weights, rates, plan, jit_compile="auto"):
    # (``settings.remat``: each residual block recomputed in the backward pass, set before compiling)
    """The classifier, compiled with ``plan`` under ``distribution``; ``jit_compile`` as the
    backend resolved it (``True`` on a model with a layer XLA cannot compile is refused here,
    where Keras would warn and run uncompiled)."""
    with distribution.scope():
        model = build_classifier(model_name, settings.classes, settings.image_size, weights, *rates)
        model.remat = settings.remat
        if jit_compile is True:
            uncompilable = [layer.name for layer in _compat.all_sublayers(model) if not layer.supports_jit]
            if uncompilable:
                raise ValueError(f"`jit_compile=True`, but these layers do not support XLA: {uncompilable}. Use "
                                 "`jit_compile=\"auto\"` or `jit_compile=False`.")
        model.compile(optimizer=plan.optimizer, loss=plan.loss, metrics=plan.metrics, jit_compile=jit_compile)
    if is_multi_worker(distribution):
        backend.current().prepare_multi_worker_model(model)
    return model


def _tensorboard_available():
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _callbacks(plan, run_dir, throughput, extra, tensorboard, role):
    """Atomic per-epoch backups (weights, optimizer, EMA state, random states), the recipe's
    callbacks, throughput, TensorBoard (on the chief, when it is installed), and the caller's."""
    import keras

    from keras_nfnets.training.callbacks import EpochBackup

    participants = [c for c in plan.callbacks if hasattr(c, "backup_state")]  # EMA
    callbacks = [EpochBackup(run_dir.backup, participants, is_chief=role.is_chief), throughput, *plan.callbacks, *extra]
    if tensorboard and role.is_chief and _tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(run_dir.file(LOGS), write_graph=False))
    elif tensorboard and role.is_chief:
        print('TensorBoard logs skipped: the tensorboard package is missing (pip install "keras-nfnets[train]").',
              file=sys.stderr, flush=True)
    return callbacks


def _fit(model, train_ds, eval_ds, settings, callbacks, run_dir, verbose, start_epoch, role):
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
    if verbose == "auto":  # Keras' bar redraws with control characters: a line per epoch into files and pipes
        verbose = 1 if sys.stdout.isatty() else 2
    try:
        with interruption:
            model.fit(train_ds, epochs=settings.epochs,
                      steps_per_epoch=settings.steps_per_epoch * settings.accumulation_steps, initial_epoch=start_epoch,
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
        message = memory.out_of_memory_message(settings, backup_progress(run_dir.backup)[0], run_dir.backup)
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


def _reload_finished(model, plan, run_dir, distribution):
    """The final model of a finished run (``model.keras``, else the last backup's weights)."""
    from keras_nfnets.models.builder import load_weights_file

    final = run_dir.file(MODEL_FILE)
    if os.path.exists(final):
        with distribution.scope():
            model = load_keras_file(final)
            model.compile(loss=plan.loss, metrics=plan.metrics)
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


def train(model_name=DEFAULT_MODEL, dataset=DEFAULT_DATASET, *, epochs=None, batch_size=None, image_size=None,
          eval_image_size=None, weights=None, strategy="auto", precision="float32", output_dir=None, seed=0,
          learning_rate=None, clip_factor="paper", weight_decay=None, ema="paper", augment="default",
          steps_per_epoch=None, data_dir=None, manual_dir=None, tpu=None, resume=True, tensorboard=True,
          verbose="auto", drop_rate=None, stochastic_depth_rate=None, callbacks=None, input_report=True, randaugment="paper", jit_compile="auto",
          accumulation_steps=1, remat=False):
    """Train the builder ``model_name`` on ``dataset`` with the paper's recipe and ``model.fit``.

    Args:
        model_name: builder name (default ``NFResNet14``); dataset: ``"digits"`` (embedded), an
            image folder, or a TFDS name (``"imagenet2012"`` with ``manual_dir``).
        epochs, batch_size (global), image_size, eval_image_size: default to the dataset's
            (digits: 15 epochs, batch 48, 32 px, LR 0.4 per 256) or else the paper's batch/epochs and the model's
            train/test sizes.
        weights: ``None``, ``"imagenet"`` (fine-tune: new classifier, LR one tenth of the recipe's)
            or a ``.weights.h5`` file.
        strategy: ``auto | one_device | mirrored | multi_worker | tpu``; precision: ``float32 |
            mixed_bfloat16 | mixed_float16``. ``multi_worker``: the cluster comes from ``TF_CONFIG``;
            run the same call on every worker with the same ``output_dir`` (storage all of them
            read); the chief alone writes the run's files.
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
    """
    import keras

    from keras_nfnets import data
    from keras_nfnets.training.distribute import check_precision, make_strategy, set_precision, worker_role
    from keras_nfnets.training.recipes import paper_hyperparameters

    # 1. arguments and settings
    check_arguments(model_name, augment, dict(epochs=epochs, batch_size=batch_size, image_size=image_size,
                                               steps_per_epoch=steps_per_epoch, accumulation_steps=accumulation_steps),
                     learning_rate, randaugment, jit_compile)
    paper = paper_hyperparameters(model_name)
    defaults = DATASET_DEFAULTS.get(dataset, {})
    epochs = int(epochs or defaults.get("epochs") or paper.epochs)
    accumulation_steps = int(accumulation_steps or 1)
    batch_size = int(batch_size or max(1, (defaults.get("batch_size") or paper.batch_size) // accumulation_steps))
    output_dir = output_dir or os.path.join("runs", f"{model_name}_{os.path.basename(os.path.normpath(dataset))}")
    run_dir = RunDir(output_dir)
    run_dir.check_writable()
    run_dir.check_not_foreign()
    distribution = make_strategy(strategy, tpu)  # first: a multi-worker strategy must precede every TF op
    role = worker_role(distribution)
    jit_compile = backend.current().jit_compile(jit_compile, distribution)  # refused here, before any work
    check_precision(precision, backend.current().compute_devices(distribution))  # likewise
    if seed is not None:
        keras.utils.set_random_seed(int(seed))

    # 2. data
    train_split, eval_split = data.default_splits(dataset, data_dir)
    train_source = data.load_source(dataset, train_split, data_dir=data_dir, manual_dir=manual_dir)
    eval_source = data.load_source(dataset, eval_split, data_dir=data_dir, manual_dir=manual_dir)
    settings = inputs.pipeline_settings(model_name, dataset, weights, image_size, eval_image_size)

    # 3. steps
    # (optimizer steps of the effective batch; each takes `accumulation_steps` micro-batches)
    steps = inputs.steps_per_epoch(train_source, batch_size, steps_per_epoch, distribution.num_replicas_in_sync,
                                   accumulation_steps)
    settings = settings.replace(
        model=model_name, dataset=dataset, weights=weights, classes=train_source.num_classes,
        class_names=list(train_source.class_names), epochs=epochs, batch_size=batch_size, steps_per_epoch=steps,
        accumulation_steps=accumulation_steps, remat=bool(remat),
        precision=precision, strategy=strategy, replicas=distribution.num_replicas_in_sync, workers=role.count,
        seed=seed, eval_split=eval_split, augment=augment, randaugment=randaugment, drop_rate=drop_rate,
        stochastic_depth_rate=stochastic_depth_rate)

    # 4. the recipe
    set_precision(precision)
    overrides = dict(learning_rate=None if learning_rate is None else float(learning_rate))
    if clip_factor != "paper":
        overrides["clip_factor"] = clip_factor
    if weight_decay is not None:
        overrides["weight_decay"] = weight_decay
    if ema != "paper":
        overrides["ema"] = ema
    plan = _make_plan(model_name, settings, distribution, weights, overrides)
    settings = settings.replace(recipe=plan.summary(), label_smoothing=plan.hyperparameters.label_smoothing,
                                learning_rate=plan.learning_rate, agc_advice=plan.advice,
                                randaugment=plan.hyperparameters.randaugment)  # what runs: (layers, magnitude) or None
    record = settings.to_json()

    # 5. what an earlier run left, decided before any model is built: refuse other settings, stop
    #    if finished; then the model and the run record (every worker reads; the chief alone
    #    writes, and everyone waits for it)
    if resume:
        run_dir.check_resumable(record)
        if run_dir.is_finished(epochs):
            return _finished_run(run_dir, epochs)
    model = _build_and_compile(model_name, settings, distribution, weights, (drop_rate, stochastic_depth_rate), plan,
                               jit_compile)
    record["jit_compile"] = bool(model.jit_compile)  # what Keras resolved "auto" to (not a resume setting)
    record["compute"] = backend.current().compute_description()  # e.g. oneDNN's state and the grouped-conv path
    if role.is_chief:
        run_dir.start(record, resume)
    start_epoch = _agreed_start_epoch(distribution, role, run_dir.backup)

    # 6. data pipelines (one shard per worker in a cluster) and callbacks
    def make_train(input_context, augmentation=plan.augmentation):
        return data.train_dataset(
            train_source, settings.image_size, batch_size, epochs=epochs, start_epoch=min(start_epoch, epochs - 1),
            seed=seed, flip=settings.flip, area_range=settings.area_range, augmentation=augmentation,
            mean=settings.eval_transform.mean, std=settings.eval_transform.std, steps_per_epoch=steps * accumulation_steps,
            input_context=input_context)

    def make_eval(input_context):
        return data.eval_dataset(eval_source, settings.eval_transform, batch_size, input_context)

    train_ds, eval_ds = inputs.datasets(distribution, role, make_train, make_eval)
    if role.count == 1:  # a cluster's Keras builds this itself, from a distributed batch
        with distribution.scope():
            _compat.build_training_state(model, train_ds.element_spec)
    throughput = throughput_callback(batch_size)
    history = history_callback(run_dir if role.is_chief else None, start_epoch)
    # the history first: at an epoch's end it is written before the backup, so a resume never finds
    # a backed-up epoch missing from history.json (an extra one is dropped)
    fit_callbacks = [history, *_callbacks(plan, run_dir, throughput, callbacks or [], tensorboard, role)]
    if input_report and role.count == 1 and start_epoch < epochs:
        fit_callbacks.append(inputs.input_report(train_ds, make_train, plan.augmentation, batch_size))

    # 7. fit (or reload a run whose final save is missing), save, evaluate
    stopped = None
    if start_epoch < epochs:
        if start_epoch:
            print(f"Resuming from {run_dir.backup} at epoch {start_epoch + 1}/{epochs}.", flush=True)
        _fit(model, train_ds, eval_ds, settings, fit_callbacks, run_dir, verbose, start_epoch, role)
        stopped = next((c.message for c in plan.callbacks if getattr(c, "message", None)), None)
        if stopped is None:
            run_dir.save_final_model(model, role.is_chief)
    else:
        model = _reload_finished(model, plan, run_dir, distribution)
    metrics = _evaluate_and_record(model, eval_ds, run_dir, history.history, stopped, role)
    return TrainResult(model, history.history, metrics, output_dir, record, throughput.images_per_second(), stopped)


def _finished_run(run_dir, epochs):
    """The :class:`TrainResult` of the finished run in ``run_dir``, read from disk (nothing is
    rewritten)."""
    record = run_dir.history()
    summary = ", ".join(f"{k} {v:.4f}" for k, v in record["test"].items())
    messages.say(f"{run_dir.path}: this run already finished its {epochs} epochs (test {summary}); nothing to do. "
                 "Pass `resume=False` to train it again.")
    return TrainResult(load_keras_file(run_dir.file(MODEL_FILE)), record.get("history", {}), record["test"],
                       run_dir.path, run_dir.settings() or {}, None, record.get("stopped"))
