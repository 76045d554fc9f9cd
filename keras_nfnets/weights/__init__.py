"""Pretrained weights: timm checkpoints → Keras, strictly; Hub download and cache; from_timm.
Loaded on first use."""

from keras_nfnets._lazy import lazy_exports

__all__ = lazy_exports(__name__, {
    ".convert": ("CheckpointError", "load_checkpoint", "load_timm_weights", "match_checkpoint", "timm_weight_map"),
    ".hub": ("download_checkpoint", "from_timm", "keras_cache_dir", "load_pretrained"),
    ".presets": ("CHECKPOINTS", "IMAGENET_PRESETS", "Checkpoint", "checkpoint_for"),
})
