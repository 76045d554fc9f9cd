"""keras-hub presets of NF models: :func:`to_keras_hub` turns any keras_nfnets model (a builder
with ``weights="imagenet"``, a timm checkpoint, a trained run, a ``.keras`` file or a model in
memory) into an :class:`NFNetImageClassifier` with its checkpoint's preprocessor, and
:func:`save_preset` writes it as a complete keras-hub preset (config.json, model.weights.h5,
task.json, task.weights.h5, preprocessor.json, image_converter.json, metadata.json)."""

import json
import os
import shutil

from keras_nfnets import names
from keras_nfnets.kerashub import _require  # noqa: F401
from keras_nfnets.kerashub.nfnet_backbone import NFNetBackbone, architecture_from_dict
from keras_nfnets.kerashub.nfnet_image_classifier import NFNetImageClassifier
from keras_nfnets.kerashub.nfnet_image_classifier_preprocessor import NFNetImageClassifierPreprocessor
from keras_nfnets.kerashub.nfnet_image_converter import NFNetImageConverter, converter_arguments
from keras_nfnets.models.model import NFModel

OUR_BACKBONE = "keras_nfnets>NFNetBackbone"  # the registered name config.json carries


def _source(model_or_name, weights, checkpoint, architecture, eval_transform):
    """``(keras_nfnets model, EvalTransform, description)``: the model records its architecture
    and checkpoint; ``architecture=`` names it for a model that does not (a plain ``keras.Model``
    of an NF network's layers), and must equal what a keras_nfnets model records."""
    import keras

    from keras_nfnets.model_sources import resolve_model
    from keras_nfnets.preprocessing import eval_transform as default_transform

    if isinstance(model_or_name, keras.Model):
        model, description = model_or_name, f"the keras.Model {model_or_name.name!r}"
    elif isinstance(model_or_name, str):
        model, _, transform, _ = resolve_model(model_or_name, weights=weights, checkpoint=checkpoint)
        description, eval_transform = repr(model_or_name), eval_transform or transform
    else:
        raise TypeError("save_preset takes a keras_nfnets model, a builder or timm name, a run directory or a .keras "
                        f"file; received {type(model_or_name).__name__}.")
    if architecture is not None:
        architecture = architecture_from_dict(architecture)
        recorded = getattr(model, "architecture", None)
        if recorded is not None and not recorded.same_architecture(architecture):
            raise ValueError(f"{description} is {recorded.name!r}, not the `architecture=` {architecture.name!r} given; "
                             "leave `architecture=` out: keras_nfnets models record their own.")
        if recorded is None:
            model = _as_nf_model(model, architecture, description)
    elif not isinstance(model, NFModel):
        raise ValueError(f"Which NF architecture is {description}? It is a {type(model).__name__}, not a keras_nfnets "
                         "model, so it records none: pass `architecture=` (an NFConfig, e.g. "
                         "keras_nfnets.get_config('NFNetF0')), or build it with keras_nfnets.")
    if eval_transform is None:
        eval_transform = default_transform(model)
    return model, eval_transform, description


def _as_nf_model(model, architecture, description):
    """A plain ``keras.Model`` of an NF network's layers as the :class:`NFModel` of
    ``architecture``: the same graph (shared layers), after checking that ``architecture``
    builds exactly its layers and weight shapes (else an error naming the first difference)."""
    from keras_nfnets.models.builder import build_nf_model

    reference = build_nf_model(architecture, include_top=False)
    expected = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in reference.layers if layer.weights}
    found = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in model.layers
             if layer.weights and layer.name != names.CLASSIFIER}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        different = sorted(name for name in set(expected) & set(found) if expected[name] != found[name])
        extra = sorted(set(found) - set(expected))
        what = (f"has no layer {missing[0]!r}" if missing else f"has weights of other shapes in {different[0]!r}"
                if different else f"has layers the architecture does not build: {extra[:3]}")
        raise ValueError(f"{description} {what}, which does not match the architecture {architecture.name!r}: pass "
                         "the right `architecture=`.")
    return NFModel(model.input, model.output, name=model.name, architecture=architecture)


