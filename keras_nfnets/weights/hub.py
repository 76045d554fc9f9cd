"""Download timm checkpoints from the Hugging Face Hub, convert them, cache the Keras weights."""

import inspect
import os

from keras_nfnets import names
from keras_nfnets.models.arguments import ApplicationArgs, document, signature
from keras_nfnets.models.builder import build_checked, load_weights_file
from keras_nfnets.models.timm_configs import timm_config
from keras_nfnets.weights.convert import CheckpointError, load_timm_weights
from keras_nfnets.weights.presets import checkpoint_for, image_sizes


def keras_cache_dir():
    """``$KERAS_HOME/models/keras_nfnets`` (``~/.keras`` by default, as ``keras.utils.get_file``)."""
    root = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(os.path.dirname(root) if not os.path.exists(root) else root, os.W_OK):
        root = os.path.join("/tmp", ".keras")
    return os.path.join(root, "models", "keras_nfnets")


def _offline_alternatives(checkpoint):
    return (f"Offline alternatives: a Keras weights file of this model (converted by tools/convert_timm.py or saved "
            "by model.save_weights: `weights='FILE.weights.h5'`), the timm checkpoint file under its timm name "
            f"(keras_nfnets.from_timm('{checkpoint.architecture}', checkpoint='model.safetensors'); at the command "
            f"line --model {checkpoint.architecture} --checkpoint model.safetensors), or random weights "
            "(`weights=None`).")


