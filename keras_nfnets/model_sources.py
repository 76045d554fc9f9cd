"""Which model? One resolver for ``predict``, ``export`` and ``save_preset``: a builder name, a
timm name, a run directory of ``nfnets train`` or a ``.keras`` file. The model it returns records
its architecture and checkpoint (:class:`~keras_nfnets.models.model.NFModel`)."""


def trained_model(path):
    """``(model, class_names, EvalTransform, settings)`` of a run directory written by ``nfnets
    train`` or a ``.keras`` file (see :func:`keras_nfnets.training.run.load_run`); ``None`` when
    ``path`` is neither."""
    import os

    from keras_nfnets.training.run_dir import load_run

    if not isinstance(path, str) or not (os.path.isdir(path) or path.endswith(".keras")):
        return None
    model, settings, transform = load_run(path)
    classes = model.output.shape[-1]
    names = settings.get("class_names") or [f"class {i}" for i in range(classes)]
    if len(names) != classes:
        raise ValueError(f"The run.json of {path} names {len(names)} classes but the model predicts {classes}.")
    return model, list(names), transform, settings


def resolve_model(model_name, weights=None, checkpoint=None, image_size=None):
    """The one answer to "which model?" for ``predict``, ``export`` and ``save_preset``: ``(model, class_names,
    EvalTransform, settings)`` for a builder name (``weights``: None/"none", "imagenet" or a
    .weights.h5 file), a timm NF name (``checkpoint``: a .safetensors/.pth file, default the Hub),
    or a trained run (a run directory of ``nfnets train`` or a .keras file, as ``model_name`` or
    as ``weights``). ``class_names`` is ``None`` for ImageNet models (decode_predictions names
    them); ``settings`` is a trained run's run.json, else ``None``. ``image_size`` sets a static
    input size (a trained model keeps its own)."""
    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.models.timm_configs import TIMM_CONFIGS
    from keras_nfnets.preprocessing import eval_transform
    from keras_nfnets.weights.hub import from_timm

    trained = trained_model(model_name) or trained_model(weights)
    if trained is not None:
        model, names, transform, settings = trained
        if image_size is not None and model.input.shape[1] != image_size:
            raise ValueError(f"`image_size` {image_size} differs from the trained model's input size "
                             f"{model.input.shape[1]}; leave it out to use the model as trained.")
        return model, names, transform, settings
    shape = {} if image_size is None else {"input_shape": (image_size, image_size, 3)}
    if model_name in BUILDERS:
        if checkpoint is not None:
            raise ValueError("`checkpoint` is for timm model names; builders take `weights` ('imagenet' or a file)")
        model = BUILDERS[model_name](weights=None if weights == "none" else weights, **shape)
    elif model_name.split(".")[0] in TIMM_CONFIGS:
        if weights not in (None, "imagenet"):
            raise ValueError(f"{model_name!r} is a timm name: give its checkpoint file as `checkpoint`, not `weights`")
        model = from_timm(model_name, checkpoint=checkpoint, **shape)
    else:
        raise ValueError(f"Unknown model {model_name!r}: give a builder ({', '.join(BUILDERS)}), a timm NF "
                         "model name, a run directory of nfnets train or a .keras file.")
    return model, None, eval_transform(model_name, model.input.shape[1]), None