def to_keras_hub(model_or_name, *, weights="imagenet", checkpoint=None, architecture=None, eval_transform=None,
                 num_classes=None):
    """The keras-hub twin of a keras_nfnets model: an :class:`NFNetImageClassifier` (with its
    checkpoint's :class:`NFNetImageClassifierPreprocessor`) whose logits equal the model's. Its
    backbone is the model's own layers (:meth:`NFNetBackbone.from_model`: shared, not copied);
    the head takes the model's classifier.

    Args:
        model_or_name: a builder name (``"NFNetF0"``; ``weights``: ``"imagenet"``, ``None`` or a
            ``.weights.h5`` file), a timm name (``"dm_nfnet_f0"``; ``checkpoint``: a local file,
            default the Hugging Face Hub), a run directory of ``nfnets train``, a ``.keras``
            file, or a keras_nfnets model (which records its architecture and checkpoint).
        architecture: the :class:`~keras_nfnets.NFConfig` of a plain ``keras.Model`` that does
            not record one.
        eval_transform: the :class:`~keras_nfnets.EvalTransform` for the preprocessor (default:
            the checkpoint's or the trained run's).
        num_classes: a model with a head keeps it (``num_classes`` must equal its classes); a
            model without one (``include_top=False``) gets a new ``num_classes`` head.
    """
    if isinstance(model_or_name, NFNetImageClassifier):
        return model_or_name
    model, transform, description = _source(model_or_name, weights, checkpoint, architecture, eval_transform)
    has_head = names.has_classifier(model)
    if has_head:
        classes = int(model.get_layer(names.CLASSIFIER).units)
        if num_classes is not None and int(num_classes) != classes:
            raise ValueError(f"num_classes={num_classes} does not fit the kept {classes}-class head of {description}. "
                             "Omit num_classes to keep it; for a new head load the preset with keras-hub's "
                             f"from_preset(..., num_classes={num_classes}).")
    elif num_classes is None:
        raise ValueError(f"{description} has no classifier (include_top=False): pass num_classes= for a new head.")
    backbone = NFNetBackbone.from_model(model)  # the model's own layers and weights
    preprocessor = NFNetImageClassifierPreprocessor(image_converter=NFNetImageConverter(**converter_arguments(transform)))
    task = NFNetImageClassifier(backbone=backbone, num_classes=classes if has_head else int(num_classes),
                                preprocessor=preprocessor, dropout=model.architecture.drop_rate)
    if has_head:
        task.output_dense.set_weights(model.get_layer(names.CLASSIFIER).get_weights())
    return task


# What keras-hub's save_to_preset writes for an image classifier; presets written before
# keras_nfnets listed its files in metadata.json hold only these.
PRESET_FILES = ("config.json", "metadata.json", "model.weights.h5", "task.json", "task.weights.h5",
                "preprocessor.json", "image_converter.json", "assets")


def _user_entries(directory):
    """The top-level entries of ``directory`` that are not part of a preset (neither listed by our
    metadata.json nor a preset file's name): the user's own, e.g. a model card. Kept by every write."""
    if not os.path.isdir(directory):
        return []
    owned = {entry.split(os.sep)[0] for entry in (_owned_files(directory) or ())}
    return sorted(name for name in os.listdir(directory) if name not in owned and name not in PRESET_FILES)


def model_card(task, directory):
    """A short README.md for a preset: architecture, parameters, the checkpoint and its sizes,
    the weights' license, how to load it."""
    from keras_nfnets import __version__

    backbone, checkpoint = task.backbone, task.backbone.checkpoint
    lines = [f"# {backbone.architecture.name}: a keras-hub preset", "",
             f"Written by keras_nfnets {__version__}.", "",
             f"- Architecture: `{backbone.architecture.name}`, {backbone.count_params():,} backbone parameters "
             f"({task.count_params():,} with the classifier).",
             f"- Input: {backbone.input_shape[1]}×{backbone.input_shape[2]} RGB; the preprocessor applies the "
             "evaluation transform."]
    if checkpoint is None:
        lines.append("- Weights: not a published checkpoint (trained or initialised by the preset's author); their "
                     "license is the author's to state here.")
    else:
        lines += [f"- Weights: timm's `{checkpoint.tag}`: ImageNet-1k top-1 {checkpoint.top1:.2f}% at "
                  f"{checkpoint.test_size} px (timm's figure), trained at {checkpoint.train_size} px.",
                  f"- License of the weights: Apache-2.0 (the license of `timm/{checkpoint.tag}` on the Hugging "
                  "Face Hub; DeepMind's NFNet-F weights are Apache-2.0 too)."]
    lines += ["", "```python", "import keras_hub, keras_nfnets",
              f"classifier = keras_hub.models.ImageClassifier.from_preset({os.path.basename(directory)!r})", "```", ""]
    return "\n".join(lines)


def _owned_files(directory):
    """The entries of the NF preset in ``directory`` that keras_nfnets wrote (its metadata lists
    them), or ``None`` when no preset of ours is there."""
    try:
        with open(os.path.join(directory, "metadata.json")) as file:
            metadata = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(metadata, dict) or "keras_nfnets_version" not in metadata:
        return None
    listed = metadata.get("keras_nfnets_files")
    return set(listed) if isinstance(listed, list) else set(PRESET_FILES)


