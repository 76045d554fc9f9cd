"""Every option of :func:`~keras_nfnets.training.train`, once: :class:`TrainConfig`.

Each field carries its help text, its ``nfnets train`` flag, the text form the flag takes, and
whether a resumed run must keep it (``resume``). The command line's parser is made from these
fields (:func:`add_arguments`), ``train()``'s keywords are its fields, the run directory's
``run.json`` is the resolved configuration's JSON (:meth:`TrainConfig.to_json`), and the resume
check reads :data:`RESUME_SETTINGS`, derived here. Plain Python: nothing here imports Keras or
TensorFlow. A new option is one field here and its use where the run needs it
(docs/extending.md).
"""

import argparse
import dataclasses
import difflib
import inspect
from typing import Any, Optional

from keras_nfnets.training.options import AUGMENT_CHOICES, DEFAULT_DATASET, DEFAULT_MODEL, PRECISIONS, STRATEGIES


# --- the text forms of option values (argparse types; each error names what it expects) ----------

def _number(text, convert, accepts, expected, rule):
    """``convert(text)`` if ``accepts`` it, else argparse's error: "expected <expected>" for text
    that is no number, "must be <rule>" for a number outside the range."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not accepts(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def positive_int(text):
    """An integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "a positive integer", "a positive integer")


def positive_float(text):
    """A number > 0."""
    return _number(text, float, lambda v: v > 0, "a positive number", "a positive number")


def non_negative_float(text):
    """A number >= 0."""
    return _number(text, float, lambda v: v >= 0, "a number >= 0", "a number >= 0")


def fraction(text):
    """A number in [0, 1) (0 turns the thing off)."""
    return _number(text, float, lambda v: 0 <= v < 1, "a number in [0, 1)", "in [0, 1) (0 turns it off)")


def number_or_off(text):
    """``paper`` (keep the recipe's), ``0``/``off``/``none`` (``None``: off), or a positive number."""
    if text == "paper":
        return "paper"
    if text.lower() in ("0", "off", "none"):
        return None
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive number, 'off' or 'paper', got {text!r}") from None


def randaugment_setting(text):
    """``paper``, ``off`` (``None``) or ``LAYERS,MAGNITUDE`` (layers >= 1, magnitude >= 0)."""
    if text in ("paper", "off"):
        return None if text == "off" else text
    try:
        layers, magnitude = text.split(",")
        layers, magnitude = int(layers), float(magnitude)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAYERS,MAGNITUDE (e.g. 4,5), 'paper' or 'off', got {text!r}") \
            from None
    if layers < 1 or not magnitude >= 0:
        raise argparse.ArgumentTypeError(f"needs LAYERS >= 1 and MAGNITUDE >= 0, got {text!r}")
    return layers, magnitude


