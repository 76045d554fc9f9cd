"""``NFModel``: the functional ``keras.Model`` every builder returns, knowing what it is.

It carries its architecture (:class:`~keras_nfnets.NFConfig`) and, when it holds pretrained
weights, its checkpoint row (:class:`~keras_nfnets.models.checkpoint.Checkpoint`), as timm's
models carry ``pretrained_cfg`` and keras-hub's backbones their config. Both travel in
``get_config`` (``.keras`` files, ``keras.models.clone_model``) and in the ``.weights.h5``
files the model saves, so nothing downstream guesses an architecture from shapes or counts.

``pyramid_outputs`` are the multi-scale features at timm's ``feature_info`` taps, under
keras-hub's names: ``"P1"`` … ``"P5"``, level n at stride 2ⁿ.
"""

import json
import math
import os
import threading

import keras

from keras_nfnets import backend, names
from keras_nfnets._compat import FunctionalRunHook
from keras_nfnets.backend import cpu
from keras_nfnets.models.checkpoint import Checkpoint
from keras_nfnets.models.config import NFConfig

CONFIG_ATTRIBUTE = "keras_nfnets_config"  # a .weights.h5 file's architecture, NFConfig.to_dict() as JSON
ARCHITECTURE_ATTRIBUTE = "keras_nfnets_architecture"  # ... and its name, for people reading the file
CHECKPOINT_ATTRIBUTE = "keras_nfnets_checkpoint"  # the checkpoint tag of pretrained weights


def pyramid_layers(config):
    """``{"P1": layer name, …}``: the layer whose output is each pyramid level of ``config``.

    The taps are timm's ``feature_info`` for NF models (``timm/models/nfnet.py``): the stem at
    stride 2 (``stem.conv``; the deep stem's third conv), each stage's last block output, and
    the final 1×1 conv (before its activation) in place of the last stage where there is one.
    Where two taps share a stride (a stage of stride 1), the later one is the level."""
    stem_tap = names.stem_layer("conv3") if config.stem == "deep_quad" else names.stem_layer("conv")
    levels = {1: stem_tap}
    reduction = 4 if config.stem == "deep_quad" or (config.stem == "7x7_pool" and config.stem_pool) else 2
    last_level = None
    for stage, (depth, stride) in enumerate(zip(config.depths, config.strides), start=1):
        reduction *= stride
        level = int(round(math.log2(reduction)))
        levels[level] = names.block_output(names.block(stage, depth))
        last_level = level
    if config.final_conv_channels:
        levels[last_level] = names.FINAL_CONV
    return {f"P{level}": layer for level, layer in sorted(levels.items())}


def pyramid_outputs(model, config):
    """``{"P1": tensor, …}`` of a functional ``model`` built from ``config``: the output of each
    layer :func:`pyramid_layers` names (a plain dict, as ``keras.Model(inputs, outputs)`` takes)."""
    return {level: model.get_layer(layer).output for level, layer in pyramid_layers(config).items()}


def pyramid_model(model, levels=None):
    """A ``keras.Model`` from ``model``'s input to the feature maps of ``levels`` (default all,
    ``"P1"`` … ``"P5"``), as a dict: the multi-scale features of a keras.applications-style
    model (timm's ``features_only=True``). The layers are ``model``'s own (shared weights).
    A level the model does not have is an error that lists the levels it has."""
    available = getattr(model, "pyramid_outputs", None)
    if available is None:
        raise ValueError(f"{model.name!r} is a {type(model).__name__}, not a keras_nfnets model: it has no "
                         "pyramid_outputs. Build it with keras_nfnets (a builder, from_timm, load_model).")
    if keras.config.image_data_format() != "channels_last":
        raise ValueError("keras_nfnets features are channels_last only; call "
                         "keras.config.set_image_data_format('channels_last').")
    levels = list(available) if levels is None else [levels] if isinstance(levels, str) else list(levels)
    missing = [level for level in levels if level not in available]
    if missing:
        strides = ", ".join(f"{name} (stride {2 ** int(name[1:])})" for name in available)
        raise ValueError(f"{model.name!r} has no pyramid level {missing[0]!r}; its levels are {strides}.")
    return keras.Model(model.input, {level: available[level] for level in levels}, name=f"{model.name}_pyramid")


_graph_run = threading.local()


