"""A checkpoint row: which pretrained weights a model holds and how they were trained and
evaluated (timm's ``pretrained_cfg``). Plain data: the table of public checkpoints is
``keras_nfnets.weights.presets.CHECKPOINTS``; a built model carries its row
(:attr:`keras_nfnets.models.model.NFModel.checkpoint`)."""

import dataclasses
from typing import Tuple

from keras_nfnets.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A public checkpoint and how it is evaluated.

    Attributes:
        tag: timm tag, e.g. ``"nf_regnet_b1.ra2_in1k"``; the architecture is the part before the dot.
        top1: published ImageNet-1k top-1 (%) at ``test_size`` (timm's results).
        train_size, test_size: training and evaluation image sizes.
        crop, crop_pct, interpolation, mean, std: timm's evaluation settings of the checkpoint
            (see :class:`~keras_nfnets.data.EvalTransform`; ``"plus32"`` is DeepMind's rule).
    """

    tag: str
    top1: float
    train_size: int
    test_size: int
    crop: str = "center"
    crop_pct: float = 0.875
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    filename: str = "model.safetensors"

    def eval_transform(self, size=None):
        """The :class:`EvalTransform` this checkpoint was evaluated with (at ``size``, default
        ``test_size``); timm evaluates with PIL, so resizing is antialiased and clipped."""
        return EvalTransform(size or self.test_size, crop=self.crop, crop_pct=self.crop_pct,
                             interpolation=self.interpolation, pil_resize=True, mean=self.mean, std=self.std)

    @property
    def architecture(self):
        return self.tag.split(".")[0]

    @property
    def repo_id(self):
        return f"timm/{self.tag}"

    def to_dict(self):
        """JSON-ready fields (tuples become lists), for a model's config."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data):
        """The row :meth:`to_dict` wrote; unknown fields are an error that names them."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"A checkpoint row has fields this keras_nfnets does not know: {unknown}. It was written by "
                             "a newer keras_nfnets: upgrade keras_nfnets to load it.")
        return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in data.items()})
