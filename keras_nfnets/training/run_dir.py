"""A run directory: every file :func:`~keras_nfnets.training.train` writes or reads there.

``run.json`` (the :class:`~keras_nfnets.training.plan.TrainPlan`'s JSON), ``history.json`` (the
per-epoch history, then the test metrics), ``model.keras`` (the final model), ``backup/`` (atomic
per-epoch checkpoints), ``logs/`` (TensorBoard) and ``interrupted.weights.h5`` (Ctrl-C). Every
JSON file is replaced atomically; ``model.keras`` too. In a cluster only the chief writes.
"""

import dataclasses
import json
import os
import tempfile

from keras_nfnets.training.config import RESUME_SETTINGS, resume_default
from keras_nfnets.training.files import read_json, write_json_atomically

RUN_JSON, HISTORY_JSON, MODEL_FILE = "run.json", "history.json", "model.keras"
BACKUP, LOGS, INTERRUPTED = "backup", "logs", "interrupted.weights.h5"
# What a run leaves besides run.json: a restarted run deletes all of it before it trains, so no
# result of the run it replaces outlives the restart (an interrupted restart must not leave the
# old model.keras for evaluate and predict to report).
RUN_RESULTS = (MODEL_FILE, HISTORY_JSON, INTERRUPTED, BACKUP, LOGS)

# The settings a run cannot change when it resumes (RESUME_SETTINGS: run.json key -> train()'s
# name) are the TrainConfig fields marked `resume`; a run.json written before one existed means
# its default (resume_default).


