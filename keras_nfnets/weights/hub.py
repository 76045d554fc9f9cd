"""Download timm checkpoints from the Hugging Face Hub, convert them, cache the Keras weights."""

import os

from keras_nfnets.models.builder import build_nf_model, validate_application_args
from keras_nfnets.models.timm_configs import timm_config
from keras_nfnets.weights.convert import CheckpointError, load_timm_weights
from keras_nfnets.weights.presets import checkpoint_for


def keras_cache_dir():
    """``$KERAS_HOME/models/keras_nfnets`` (``~/.keras`` by default, as ``keras.utils.get_file``)."""
    root = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(os.path.dirname(root) if not os.path.exists(root) else root, os.W_OK):
        root = os.path.join("/tmp", ".keras")
    return os.path.join(root, "models", "keras_nfnets")


def _offline_alternatives(checkpoint):
    return (f"Offline alternatives: a local Keras weights file (weights='model.weights.h5', --weights FILE), the "
            f"timm checkpoint file (keras_nfnets.from_timm('{checkpoint.architecture}', checkpoint='model.safetensors'); "
            f"nfnets predict --model {checkpoint.architecture} --checkpoint FILE), or random weights (weights=None, "
            "--weights none).")


def download_checkpoint(checkpoint):
    """Local path of ``checkpoint``'s safetensors file, through ``huggingface_hub`` (its cache,
    ``HF_HUB_OFFLINE`` and token handling). With ``HF_HUB_OFFLINE`` set only the cache is read:
    a missing file fails at once, naming the offline alternatives."""
    try:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    except ImportError as error:
        raise ImportError(
            "Pretrained weights need huggingface_hub and safetensors: pip install 'keras-nfnets[hub]'"
        ) from error
    where = f"{checkpoint.repo_id}/{checkpoint.filename}"
    if constants.HF_HUB_OFFLINE:
        cached = try_to_load_from_cache(repo_id=checkpoint.repo_id, filename=checkpoint.filename)
        if isinstance(cached, str):
            return cached
        raise OSError(f"HF_HUB_OFFLINE is set and {where} is not in the Hugging Face Hub cache. "
                      + _offline_alternatives(checkpoint))
    try:
        return hf_hub_download(repo_id=checkpoint.repo_id, filename=checkpoint.filename)
    except Exception as error:
        raise OSError(
            f"Could not get {where} from the Hugging Face Hub ({type(error).__name__}). Check the network; "
            "offline, set HF_HUB_OFFLINE=1 to read only the Hub cache without retries. "
            + _offline_alternatives(checkpoint)
        ) from error


def load_pretrained(model, checkpoint, config):
    """Load ``checkpoint`` (a :class:`Checkpoint`) into ``model``, built from ``config``, via the
    converted-weights cache.

    The first call downloads and converts (NumPy + safetensors, no torch) and saves
    ``<tag>[_notop].weights.h5`` under :func:`keras_cache_dir`; later calls load that file.
    """
    has_top = "predictions" in {layer.name for layer in model.layers}
    cache_path = os.path.join(keras_cache_dir(), f"{checkpoint.tag}{'' if has_top else '_notop'}.weights.h5")
    if os.path.exists(cache_path):
        try:
            model.load_weights(cache_path)
            return model
        except Exception:  # a stale or damaged cache file: convert again below
            os.remove(cache_path)
    load_timm_weights(model, download_checkpoint(checkpoint), config)
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    model.save_weights(cache_path)
    return model


def from_timm(name, checkpoint=None, pretrained=True, **applications_kwargs):
    """The Keras twin of timm's NF model ``name`` (any of its 36 names, tag suffix allowed).

    Args:
        name: e.g. ``"nf_regnet_b1"``, ``"dm_nfnet_f0.dm_in1k"``, ``"eca_nfnet_l3"``.
        checkpoint: a ``.safetensors`` file, a ``.pth``/``.bin`` file (needs torch), or a dict of
            arrays in timm's naming. ``None`` downloads the tag's Hub checkpoint.
        pretrained: ``False`` builds the architecture with random weights.
        **applications_kwargs: ``include_top``, ``input_tensor``, ``input_shape``, ``pooling``,
            ``classes``, ``classifier_activation``, ``name``, ``drop_rate``, ``stochastic_depth_rate``.
    """
    config = timm_config(name)
    preset = checkpoint_for(name if "." in name else config.name)
    if preset is not None:
        config = config.replace(train_size=preset.train_size, test_size=preset.test_size)
    if "weights" in applications_kwargs:
        raise TypeError("from_timm takes `checkpoint=` (or `pretrained=False`), not `weights=`.")
    loading = pretrained or checkpoint is not None
    if loading and checkpoint is None and preset is None:
        raise ValueError(
            f"timm's {name!r} has no published checkpoint. Pass `checkpoint=` (a .safetensors/.pth file or a "
            "dict of arrays), or `pretrained=False` for random weights."
        )
    checked = {k: v for k, v in applications_kwargs.items() if k not in ("name", "drop_rate", "stochastic_depth_rate")}
    validate_application_args(weights="imagenet" if loading else None, **checked)
    model = build_nf_model(config, **applications_kwargs)
    if checkpoint is not None:
        load_timm_weights(model, checkpoint, config)
    elif loading:
        load_pretrained(model, preset, config)
    return model


__all__ = ["CheckpointError", "download_checkpoint", "from_timm", "keras_cache_dir", "load_pretrained"]
