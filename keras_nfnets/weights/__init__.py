"""Pretrained weights: timm checkpoints → Keras, strictly; Hub download and cache; from_timm."""

from keras_nfnets.weights.convert import CheckpointError, load_checkpoint, load_timm_weights, match_checkpoint, timm_weight_map
from keras_nfnets.weights.hub import download_checkpoint, from_timm, keras_cache_dir, load_pretrained
from keras_nfnets.weights.presets import CHECKPOINTS, IMAGENET_PRESETS, Checkpoint, checkpoint_for