@keras.saving.register_keras_serializable(package="keras_nfnets")
class NFModel(FunctionalRunHook, keras.Model):
    """A functional model with its identity (module docstring).

    Attributes:
        architecture: the :class:`~keras_nfnets.NFConfig` it was built from.
        checkpoint: the :class:`~keras_nfnets.models.checkpoint.Checkpoint` row of its
            pretrained weights, or ``None``.
        pyramid_outputs: ``{"P1": tensor, …}``, the feature maps at strides 2, 4, … 32.
        remat: when True, a training call recomputes each residual block's activations in the
            backward pass instead of keeping them (:mod:`keras_nfnets.models.remat`): less memory,
            the same gradients. Set it before compiling (a compiled step keeps what it traced).
    """

    def __init__(self, *args, architecture=None, checkpoint=None, remat=False, **kwargs):
        super().__init__(*args, **kwargs)
        if architecture is None:  # keras.models.clone_model calls the class with (inputs, outputs, name) only
            architecture, checkpoint, remat = getattr(_graph_run, "identity", (None, None, False))
            _graph_run.identity = (None, None, False)
        if architecture is None:
            raise ValueError("NFModel needs its `architecture` (an NFConfig): build models with keras_nfnets' builders, "
                             "or pass architecture=.")
        self.architecture = NFConfig.from_dict(architecture)
        self.checkpoint = checkpoint if checkpoint is None or isinstance(checkpoint, Checkpoint) else \
            Checkpoint.from_dict(checkpoint)
        self.remat = bool(remat)
        self._remat_plan = None
        self._precision_advised = False

    def call(self, inputs, training=None, mask=None, **kwargs):
        if not self._precision_advised:  # at the first call (its trace): before any work
            self._precision_advised = True
            cpu.advise_precision(self.compute_dtype, backend.current().device_type())
        _graph_run.training = training is True  # read by run_graph, which Keras calls from here
        try:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        finally:
            _graph_run.training = False

    def run_graph(self, keras_run, *args, **kwargs):  # (keras_nfnets._compat.FunctionalRunHook)
        # keras.models.clone_model runs the original's graph, then calls NFModel(inputs, outputs,
        # name=...) without the identity: the clone takes it from the graph it was run through.
        if getattr(self, "architecture", None) is not None:  # (Keras runs the graph once while constructing)
            _graph_run.identity = (self.architecture, self.checkpoint, self.remat)
        if getattr(self, "remat", False) and getattr(_graph_run, "training", False) and kwargs.get("call_fn") is None:
            from keras_nfnets.models import remat

            if self._remat_plan is None:
                self._remat_plan = remat.segments(self)
            inputs = args[0] if args else kwargs["inputs"]
            operation_fn = args[1] if len(args) > 1 else kwargs.get("operation_fn", lambda op: op)
            return remat.run_with_remat(self, self._remat_plan, keras.tree.flatten(inputs), operation_fn)
        return keras_run(*args, **kwargs)

    @property
    def pyramid_outputs(self):
        return pyramid_outputs(self, self.architecture)

    def with_checkpoint(self, checkpoint):
        """Record that the model now holds ``checkpoint``'s weights (``None``: its own)."""
        self.checkpoint = checkpoint
        return self

    def get_config(self):
        config = super().get_config()
        config.update(architecture=self.architecture.to_dict(),
                      checkpoint=None if self.checkpoint is None else self.checkpoint.to_dict(), remat=self.remat)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        architecture, checkpoint = config.pop("architecture", None), config.pop("checkpoint", None)
        remat = config.pop("remat", False)
        model = keras.Model.from_config(config, custom_objects=custom_objects)  # the graph, as a Functional
        inputs, outputs = model.inputs, model.outputs
        return cls(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs,
                   name=model.name, trainable=model.trainable, architecture=architecture, checkpoint=checkpoint,
                   remat=remat)

    def save_weights(self, filepath, *args, **kwargs):
        """Keras' ``save_weights``; a ``.weights.h5`` file also records the architecture (and
        the checkpoint tag) as attributes, which Keras ignores when loading and
        :func:`weights_file_identity` reads."""
        super().save_weights(filepath, *args, **kwargs)
        path = os.fspath(filepath)
        if path.endswith(".h5") and os.path.isfile(path):
            import h5py

            with h5py.File(path, "a") as file:
                file.attrs[CONFIG_ATTRIBUTE] = json.dumps(self.architecture.to_dict())
                file.attrs[ARCHITECTURE_ATTRIBUTE] = self.architecture.name
                if self.checkpoint is not None:
                    file.attrs[CHECKPOINT_ATTRIBUTE] = self.checkpoint.tag


def weights_file_identity(attributes):
    """The :class:`NFConfig` a weights file's attributes record (written by
    :meth:`NFModel.save_weights`), or ``None`` for a file that records none."""
    recorded = attributes.get(CONFIG_ATTRIBUTE)
    if recorded is None:
        return None
    if isinstance(recorded, bytes):
        recorded = recorded.decode()
    return NFConfig.from_dict(json.loads(recorded))


def weights_file_checkpoint(attributes):
    """The checkpoint tag a weights file's attributes record, or ``None``."""
    tag = attributes.get(CHECKPOINT_ATTRIBUTE)
    return tag.decode() if isinstance(tag, bytes) else tag
