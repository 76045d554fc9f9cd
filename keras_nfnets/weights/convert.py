"""timm checkpoints (state dicts of NumPy arrays) → Keras weights, name by name, strictly.

Every Keras weight is filled from exactly one checkpoint tensor with the right shape, and every
checkpoint tensor is used; anything missing, left over or misshapen is an error that names the
tensors, raised before any weight is assigned (never a partly loaded model).
"""

import os

import numpy as np

from keras_nfnets import names
from keras_nfnets.layers.blocks import ECA, SkipInitGain, SqueezeExcite
from keras_nfnets.layers.ws_conv import GroupConv2D
from keras_nfnets.models.timm_configs import timm_config

HEAD_KEYS = ("head.fc.weight", "head.fc.bias")
_BLOCK_PARTS = {"conv1": "conv1", "conv2": "conv2", "conv2b": "conv2b", "conv3": "conv3",
                "shortcut_conv": "downsample.conv", "skip_gain": "skipinit_gain"}


class CheckpointError(ValueError):
    """A checkpoint does not fit the model (missing, unused or misshapen tensors, unreadable file)."""


def load_checkpoint(source):
    """Read a checkpoint into ``{name: float32 ndarray}``.

    ``source`` is a dict of arrays (NumPy or anything with ``.numpy()``), a ``.safetensors``
    file, or a ``.pth``/``.pt``/``.bin`` PyTorch file (needs torch).
    """
    if isinstance(source, dict):
        for wrapper in ("state_dict", "model"):  # training checkpoints nest the weights
            if isinstance(source.get(wrapper), dict):
                source = source[wrapper]
        return {k: _to_numpy(v, k) for k, v in source.items()}
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint file not found: {path!r}.")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            state = load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"Cannot read {path!r} as safetensors ({error}); the file is corrupted or truncated: download it again."
            ) from error
        return {k: _to_numpy(v, k) for k, v in state.items()}
    if path.endswith((".pth", ".pt", ".bin")):
        try:
            import torch
        except ImportError as error:
            raise CheckpointError(f"Reading {path!r} needs PyTorch: `pip install torch`, or use a .safetensors file.") from error
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise CheckpointError(f"Cannot read {path!r} as a PyTorch checkpoint ({error}); it is corrupted or truncated.") from error
        return load_checkpoint(dict(state))
    raise CheckpointError(f"Unsupported checkpoint file {path!r}: expected .safetensors, .pth, .pt or .bin.")


def _to_numpy(value, name):
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise CheckpointError(f"Checkpoint tensor {name!r} has dtype {array.dtype}; expected floating point.")
    return array.astype("float32")


def _layer_prefix(layer_name, attention_key):
    """timm module path of the Keras layer ``layer_name``."""
    stem_conv = names.stem_layer("conv")
    if layer_name.startswith(stem_conv):  # stem_conv, stem_conv1, ...
        return "stem.conv" + layer_name[len(stem_conv):]
    if layer_name == names.FINAL_CONV:
        return "final_conv"
    if layer_name == names.CLASSIFIER:
        return "head.fc"
    parsed = names.parse_block_layer(layer_name)
    if parsed:
        stage, block, part = parsed
        part = attention_key if part == "attention" else _BLOCK_PARTS.get(part)
        if part is not None:
            return f"stages.{stage - 1}.{block - 1}.{part}"
    raise CheckpointError(f"Layer {layer_name!r} has no timm counterpart.")


# timm names the attention module by where it sits in the block.
_TIMM_ATTENTION_KEYS = {"mid": "attn", "out": "attn_last"}