def hub_offline():
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it once, when it is imported)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir():
    """The Hugging Face Hub cache as the environment names it now (``HF_HUB_CACHE``, else
    ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")


_REACHABLE = {}  # endpoint -> None (reachable) or why not: asked once per process


def hub_unreachable(timeout=3.0):
    """``None`` when the Hub's endpoint (``HF_ENDPOINT``, default huggingface.co) accepts a TCP
    connection within ``timeout`` seconds, else the reason; asked once per process, so a machine
    without network learns it in seconds instead of waiting through the download's retries."""
    import socket
    import threading
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if endpoint not in _REACHABLE:
        url = urlparse(endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
        outcome = ["no answer within %g s" % timeout]

        def connect():
            try:
                socket.create_connection((url.hostname, port), timeout=timeout).close()
                outcome[0] = None
            except OSError as error:
                outcome[0] = error.strerror or str(error) or type(error).__name__

        probe = threading.Thread(target=connect, daemon=True)  # name resolution has no timeout of its own
        probe.start()
        probe.join(timeout + 1.0)
        _REACHABLE[endpoint] = None if outcome[0] is None else f"{url.hostname}:{port}: {outcome[0]}"
    return _REACHABLE[endpoint]


def download_checkpoint(checkpoint):
    """Local path of ``checkpoint``'s safetensors file, through ``huggingface_hub`` (its cache and
    token handling). Offline (``HF_HUB_OFFLINE`` set, read at this call) only the cache is read;
    without a network (the Hub does not answer within seconds) a cached file is used, else both
    fail at once, naming the offline alternatives."""
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError as error:
        raise ImportError(
            "Pretrained weights need huggingface_hub and safetensors, which keras-nfnets installs: reinstall it "
            "(pip install keras-nfnets) or pip install huggingface_hub safetensors"
        ) from error
    where = f"{checkpoint.repo_id}/{checkpoint.filename}"
    cache = hub_cache_dir()
    unreachable = None if hub_offline() else hub_unreachable()
    if hub_offline() or unreachable:
        cached = try_to_load_from_cache(repo_id=checkpoint.repo_id, filename=checkpoint.filename, cache_dir=cache)
        if isinstance(cached, str):
            return cached
        why = ("HF_HUB_OFFLINE is set" if unreachable is None else
               f"No network: the Hugging Face Hub does not answer ({unreachable})")
        raise OSError(f"{why} and {where} is not in the Hugging Face Hub cache ({cache}). "
                      + _offline_alternatives(checkpoint))
    try:
        return hf_hub_download(repo_id=checkpoint.repo_id, filename=checkpoint.filename, cache_dir=cache)
    except Exception as error:
        raise OSError(
            f"Could not get {where} from the Hugging Face Hub ({type(error).__name__}: {error}). Check the network; "
            "offline, set HF_HUB_OFFLINE=1 to read only the Hub cache. " + _offline_alternatives(checkpoint)
        ) from error


def load_pretrained(model, checkpoint):
    """Load ``checkpoint`` (a :class:`Checkpoint`) into ``model`` (an NFModel of its architecture),
    via the converted-weights cache; the model records the checkpoint.

    The first call downloads and converts (NumPy + safetensors, no torch) and saves
    ``<tag>[_notop].weights.h5`` under :func:`keras_cache_dir`; later calls load that file.
    """
    has_top = names.has_classifier(model)
    cache_path = os.path.join(keras_cache_dir(), f"{checkpoint.tag}{'' if has_top else '_notop'}.weights.h5")
    if os.path.exists(cache_path):
        try:
            load_weights_file(model, cache_path)
            return model.with_checkpoint(checkpoint)
        except Exception:  # a stale or damaged cache file: convert again below
            os.remove(cache_path)
    load_timm_weights(model, download_checkpoint(checkpoint))
    model.with_checkpoint(checkpoint)
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    model.save_weights(cache_path)  # records the architecture and the checkpoint
    return model


def from_timm(name, checkpoint=None, pretrained=True, **arguments):
    """The Keras twin of timm's NF model ``name`` (any of its 36 names, tag suffix allowed).

    Args:
        name: e.g. ``"nf_regnet_b1"``, ``"dm_nfnet_f0.dm_in1k"``, ``"eca_nfnet_l3"``.
        checkpoint: a ``.safetensors`` file, a ``.pth``/``.bin`` file (needs torch), or a dict of
            arrays in timm's naming. ``None`` downloads the tag's Hub checkpoint.
        pretrained: ``False`` builds the architecture with random weights.
    """
    config = timm_config(name)
    preset = checkpoint_for(name if "." in name else config.name)
    default_size = image_sizes(name if "." in name else config.name)[1]
    if "weights" in arguments:
        raise TypeError("from_timm takes `checkpoint=` (or `pretrained=False`), not `weights=`.")
    args = ApplicationArgs.bind("from_timm", arguments)
    loading = pretrained or checkpoint is not None
    if loading and checkpoint is None and preset is None:
        raise ValueError(
            f"timm's {name!r} has no published checkpoint. Pass `checkpoint=` (a .safetensors/.pth file or a "
            "dict of arrays), or `pretrained=False` for random weights."
        )
    args.replace(weights="imagenet" if loading else None).check()  # a checkpoint has ImageNet's rules
    if isinstance(checkpoint, (str, os.PathLike)) and not os.path.isfile(checkpoint):  # before building
        raise CheckpointError(f"Checkpoint file not found: {os.fspath(checkpoint)!r}; pass a .safetensors/.pth file "
                              "that exists, or leave `checkpoint` out for the Hugging Face Hub's.")
    model = build_checked(config, args, default_size=default_size)
    if checkpoint is not None:
        load_timm_weights(model, checkpoint)
        model.with_checkpoint(preset)  # the row of the tag named: its sizes and evaluation (None: unknown)
    elif loading:
        load_pretrained(model, preset)
    return model


from_timm.__signature__ = signature(
    [inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD),
     inspect.Parameter("checkpoint", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
     inspect.Parameter("pretrained", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=True)], exclude=("weights", "name"))
from_timm.__doc__ += document(exclude=("weights", "name"), test_size="the checkpoint's test size") + "\n"

__all__ = ["CheckpointError", "download_checkpoint", "from_timm", "keras_cache_dir", "load_pretrained"]
