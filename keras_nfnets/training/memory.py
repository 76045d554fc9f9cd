"""Running out of memory during training: recognised on every backend and turned into a message
that names the run's model, batch and image size and what lowers the memory a step needs."""


class TrainingOutOfMemoryError(RuntimeError, MemoryError):
    """A training step needed more memory than the device (or host) has; the message says what
    to change. The backend's own error is its ``__cause__``."""


def is_out_of_memory(error):
    """Whether ``error`` is an allocation failure: TensorFlow's ``ResourceExhaustedError``, JAX's
    ``RESOURCE_EXHAUSTED`` runtime error, PyTorch's ``OutOfMemoryError``, or Python's
    ``MemoryError`` (checked by name, so no backend is imported here)."""
    if isinstance(error, MemoryError):
        return True
    names = {cls.__name__ for cls in type(error).__mro__}
    text = str(error)
    return bool(names & {"ResourceExhaustedError", "OutOfMemoryError"}) or (
        bool(names & {"XlaRuntimeError", "JaxRuntimeError"}) and "RESOURCE_EXHAUSTED" in text)


def out_of_memory_message(settings, finished_epochs, backup_dir):
    """What to tell the user: the run (``settings``: its resolved
    :class:`~keras_nfnets.training.config.TrainConfig`), the four ways to a smaller step, and what
    is on disk."""
    size = settings.image_size
    batch = settings.batch_size
    accumulation = settings.accumulation_steps
    run = (f"{settings.model_name} at batch {batch} per forward pass"
           + (f" ({accumulation} accumulated: effective batch {batch * accumulation})" if accumulation > 1 else "")
           + f", {size}×{size} px, {settings.precision}{', remat on' if settings.remat else ''}")
    fixes = []
    if batch > 1:
        half, double = max(1, batch // 2), accumulation * 2
        fixes.append(f"`accumulation_steps={double}` with `batch_size={half}` (the same effective batch "
                     f"{half * double}, the same optimizer steps)")
    if not settings.remat:
        fixes.append("`remat=True` (recompute each block's activations in the backward pass: about a third more "
                     "compute)")
    if batch > 1:
        fixes.append("a smaller `batch_size`")
    if settings.precision == "float32":
        fixes.append('`precision="mixed_bfloat16"` (or "mixed_float16" on GPUs without bfloat16)')
    where = (f"The last completed epoch ({finished_epochs}) is in {backup_dir}: rerun with `remat=True` to resume "
             "from it; other changes start a new run (`resume=False` or another `output_dir`)." if finished_epochs
             else "No epoch completed; nothing was written for the failed step.")
    return (f"Out of memory training {run}. Lower the memory of a step with " + "; or ".join(fixes) + ". " + where)
