"""Training pieces: SGD with Adaptive Gradient Clipping, coupled weight decay, schedules, EMA."""

from keras_nfnets.training.ema import ExponentialMovingAverage, ema_decay
from keras_nfnets.training.optimizers import SGDAGC, adaptive_grad_clip, unitwise_norm, warmup_cosine_decay
