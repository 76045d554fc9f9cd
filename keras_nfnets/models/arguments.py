"""keras.applications' arguments, written once: their names, defaults, documentation and rules.

The 29 builders, ``BNResNetV2``, ``build_nf_model`` and ``from_timm`` all take these keyword
arguments; each gets its signature (:func:`signature`) and its docstring's ``Args`` lines
(:func:`document`) from :class:`ApplicationArgs`, and checks a call once (:meth:`check`).
"""

import dataclasses
import inspect
import os
from typing import Any, Optional

POOLINGS = (None, "avg", "max")
MIN_INPUT_SIZE = 32

DOCS = {  # argument -> its line in a docstring ({...} filled per function)
    "include_top": "whether to include the pooling, dropout and classification head.",
    "weights": '`None` (random initialization), `"imagenet"`{imagenet_note} or the path to a `.weights.h5` file.',
    "input_tensor": "optional Keras tensor (output of `layers.Input()`) to use as image input.",
    "input_shape": "optional `(height, width, channels)` tuple; at least 32×32. With `include_top=True` it must be "
                   "static; defaults to `({test_size}, {test_size}, 3)`, or `(None, None, 3)` without the top.",
    "pooling": 'with `include_top=False`: `None` (4D feature map), `"avg"` or `"max"`.',
    "classes": "number of classes of the classification head.",
    "classifier_activation": "activation of the `predictions` layer (`None` for logits).",
    "name": 'model name (default `"{name}"`).',
    "drop_rate": "dropout before the classifier (default {drop_rate}).",
    "stochastic_depth_rate": "largest per-block stochastic-depth rate (default {sd_rate}).",
}


@dataclasses.dataclass(frozen=True)
class ApplicationArgs:
    """One call's keras.applications arguments (see :data:`DOCS`)."""

    include_top: bool = True
    weights: Any = None
    input_tensor: Any = None
    input_shape: Optional[tuple] = None
    pooling: Optional[str] = None
    classes: int = 1000
    classifier_activation: Any = "softmax"
    name: Optional[str] = None
    drop_rate: Optional[float] = None
    stochastic_depth_rate: Optional[float] = None

    @classmethod
    def bind(cls, function, arguments, defaults=None):
        """The arguments of a call to ``function`` (its name, for errors), as Python would bind them."""
        unknown = sorted(set(arguments) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
        return cls(**{**(defaults or {}), **arguments})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def keywords(self):
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @property
    def pretrained(self):
        return isinstance(self.weights, str) and self.weights == "imagenet"

    def check(self):
        """Every keras.applications argument rule, with Keras' messages, before anything is built.
        ``weights`` is ``None``, ``"imagenet"`` (3 input channels, 1000 classes with the top,
        softmax or no classifier activation) or the path of an existing weights file."""
        import keras

        weights, pretrained = self.weights, self.pretrained
        if not (weights is None or pretrained or (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights))):
            missing = isinstance(weights, (str, os.PathLike))
            raise ValueError(
                "The `weights` argument should be either `None` (random initialization), `imagenet` "
                "(pre-training on ImageNet), or the path to the weights file to be loaded. "
                f"Received: weights={weights}" + (", and no file exists at that path." if missing else ""))
        if keras.config.image_data_format() != "channels_last":
            raise ValueError("keras_nfnets models support only the `channels_last` image data format; call "
                             '`keras.config.set_image_data_format("channels_last")` first.')
        classes, pooling, include_top = self.classes, self.pooling, self.include_top
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
            raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
        if pretrained and include_top and classes != 1000:
            raise ValueError('If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. '
                             f"Received classes={classes}")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of None, 'avg' or 'max'. Received: pooling={pooling!r}")
        if include_top and pooling is not None:
            raise ValueError("`pooling` only applies when `include_top=False` (the classifier head always "
                             f"average-pools). Received: pooling={pooling!r} with include_top=True")
        if weights is not None and include_top and self.classifier_activation not in {None, "softmax"}:
            raise ValueError("Only `None` and `softmax` activations are allowed for the `classifier_activation` "
                             "argument when using pretrained weights, with `include_top=True`; "
                             f"Received: classifier_activation={self.classifier_activation}")
        input_shape = self.input_shape
        if input_shape is None and self.input_tensor is not None:
            input_shape = tuple(self.input_tensor.shape[1:])
        if input_shape is None:
            return
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise ValueError(f"`input_shape` must be a tuple of three integers. Received: input_shape={input_shape}")
        input_shape = tuple(input_shape)
        if pretrained and input_shape[-1] != 3:
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if input_shape[-1] is None:
            raise ValueError(f"The number of input channels must be known. Received: input_shape={input_shape}")
        for dim in input_shape[:2]:
            if dim is not None and dim < MIN_INPUT_SIZE:
                raise ValueError(f"Input size must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}; "
                                 f"Received: input_shape={input_shape}")
        if include_top and None in input_shape[:2]:
            raise ValueError("If `include_top` is True, you should specify a static `input_shape`. "
                             f"Received: input_shape={input_shape}")


def signature(leading=(), defaults=None, exclude=()):
    """An ``inspect.Signature``: the ``leading`` parameters, then every application argument as
    keyword-only (``defaults`` overriding :class:`ApplicationArgs`'; ``exclude`` left out)."""
    defaults = defaults or {}
    keyword = [inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY,
                                 default=defaults.get(field.name, field.default))
               for field in dataclasses.fields(ApplicationArgs) if field.name not in exclude]
    return inspect.Signature([*leading, *keyword])


def document(exclude=(), **values):
    """The ``Args`` lines of the application arguments, their placeholders filled from ``values``."""
    values = {"imagenet_note": "", "test_size": 224, "name": "<the variant>", "drop_rate": "the variant's",
              "sd_rate": "the variant's", **values}
    return "\n".join(f"    {name}: {text.format(**values)}" for name, text in DOCS.items() if name not in exclude)


def validate_application_args(**arguments):
    """Check keras.applications arguments (:meth:`ApplicationArgs.check`)."""
    ApplicationArgs.bind("validate_application_args", arguments).check()
