"""What a run is: every setting :func:`~keras_nfnets.training.train` resolved, as one dataclass
whose JSON form is the run directory's ``run.json``."""

import dataclasses
from typing import Any, List, Optional, Tuple


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
    batch_size: int = 0
    steps_per_epoch: int = 0
    precision: str = "float32"
    jit_compile: Any = "auto"  # as requested; run.json holds what Keras resolved (True/False)
    strategy: str = "auto"
    replicas: int = 1
    workers: int = 1
    seed: Optional[int] = 0
    eval_split: str = ""
    augment: str = "default"
    randaugment: Any = "paper"
    # the recipe, as the plan describes it
    recipe: str = ""
    label_smoothing: float = 0.0

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self):
        """The ``run.json`` record (plain JSON types)."""
        record = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        record["eval_transform"] = dataclasses.asdict(self.eval_transform)
        return record
