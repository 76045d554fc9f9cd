"""Callbacks for robust runs: stop on a NaN loss with a diagnosis; atomic per-epoch backups."""

import math
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

from keras_nfnets import _compat, messages
from keras_nfnets.training.files import read_json, write_json_atomically


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first non-finite loss and say what most likely went wrong.

    Unnormalised networks diverge when the learning rate is too high for the batch size (NF
    paper App. A.1); AGC (NFNet paper §4) is what makes large batches and strong augmentation
    stable. The message names the learning rate and whether AGC was on; ``self.message`` keeps it.
    """

    def __init__(self, clip_factor=None, learning_rate=None, stream=None):
        super().__init__()
        self.clip_factor = clip_factor
        self.learning_rate = learning_rate
        self.stream = stream
        self.message = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        hints = []
        if self.learning_rate is not None:
            hints.append(f"the learning rate ({self.learning_rate:.3g} peak) is too high for this batch size and "
                         f"model; try `learning_rate={self.learning_rate / 2:.3g}`")
        if not self.clip_factor:
            hints.append("Adaptive Gradient Clipping is off; turn it on with `clip_factor=0.01`")
        else:
            hints.append(f"AGC λ={self.clip_factor:g} is too weak for this batch size; try a smaller λ")
        policy = keras.config.dtype_policy().name
        if policy == "mixed_float16":
            hints.append("float16 overflowed; try `precision='mixed_bfloat16'` or `precision='float32'`")
        self.message = (f"Training stopped: the loss became {loss} at epoch {self._epoch + 1}, batch {batch + 1}. "
                        f"Likely causes: {'; '.join(hints)}.")
        messages.say(self.message, file=self.stream or sys.stderr)
        self.model.stop_training = True


def measure_input_rate(dataset, batch_size, seconds=3.0, max_batches=40):
    """Images/s that ``dataset`` delivers alone (a separate iterator; the run's own is untouched):
    batches drawn for about ``seconds`` after two warm-up batches."""
    import time

    iterator = iter(dataset)
    start, count = None, 0
    for index, _ in enumerate(iterator):  # a short run's dataset may end first
        if index == 1:
            start = time.perf_counter()
        elif index > 1:
            count += 1
            if count >= max_batches or (count >= 3 and time.perf_counter() - start >= seconds):
                break
    return count * batch_size / (time.perf_counter() - start) if count else None


class InputBoundReport(keras.callbacks.Callback):
    """Says at the start of training whether the input pipeline or the model sets the pace.

    ``pipeline_rate`` is what the pipeline delivers alone (:func:`measure_input_rate`),
    ``plain_rate`` the same pipeline without augmentation (``None`` when there is none). After
    ``skip`` batches (tracing), the training steps of about ``seconds`` are timed; training at
    90% or more of the pipeline's rate means the accelerator waits for data: the report then
    names the cause (augmentation when the plain pipeline is 1.5× faster, else decoding and
    cropping) and the fixes. ``self.report`` keeps the text. It is printed between epochs (before
    the next epoch's first line, or when training ends): Keras' progress bar redraws its line in
    place on a terminal, and a line printed inside an epoch would be glued to it.
    """

    def __init__(self, pipeline_rate, batch_size, plain_rate=None, augmentation=None, skip=3, seconds=3.0,
                 max_batches=30, stream=None, clock=None):
        super().__init__()
        import time

        self.pipeline_rate, self.plain_rate, self.batch_size = pipeline_rate, plain_rate, batch_size
        self.augmentation, self.skip, self.seconds, self.max_batches = augmentation, skip, seconds, max_batches
        self.stream, self.clock = stream, clock or time.perf_counter
        self.report, self._seen, self._start, self._printed = None, 0, None, False

    def on_train_batch_end(self, batch, logs=None):
        if self.report is not None:
            return
        self._seen += 1
        if self._seen == self.skip:
            self._start, self._timed = self.clock(), 0
        elif self._seen > self.skip:
            self._timed += 1
            elapsed = self.clock() - self._start
            if self._timed >= self.max_batches or (self._timed >= 3 and elapsed >= self.seconds):
                self._finish(self._timed * self.batch_size / elapsed)

    def on_epoch_end(self, epoch, logs=None):
        if self.report is None and self._start is not None and self._timed:
            self._finish(self._timed * self.batch_size / (self.clock() - self._start))

    def on_epoch_begin(self, epoch, logs=None):
        self._print()

    def on_train_end(self, logs=None):
        self._print()

    def _print(self):
        if self.report is not None and not self._printed:
            self._printed = True
            messages.say(self.report, file=self.stream or sys.stdout)

    def _finish(self, training_rate):
        rates = (f"input pipeline {self.pipeline_rate:,.0f} images/s (measured alone), training "
                 f"{training_rate:,.0f} images/s")
        if training_rate < 0.9 * self.pipeline_rate:
            self.report = f"Throughput: {rates}: the model sets the pace, the input pipeline keeps up."
        else:
            if self.plain_rate is not None and self.plain_rate >= 1.5 * self.pipeline_rate:
                cause = (f"the augmentation ({self.augmentation}): without it the pipeline delivers "
                         f"{self.plain_rate:,.0f} images/s")
                fixes = ("more CPU cores for the input pipeline, fewer RandAugment layers or a smaller magnitude "
                         "(`randaugment=(2, 5)`), or no augmentation (`augment='none'`)")
            else:
                cause = "decoding and cropping the images"
                fixes = "more CPU cores for the input pipeline, smaller source images, or faster storage"
            self.report = (f"Input-bound: {rates}, so the model waits for data. The cause: {cause}. "
                           f"Fixes: {fixes}.")


def _seed_generators(model):
    """The Keras seed generators of ``model``'s layers (dropout, stochastic depth, ...)."""
    found, seen = [], set()
    for layer in _compat.all_sublayers(model):
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator) and id(value) not in seen:
                seen.add(id(value))
                found.append((f"{len(found)}_{type(layer).__name__}", value))
    return found


METADATA = "training_metadata.json"


def backup_progress(backup_dir):
    """``(epochs finished, directory of their state)`` of the last committed backup in
    ``backup_dir``, ``(0, None)`` when there is none."""
    metadata = read_json(os.path.join(backup_dir, METADATA))
    if metadata is None:
        return 0, None
    if "directory" not in metadata:
        raise ValueError(f"{backup_dir} holds a backup in an older layout that this version cannot resume; start "
                         "the run over with `resume=False` or use another `output_dir`.")
    return int(metadata["epoch"]), os.path.join(backup_dir, metadata["directory"])


class EpochBackup(keras.callbacks.Callback):
    """The complete training state after every epoch, written so that a crash never leaves a torn
    backup, and restored when training (re)starts.

    Each epoch's state goes into a fresh directory renamed to ``epoch-NNNN`` once complete:
    ``model.weights.h5`` (weights and optimizer) and ``state.npz`` (the seed generators of dropout /
    stochastic depth, which Keras does not checkpoint, and the state of each ``participant``: an
    object with ``backup_state() -> dict of arrays`` and ``restore_state(dict)``, e.g.
    :class:`ExponentialMovingAverage`). Only then is ``training_metadata.json`` replaced (write
    and rename) to point at it, and older epochs removed: a crash at any moment leaves the
    previous epoch or the new one committed, never a mixture or half a file. A committed backup
    that fails to load (damaged storage) is an error naming it, never skipped.

    Multi-worker: every worker runs the same save (reading distributed variables may need all of
    them); a worker that is not the chief (``is_chief=False``) writes into a temporary directory
    deleted right away, the Keras convention. All workers restore from ``backup_dir``, which must
    be storage that every worker reads (the same host, NFS, GCS).
    """

    def __init__(self, backup_dir, participants=(), is_chief=True):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.participants = {f"p{i}": p for i, p in enumerate(participants)}
        self.is_chief = is_chief

    def on_train_begin(self, logs=None):
        epoch, directory = backup_progress(self.backup_dir)
        if directory is None:
            return
        try:
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(os.path.join(directory, "model.weights.h5"))
            state = dict(np.load(os.path.join(directory, "state.npz")))
        except Exception as error:
            raise ValueError(f"The backup of epoch {epoch} in {directory} cannot be read ({error}); the storage may "
                             "be damaged. Restart the run (`resume=False`) or restore that directory."
                             ) from error
        for name, generator in _seed_generators(self.model):
            key = f"random/{name}"
            if key not in state:
                raise ValueError(f"{directory} has no random state for {name!r}; it was written by another model. "
                                 "Restart the run (`resume=False`).")
            generator.state.assign(state[key])
        for prefix, participant in self.participants.items():
            participant.restore_state({k.split("/", 1)[1]: v for k, v in state.items() if k.startswith(prefix + "/")})

    def on_epoch_end(self, epoch, logs=None):
        state = {f"random/{name}": keras.ops.convert_to_numpy(generator.state.value)
                 for name, generator in _seed_generators(self.model)}
        for prefix, participant in self.participants.items():
            state.update({f"{prefix}/{k}": v for k, v in participant.backup_state().items()})
        if not self.is_chief:
            scratch = tempfile.mkdtemp(prefix="keras_nfnets_worker_backup_")
            try:
                self.model.save_weights(os.path.join(scratch, "model.weights.h5"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        name = f"epoch-{epoch + 1:04d}"
        os.makedirs(self.backup_dir, exist_ok=True)
        partial = os.path.join(self.backup_dir, f".{name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        self.model.save_weights(os.path.join(partial, "model.weights.h5"))
        np.savez(os.path.join(partial, "state.npz"), **state)
        final = os.path.join(self.backup_dir, name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        write_json_atomically(os.path.join(self.backup_dir, METADATA), {"epoch": epoch + 1, "directory": name})
        for entry in os.listdir(self.backup_dir):  # earlier epochs and leftovers of a crashed save
            if entry != name and (entry.startswith("epoch-") or entry.endswith(".partial")):
                shutil.rmtree(os.path.join(self.backup_dir, entry), ignore_errors=True)


def throughput_callback(batch_size):
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


def history_callback(run_dir, start_epoch):
    """A callback keeping ``history.json`` epoch by epoch: the epochs before ``start_epoch`` (a
    resumed run's earlier epochs) are kept from the file, later ones replaced by this run's.
    ``run_dir=None`` (a worker that is not the chief): the history is kept in memory only."""
    import keras

    class HistoryRecord(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            earlier = run_dir.history().get("history", {}) if run_dir else {}
            self.history = {k: list(v[:start_epoch]) for k, v in earlier.items()}

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                values = self.history.setdefault(key, [])
                del values[epoch:]
                values.append(float(value))
            if run_dir:
                run_dir.write_history(self.history)

    return HistoryRecord()
