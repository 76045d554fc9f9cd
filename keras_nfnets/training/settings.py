"""What a run is: every setting :func:`~keras_nfnets.training.train` resolved, as one dataclass
whose JSON form is the run directory's ``run.json``."""

import dataclasses
from typing import Any, List, Optional, Tuple

from keras_nfnets.training.options import AUGMENT_CHOICES


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The resolved settings of a run (``run.json``)."""

    # the input pipeline
    image_size: int
    flip: bool
    area_range: Tuple[float, float]
    eval_transform: Any  # a keras_nfnets.data.EvalTransform
    # what is trained on what
    model: str = ""
    dataset: str = ""
    weights: Optional[str] = None
    classes: int = 0
    class_names: List[str] = dataclasses.field(default_factory=list)
    # how long, how, where
    epochs: int = 0
    batch_size: int = 0  # one forward pass: the micro-batch when gradients are accumulated
    accumulation_steps: int = 1
    steps_per_epoch: int = 0  # optimizer steps
    remat: bool = False
    precision: str = "float32"
    jit_compile: Any = "auto"  # as requested; run.json holds what Keras resolved (True/False)
    strategy: str = "auto"
    replicas: int = 1
    workers: int = 1
    seed: Optional[int] = 0
    eval_split: str = ""
    augment: str = "default"
    randaugment: Any = "paper"  # as asked; run.json holds what runs: [layers, magnitude], or null for off
    drop_rate: Optional[float] = None  # the classifier's dropout, None: the model's
    stochastic_depth_rate: Optional[float] = None  # None: the model's
    # the recipe, as the plan describes it
    recipe: str = ""
    label_smoothing: float = 0.0
    learning_rate: float = 0.0  # the peak, scaled to the effective batch
    agc_advice: Optional[str] = None  # the paper's advice for AGC above batch 4096, when it applies

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def effective_batch_size(self):
        """One optimizer step's examples: ``batch_size × accumulation_steps``."""
        return self.batch_size * self.accumulation_steps

    def to_json(self):
        """The ``run.json`` record (plain JSON types)."""
        record = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        record["effective_batch_size"] = self.effective_batch_size
        record["eval_transform"] = dataclasses.asdict(self.eval_transform)
        return record


def check_arguments(model_name, augment, counts, learning_rate=None, randaugment="paper", jit_compile="auto"):
    """Refuse, with the fix, the arguments of :func:`~keras_nfnets.training.train` that no run can use."""
    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.data.transforms import Augmentation

    if model_name not in BUILDERS:
        raise ValueError(f"Unknown model {model_name!r}; choose one of {', '.join(BUILDERS)}.")
    if augment not in AUGMENT_CHOICES:
        raise ValueError(f"`augment` must be one of {AUGMENT_CHOICES}; received {augment!r}.")
    if not (jit_compile is True or jit_compile is False or jit_compile == "auto"):  # not 1/0: `is`
        raise ValueError(f"`jit_compile` must be \"auto\", True or False; received {jit_compile!r}.")
    if randaugment not in ("paper", None):
        Augmentation(randaugment=randaugment)  # (num_layers >= 1, magnitude >= 0), else a ValueError
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"`{name}` must be a positive integer (or None for the default); received {value!r}.")
    if learning_rate is not None and not float(learning_rate) > 0:
        raise ValueError(f"`learning_rate` must be a positive number (or None for the recipe's); received "
                         f"{learning_rate!r}.")