def auto_true_false(text):
    """``auto``, ``true`` (True) or ``false`` (False)."""
    value = {"auto": "auto", "true": True, "false": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {text!r}")
    return value


def progress_level(text):
    """``auto``, or Keras' verbosity 0, 1 or 2."""
    if text == "auto":
        return "auto"
    if text in ("0", "1", "2"):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected auto, 0, 1 or 2, got {text!r}")


# --- the options --------------------------------------------------------------------------------

RECIPE = "recipe"  # ``resume=RECIPE``: kept on a resume through the recipe's summary in run.json


def option(default, help, *, flag="", parse=None, choices=None, metavar=None, action=None, resume=False,
           record=None, dest=None):
    """A :class:`TrainConfig` field. ``flag``: the ``nfnets train`` flag (``""``: ``--`` and the
    name with dashes; ``None``: Python only); ``parse``: its text form; ``action``: argparse's
    ``store_true`` / ``store_false`` for a switch; ``resume``: a resumed run must have the same
    value (``True``), or the same recipe (:data:`RECIPE`); ``record``: its key in run.json (default
    the name; ``False``: not recorded); ``dest``: the parsed argument's name where the field's is
    another flag's (``verbose``: the command line's ``--verbose`` shows TensorFlow's logs)."""
    return dataclasses.field(default=default, metadata=dict(
        help=help, flag=flag, parse=parse, choices=choices, metavar=metavar, action=action, resume=resume,
        record=record, dest=dest or None))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What to train, on what, how: every option of :func:`~keras_nfnets.training.train` and of
    ``nfnets train``. ``None`` means the dataset's or the paper's default; the run resolves every
    one (``run.json`` holds the resolved values). Invalid values are refused when the config is
    made, with the fix."""

    model_name: str = option(DEFAULT_MODEL, "builder name (default %(default)s)", flag="--model", metavar="MODEL",
                             resume=True,
                             record="model")
    dataset: str = option(DEFAULT_DATASET, "digits (embedded), an image folder (class sub-folders), or a TFDS name, "
                          "e.g. imagenet2012", resume=True)
    data_dir: Optional[str] = option(None, "TFDS data directory")
    manual_dir: Optional[str] = option(None, "folder holding ILSVRC2012_img_{train,val}.tar for imagenet2012")
    epochs: Optional[int] = option(None, "default: digits 15, else the paper's", parse=positive_int, resume=True)
    batch_size: Optional[int] = option(
        None, "global batch of one forward pass (default: digits 48, else the paper's; divided by "
        "--accumulation-steps)", parse=positive_int, resume=True)
    accumulation_steps: int = option(
        1, "average N micro-batches' gradients per optimizer step: the step of a batch N times larger (AGC clips "
        "the average; LR, warm-up and EMA per optimizer step). Default 1", parse=positive_int, metavar="N",
        resume=True)
    remat: bool = option(False, "recompute each residual block's activations in the backward pass (less memory, "
                         "~1/3 more compute, the same gradients)", action="store_true")
    image_size: Optional[int] = option(None, "training resolution (default: the model's)", parse=positive_int,
                                       resume=True)
    eval_image_size: Optional[int] = option(None, "evaluation resolution (default: --image-size if given, else the "
                                            "model's test size)", parse=positive_int)
    weights: Optional[str] = option(None, "imagenet (fine-tune) or a .weights.h5 file (default: random)", resume=True)
    strategy: str = option("auto", "tf.distribute strategy (default auto)", choices=STRATEGIES)
    tpu: Optional[str] = option(None, "TPU name or address for --strategy tpu")
    cluster_timeout: Optional[float] = option(
        None, "--strategy multi_worker: how long to wait for every worker of TF_CONFIG to join (default 300; "
        "KERAS_NFNETS_CLUSTER_TIMEOUT)", parse=positive_float, metavar="SECONDS")
    precision: str = option("float32", "Keras dtype policy (default float32)", choices=PRECISIONS, resume=True)
    jit_compile: Any = option("auto", "compile each training step with XLA (default auto: Keras' rule, always on a "
                              "TPU)", parse=auto_true_false, metavar="{auto,true,false}")
    learning_rate: Optional[float] = option(None, "peak LR (default: paper's, scaled by batch)", parse=positive_float,
                                            resume=RECIPE)
    clip_factor: Any = option("paper", "AGC λ, 'off', or 'paper' (default)", parse=number_or_off, resume=RECIPE)
    weight_decay: Optional[float] = option(None, "weight decay (default: the paper's, e.g. 2e-5 for NFNets; 0 off)",
                                           parse=non_negative_float, resume=RECIPE)
    drop_rate: Optional[float] = option(None, "dropout before the classifier (default: the model's, e.g. 0.2 for "
                                        "NFNetF0; 0 off)", parse=fraction, resume=True)
    stochastic_depth_rate: Optional[float] = option(
        None, "stochastic depth's largest drop rate (default: the model's, e.g. 0.25 for NFNetF0; 0 off)",
        parse=fraction, resume=True)
    ema: Any = option("paper", "EMA decay, 'off', or 'paper' (default)", parse=number_or_off, resume=RECIPE)
    augment: str = option("default", "CutMix/MixUp/RandAugment: the recipe's (default; none on digits), paper, none",
                          choices=AUGMENT_CHOICES, resume=True)
    randaugment: Any = option(
        "paper", "RandAugment when augmenting: 'paper' (the recipe's, e.g. 4,5 for NFNetF0), 'off', or "
        "LAYERS,MAGNITUDE (DeepMind's 0-10 scale; above 10 extrapolates)", parse=randaugment_setting,
        metavar="LAYERS,MAGNITUDE", resume=RECIPE)
    steps_per_epoch: Optional[int] = option(None, "cap steps per epoch (quick runs)", parse=positive_int, resume=True)
    output_dir: Optional[str] = option(None, "default runs/<model>_<dataset>")
    seed: Optional[int] = option(0, "seed of data order, crops and initialisation (default 0)", parse=int,
                                 resume=True)
    resume: bool = option(True, "ignore an existing checkpoint and start over", flag="--restart",
                          action="store_false")
    verbose: Any = option(
        "auto", "Keras progress output: 1 a bar, 2 a line per epoch, 0 none; auto (default): a bar on a terminal, "
        "a line per epoch when the output goes to a file or pipe", flag="--progress", parse=progress_level,
        metavar="{auto,0,1,2}", dest="progress")
    tensorboard: bool = option(True, "do not write TensorBoard logs (written to OUTPUT_DIR/logs by default, when "
                               "tensorboard is installed)", flag="--no-tensorboard", action="store_false")
    input_report: bool = option(True, "do not measure the input pipeline at the start (by default it says whether "
                                "the data or the model sets the pace)", flag="--no-input-report",
                                action="store_false")
    callbacks: Any = option(None, "extra Keras callbacks for fit", flag=None, record=False)

    def __post_init__(self):
        _check(self)

    def replace(self, **changes):
        """A copy with ``changes`` (checked like the constructor's; an unknown name is a
        ``TypeError`` naming close ones)."""
        check_names(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_arguments(cls, args):
        """The configuration of a parsed ``nfnets train`` command line."""
        return cls(**{field.name: getattr(args, dest_of(field)) for field in cli_fields()})

    def to_json(self):
        """Plain JSON values under run.json's keys (tuples as lists; ``callbacks`` left out)."""
        import json

        record = {}
        for field in dataclasses.fields(self):
            key = field.metadata["record"]
            if key is False:
                continue
            record[key or field.name] = getattr(self, field.name)
        return json.loads(json.dumps(record, default=str))

    @classmethod
    def from_json(cls, record):
        """The configuration a run.json recorded (its other keys, the run's derived facts, are
        ignored): ``train(config=TrainConfig.from_json(run_json))`` repeats that run."""
        values = {}
        for field in dataclasses.fields(cls):
            key = field.metadata["record"]
            if key is not False and (key or field.name) in record:
                value = record[key or field.name]
                values[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


def fields():
    return dataclasses.fields(TrainConfig)


def cli_fields():
    """The fields ``nfnets train`` has a flag for, in ``--help``'s order."""
    return [field for field in fields() if field.metadata["flag"] is not None]


def dest_of(field):
    return field.metadata["dest"] or field.name


def flag_of(field):
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def add_arguments(parser):
    """Add one flag per :class:`TrainConfig` field to the ``nfnets train`` ``parser`` (its dest
    the field's name, its default the field's)."""
    for field in cli_fields():
        meta = field.metadata
        if meta["action"]:
            parser.add_argument(flag_of(field), dest=dest_of(field), action=meta["action"], help=meta["help"])
            continue
        parser.add_argument(flag_of(field), dest=dest_of(field), default=field.default, type=meta["parse"],
                            choices=meta["choices"], metavar=meta["metavar"], help=meta["help"])


def resume_settings():
    """run.json key → how ``train()`` names it, for each setting a resumed run must keep; the
    recipe options are checked together through the recipe's summary (key ``"recipe"``)."""
    settings, recipe = {}, []
    for field in fields():
        if field.metadata["resume"] is True:
            settings[field.metadata["record"] or field.name] = f"`{field.name}`"
        elif field.metadata["resume"] == RECIPE:
            recipe.append(f"`{field.name}`")
    settings["recipe"] = f"the recipe ({', '.join(recipe)})"
    return settings


RESUME_SETTINGS = resume_settings()


def resume_default(key):
    """What a run.json written before the setting ``key`` existed means: the option's default."""
    for field in fields():
        if (field.metadata["record"] or field.name) == key:
            return field.default
    return None


def check_names(options):
    """Refuse keyword arguments that are no option, naming close ones (as Python's own error)."""
    names = [field.name for field in fields()]
    for name in options:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else f"; the options: {', '.join(names)}"
            raise TypeError(f"train() got an unexpected keyword argument {name!r}{hint}")


def signature(function):
    """``function``'s signature with every option as a keyword (``help()`` and editors show them)."""
    parameters = [inspect.Parameter("model_name", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=DEFAULT_MODEL),
                  inspect.Parameter("dataset", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=DEFAULT_DATASET),
                  inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None)]
    parameters += [inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default)
                   for field in fields() if field.name not in ("model_name", "dataset")]
    return inspect.Signature(parameters, return_annotation=inspect.signature(function).return_annotation)