def timm_weight_map(model, config=None):
    """``[(keras_variable, timm_key, converter)]`` for every weight of ``model``, built from ``config``
    (an :class:`NFConfig` or a timm model name; default the architecture the model records).

    ``converter`` maps the timm array to the Keras layout (OIHW → HWIO kernels, (O,1,1,1) → (O,)
    gains, transposed linear weights).
    """
    if config is None:
        config = _recorded_architecture(model)
    if isinstance(config, str):
        config = timm_config(config)
    attention_key = _TIMM_ATTENTION_KEYS[config.attention_position]
    entries = []
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = _layer_prefix(layer.name, attention_key)
        if isinstance(layer, GroupConv2D):
            entries.append((layer.kernel, f"{prefix}.weight", lambda a: a.transpose(2, 3, 1, 0)))
            if getattr(layer, "gain", None) is not None:
                entries.append((layer.gain, f"{prefix}.gain", lambda a: a.reshape(-1)))
            if layer.bias is not None:
                entries.append((layer.bias, f"{prefix}.bias", lambda a: a))
        elif isinstance(layer, SqueezeExcite):
            for fc in ("fc1", "fc2"):
                dense = getattr(layer, fc)
                entries.append((dense.kernel, f"{prefix}.{fc}.weight", lambda a: a.reshape(a.shape[0], -1).T))
                entries.append((dense.bias, f"{prefix}.{fc}.bias", lambda a: a))
        elif isinstance(layer, ECA):
            entries.append((layer.kernel, f"{prefix}.conv.weight", lambda a: a.reshape(-1, 1, 1)))
        elif isinstance(layer, SkipInitGain):
            entries.append((layer.skip_gain, prefix, lambda a: a.reshape(())))
        elif layer.name == names.CLASSIFIER:
            entries.append((layer.kernel, f"{prefix}.weight", lambda a: a.T))
            entries.append((layer.bias, f"{prefix}.bias", lambda a: a))
        else:
            raise CheckpointError(f"Layer {layer.name!r} ({type(layer).__name__}) has weights with no timm mapping.")
    return entries


def _recorded_architecture(model):
    architecture = getattr(model, "architecture", None)
    if architecture is None:
        raise TypeError(f"{model.name!r} is not a keras_nfnets model, so it records no architecture: pass `config=` "
                        "(the NFConfig or timm name it was built from).")
    return architecture


def load_timm_weights(model, checkpoint, config=None, allow_unused_head=None):
    """Fill every weight of ``model`` from the timm ``checkpoint`` (see :func:`load_checkpoint`).

    ``allow_unused_head`` (default: whether the model has no ``predictions`` layer) lets the
    classifier tensors go unused, for ``include_top=False``. Raises :class:`CheckpointError`
    naming every missing, unused or misshapen tensor; nothing is assigned unless all fit.
    """
    state = load_checkpoint(checkpoint)
    for variable, value in match_checkpoint(model, state, config, allow_unused_head):
        variable.assign(value)
    return model


def match_checkpoint(model, state, config=None, allow_unused_head=None):
    """Pair every weight of ``model`` with its converted tensor from ``state`` (a dict of arrays).

    Returns ``[(variable, array)]`` without assigning anything; raises :class:`CheckpointError`
    naming every missing, unused or misshapen tensor.
    """
    if allow_unused_head is None:
        allow_unused_head = not names.has_classifier(model)
    used, missing, misshapen, assignments = set(), [], [], []
    for variable, key, convert in timm_weight_map(model, config):
        if key not in state:
            missing.append(key)
            continue
        used.add(key)
        value = convert(state[key])
        if tuple(value.shape) != tuple(variable.shape):
            misshapen.append(f"{key}: checkpoint {tuple(state[key].shape)} -> {tuple(value.shape)}, "
                             f"model {variable.path} {tuple(variable.shape)}")
            continue
        assignments.append((variable, value))
    unused = sorted(k for k in state if k not in used and not (allow_unused_head and k in HEAD_KEYS))
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) the model needs are missing from the checkpoint: {', '.join(missing[:20])}")
    if unused:
        problems.append(f"{len(unused)} checkpoint tensor(s) have no place in the model: {', '.join(unused[:20])}")
    if misshapen:
        problems.append(f"{len(misshapen)} tensor(s) have the wrong shape: {'; '.join(misshapen[:10])}")
    if problems:
        raise CheckpointError(
            f"Checkpoint does not fit model {model.name!r}: " + ". ".join(problems)
            + ". Check that the checkpoint and the architecture (timm model name) match."
        )
    return assignments
