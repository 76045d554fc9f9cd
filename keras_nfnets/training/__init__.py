"""Training: SGD with Adaptive Gradient Clipping, coupled weight decay, schedules, EMA, the
papers' recipes, strategies/precision by name, and complete runs (``train``, ``evaluate``).
Loaded on first use."""

from keras_nfnets._lazy import lazy_exports

__all__ = lazy_exports(__name__, {
    ".callbacks": ("EpochBackup", "StopOnNaN"),
    ".distribute": ("PRECISIONS", "STRATEGIES", "KerasCluster", "KerasDataParallel", "WorkerRole",
                    "check_precision", "cluster_from_keras_env", "cluster_from_tf_config", "make_strategy", "set_precision",
                    "worker_role"),
    ".ema": ("ExponentialMovingAverage", "ema_decay"),
    ".memory": ("TrainingOutOfMemoryError", "is_out_of_memory"),
    "..optimizers": ("PerOptimizerStep", "SGDAGC", "adaptive_grad_clip", "unitwise_norm", "warmup_cosine_decay"),
    ".recipes": ("BN_RESNET", "NF_REGNET", "NF_RESNET", "NFNET", "Hyperparameters", "Recipe", "RecipePlan",
                 "build_recipe", "paper_hyperparameters", "plan_recipe", "recipe"),
    ".evaluation": ("evaluate",),
    ".run": ("DATASET_DEFAULTS", "TrainResult", "build_classifier", "run_training", "train"),
    ".config": ("TrainConfig",),
    ".plan": ("DataFacts", "TrainPlan", "make_plan"),
})