def _check(config):
    """Refuse, with the fix, the values no run can use (a model that is no builder, a count that is
    not a positive integer, ...)."""
    from keras_nfnets.data.transforms import Augmentation
    from keras_nfnets.registry import builders

    table = builders()
    if config.model_name not in table:
        close = difflib.get_close_matches(str(config.model_name), list(table), n=5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ValueError(f"Unknown model {config.model_name!r}; choose one of {', '.join(table)}.{hint}")
    for field in fields():
        choices = field.metadata["choices"]
        value = getattr(config, field.name)
        if choices and value not in choices:  # (the words of make_strategy's and check_precision's errors)
            raise ValueError(f"Unknown `{field.name}` {value!r}; choose one of {', '.join(choices)}.")
    if not (config.jit_compile is True or config.jit_compile is False or config.jit_compile == "auto"):
        raise ValueError(f"`jit_compile` must be \"auto\", True or False; received {config.jit_compile!r}.")
    if config.randaugment not in ("paper", None):
        Augmentation(randaugment=config.randaugment)  # (num_layers >= 1, magnitude >= 0), else a ValueError
    for name in ("epochs", "batch_size", "image_size", "eval_image_size", "steps_per_epoch", "accumulation_steps"):
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"`{name}` must be a positive integer (or None for the default); received {value!r}.")
    for name in ("learning_rate", "cluster_timeout"):
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not _is_number(value) or not float(value) > 0):
            raise ValueError(f"`{name}` must be a positive number (or None for the default); received {value!r}.")
    if config.weight_decay is not None and not (_is_number(config.weight_decay) and float(config.weight_decay) >= 0):
        raise ValueError(f"`weight_decay` must be a number >= 0 (or None for the paper's); received "
                         f"{config.weight_decay!r}.")
    for name in ("drop_rate", "stochastic_depth_rate"):
        value = getattr(config, name)
        if value is not None and not (_is_number(value) and 0 <= float(value) < 1):
            raise ValueError(f"`{name}` must be in [0, 1) (0 turns it off; None: the model's); received {value!r}.")
    for name in ("clip_factor", "ema"):
        value = getattr(config, name)
        if value not in ("paper", None) and not (_is_number(value) and float(value) >= 0):
            raise ValueError(f"`{name}` must be \"paper\", None (off) or a number >= 0; received {value!r}.")
    if config.ema not in ("paper", None) and not float(config.ema) < 1:
        raise ValueError(f"`ema` is a decay in [0, 1) (e.g. 0.9999); received {config.ema!r}.")
    if config.verbose not in ("auto", 0, 1, 2) or isinstance(config.verbose, bool):
        raise ValueError(f"`verbose` must be \"auto\", 0, 1 or 2; received {config.verbose!r}.")
    if config.seed is not None and (isinstance(config.seed, bool) or not isinstance(config.seed, int)):
        raise ValueError(f"`seed` must be an integer (or None: not reproducible); received {config.seed!r}.")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