def is_run_directory(path):
    """Whether ``path`` holds a run :func:`~keras_nfnets.training.train` started: a ``run.json``
    with a run's settings in it."""
    try:
        record = read_json(os.path.join(os.fspath(path), RUN_JSON))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"model", "dataset", "epochs", "image_size"} <= set(record)


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The files of the run in ``path``."""

    path: str

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def backup(self):
        return self.file(BACKUP)

    def check_writable(self):
        """Fail before any work when the directory cannot hold a run: it is a file, or its nearest
        existing folder cannot be written (read-only file system, no permission). Creates nothing."""
        path = os.path.abspath(os.fspath(self.path))
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"`output_dir` {self.path!r} is a file, not a directory; choose a directory "
                                     "for the run's files.")
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise NotADirectoryError(f"`output_dir` {self.path!r} is inside {existing!r}, which is a file; choose a "
                                     "directory for the run's files.")
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as error:
            raise PermissionError(f"`output_dir` {self.path!r} cannot be written ({existing!r}: "
                                  f"{error.strerror or error}); choose a writable directory.") from None

    def check_not_foreign(self):
        """Fail before any work when the directory holds a file or folder a run would write or
        delete (``model.keras``, ``logs``, ...) but no run of keras_nfnets is there: those are the
        user's own files, never replaced or removed (``--restart`` included)."""
        if not os.path.isdir(self.path) or is_run_directory(self.path):
            return
        in_the_way = [name for name in (RUN_JSON,) + RUN_RESULTS if os.path.lexists(self.file(name))]
        if in_the_way:
            raise FileExistsError(
                f"`output_dir` {self.path!r} holds {', '.join(in_the_way)}, which no keras_nfnets run wrote there (it "
                "has no run.json of a run); a run would replace them. Choose another `output_dir`, or move them out.")

    def settings(self):
        """The recorded ``run.json`` (a dict), or ``None``."""
        return read_json(self.file(RUN_JSON))

    def start(self, record, resume):
        """Create the directory, delete an earlier run's results unless resuming, write ``record``
        as ``run.json`` (chief only)."""
        if not resume:
            self.discard_results()
        os.makedirs(self.path, exist_ok=True)
        write_json_atomically(self.file(RUN_JSON), record)

    def discard_results(self):
        """Delete every result of an earlier run (:data:`RUN_RESULTS`), only where a run of
        keras_nfnets is (:meth:`check_not_foreign`)."""
        import shutil

        self.check_not_foreign()
        for name in RUN_RESULTS:
            path = self.file(name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)

    def history(self):
        """``history.json``'s content (``{"history", "test", "stopped"}``), or ``{}``."""
        return read_json(self.file(HISTORY_JSON)) or {}

    def write_history(self, history, test=None, stopped=None):
        write_json_atomically(self.file(HISTORY_JSON), {"history": history, "test": test or {}, "stopped": stopped})

    def is_finished(self, epochs):
        """Whether the run trained all ``epochs`` and was saved and evaluated."""
        from keras_nfnets.training.callbacks import backup_progress

        return (backup_progress(self.backup)[0] >= epochs and os.path.exists(self.file(MODEL_FILE))
                and bool(self.history().get("test")))

    def check_resumable(self, record):
        """Refuse to continue a checkpointed run under other settings than it was started with
        (``record``: the new run.json)."""
        previous = self.settings()
        if previous is None or not os.path.isdir(self.backup):
            return
        now = json.loads(json.dumps({k: record.get(k) for k in RESUME_SETTINGS}, default=str))
        previous = {key: previous.get(key, resume_default(key)) for key in RESUME_SETTINGS}
        changed = [f"{name}: {previous[key]!r} in the checkpoint, {now[key]!r} now"
                   for key, name in RESUME_SETTINGS.items() if key != "recipe" and previous[key] != now[key]]
        if not changed and previous.get("recipe") != now["recipe"]:  # only an LR / AGC / EMA override changed
            changed = [f"{RESUME_SETTINGS['recipe']}: {previous.get('recipe')!r} in the checkpoint, "
                       f"{now['recipe']!r} now"]
        if changed:
            raise ValueError(
                f"{self.path} holds a run started with other settings ({'; '.join(changed)}). Resume it with its "
                "original settings, start it over with `resume=False`, or use another `output_dir`.")

    def save_final_model(self, model, is_chief):
        """``model.keras``, saved atomically by the chief (an interrupted run's weights file is then
        superseded); the other workers run the same save into a temporary directory that is
        deleted (the Keras multi-worker convention)."""
        from keras_nfnets.saving import save_model_atomically

        if is_chief:
            save_model_atomically(model, self.file(MODEL_FILE))
            if os.path.exists(self.file(INTERRUPTED)):
                os.remove(self.file(INTERRUPTED))
            return
        import shutil

        scratch = tempfile.mkdtemp(prefix="keras_nfnets_worker_model_")
        try:
            model.save(os.path.join(scratch, MODEL_FILE))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def load_run(path):
    """``(model, settings, EvalTransform)`` of a run directory written by :func:`train` or a
    ``.keras`` file; ``settings`` is the run's ``run.json`` when it is there (else ``{}``) and the
    transform the run's evaluation transform (else DeepMind's crop at the model's input size)."""
    from keras_nfnets.data import transforms
    from keras_nfnets.saving import load_model

    path = os.fspath(path)
    run_dir, file = (path, os.path.join(path, MODEL_FILE)) if os.path.isdir(path) else (os.path.dirname(path), path)
    if os.path.isdir(path) and not os.path.exists(file) and is_run_directory(path):
        from keras_nfnets.training.callbacks import backup_progress

        done = backup_progress(RunDir(path).backup)[0]
        epochs = (RunDir(path).settings() or {}).get("epochs")
        raise FileNotFoundError(
            f"The run in {path!r} was interrupted before it saved its model ({done} of {epochs} epochs done"
            f"{', kept in its backup' if done else ''}): run the same `nfnets train` command (`output_dir` {path!r}) "
            "again to resume and finish it, then evaluate it.")
    model = load_model(file)
    settings = RunDir(run_dir).settings() or {}
    if "eval_transform" in settings:
        transform = transforms.EvalTransform(**settings["eval_transform"])
    else:
        transform = transforms.EvalTransform(model.input.shape[1] or 224, crop="crop_resize", pil_resize=False)
    return model, settings, transform