def _check_directory(directory, overwrite, source=None):
    """Refusals before any write: the source itself or a folder holding it, a run directory, a
    filesystem root or the home directory; a non-empty directory unless ``overwrite``, and with
    it anything but an NF preset this package wrote, holding only its own files."""
    from keras_nfnets import _files
    from keras_nfnets.training.run_dir import is_run_directory

    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{directory!r} is a file; a preset is a directory.")
    protected = _files.protected_directory(directory) if os.path.exists(directory) else None
    if protected:
        raise ValueError(f"{directory!r} is {protected}; a preset goes into a folder of its own: choose a new one.")
    if isinstance(source, str) and os.path.exists(source) and _files.contains(directory, source):
        raise ValueError(f"{directory!r} {'is' if _files.contains(source, directory) else 'holds'} the source "
                         f"{source!r}; a preset never replaces what it is made from: choose a new directory.")
    if is_run_directory(directory):
        raise ValueError(f"{directory!r} is a training run's directory; a preset never replaces a run: choose a new "
                         "directory.")
    if not os.path.isdir(directory) or not os.listdir(directory):
        return
    user = set(_user_entries(directory))
    if not [name for name in os.listdir(directory) if name not in user]:
        return  # only the user's own files (a model card): the preset joins them
    config_path = os.path.join(directory, "config.json")
    if os.path.isfile(config_path):
        try:
            with open(config_path) as file:
                registered = json.load(file).get("registered_name")
        except (OSError, ValueError, AttributeError):
            registered = None
        if registered != OUR_BACKBONE:
            raise ValueError(f"{directory!r} holds a preset written by another model family ({registered or 'unknown'}); "
                             "keras_nfnets does not overwrite it: choose another directory.")
    owned = _owned_files(directory)
    if owned is None:
        raise ValueError(f"{directory!r} holds preset files that keras_nfnets did not write (no metadata.json of "
                         "ours): choose a new directory, or move them out.")
    if not overwrite:
        raise ValueError(f"{directory!r} holds an NF preset: choose a new directory, or pass `overwrite=True` to "
                         "replace it (files that are not part of a preset, such as a README.md, are kept).")
    foreign = [entry for entry in _files.entries(directory) if entry not in owned and entry.split(os.sep)[0] not in user]
    if foreign:
        raise ValueError(f"{directory!r} holds files that are not part of its NF preset ({', '.join(foreign[:3])}"
                         f"{' …' if len(foreign) > 3 else ''}); `overwrite` replaces only a preset's own files: move "
                         "them out, or choose a new directory.")


def save_preset(model_or_name, directory, *, weights="imagenet", checkpoint=None, architecture=None,
                eval_transform=None, num_classes=None, overwrite=False, write_model_card=True):
    """Write a complete keras-hub preset of ``model_or_name`` (see :func:`to_keras_hub` for the
    arguments) to ``directory``; returns the directory. keras-hub alone loads it after
    ``import keras_nfnets``: ``keras_hub.models.ImageClassifier.from_preset(directory)``, or
    ``from_preset(directory, num_classes=K)`` for a new head. The preset is written next to
    ``directory`` and moved into place, so a failure leaves the old one (or none). ``overwrite``
    replaces only an NF preset that keras_nfnets wrote, holding nothing but its own files (its
    metadata.json lists them); the folder keeps its permissions, and files that are not part of a
    preset (a model card, ``README.md``) stay, untouched, with or without ``overwrite``.
    ``write_model_card``: where the folder has no README.md of the user's, write a short one
    (:func:`model_card`), part of the preset. Refused before any work: the source or a folder
    holding it, a run directory, a filesystem root or the home directory."""
    from keras_nfnets import _files

    directory = os.fspath(directory)
    _check_directory(directory, overwrite, model_or_name)
    task = to_keras_hub(model_or_name, weights=weights, checkpoint=checkpoint, architecture=architecture,
                        eval_transform=eval_transform, num_classes=num_classes)
    staging = _files.staging_directory(directory)
    try:
        task.save_to_preset(staging)
        keep = _user_entries(directory)
        if write_model_card and "README.md" not in keep:
            with open(os.path.join(staging, "README.md"), "w") as file:
                file.write(model_card(task, directory))
        metadata_path = os.path.join(staging, "metadata.json")
        with open(metadata_path) as file:
            metadata = json.load(file)
        from keras_nfnets import __version__

        checkpoint = task.backbone.checkpoint
        metadata.update(keras_nfnets_version=__version__, architecture=task.backbone.architecture.name,
                        checkpoint=None if checkpoint is None else checkpoint.tag,
                        source=model_or_name if isinstance(model_or_name, str) else model_or_name.name,
                        keras_nfnets_files=sorted(set(_files.entries(staging)) | {"metadata.json"}))
        with open(metadata_path, "w") as file:
            json.dump(metadata, file, indent=4)
        _check_directory(directory, overwrite, model_or_name)  # still true after the minutes of building
        _files.move_directory_into_place(staging, directory, _owned_files(directory) if os.path.isdir(directory) else None,
                                         keep=_user_entries(directory))
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return directory
