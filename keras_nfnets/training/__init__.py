"""Training: SGD with Adaptive Gradient Clipping, coupled weight decay, schedules, EMA, the
papers' recipes, strategies/precision by name, and complete runs (``train``, ``evaluate``)."""

from keras_nfnets.training.callbacks import EpochBackup, StopOnNaN
from keras_nfnets.training.distribute import (
    PRECISIONS,
    STRATEGIES,
    KerasDataParallel,
    WorkerRole,
    cluster_from_tf_config,
    make_strategy,
    set_precision,
    worker_role,
)
from keras_nfnets.training.ema import ExponentialMovingAverage, ema_decay
from keras_nfnets.training.optimizers import SGDAGC, adaptive_grad_clip, unitwise_norm, warmup_cosine_decay
from keras_nfnets.training.recipes import (
    BN_RESNET,
    NF_REGNET,
    NF_RESNET,
    NFNET,
    Hyperparameters,
    Recipe,
    paper_hyperparameters,
    recipe,
)
from keras_nfnets.training.run import DATASET_DEFAULTS, TrainResult, build_classifier, evaluate, train
