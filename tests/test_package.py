"""The package's public names (keras_nfnets/__init__.py and its lazy exports)."""

import pytest

import keras_nfnets


def test_lazy_names_resolve_to_the_modules_that_define_them():
    from keras_nfnets.applications import BUILDERS

    for name in keras_nfnets.__all__:
        assert getattr(keras_nfnets, name) is not None, name
    assert keras_nfnets.NFNetF0 is BUILDERS["NFNetF0"] and set(BUILDERS) <= set(keras_nfnets.__all__)
    with pytest.raises(AttributeError, match="no attribute 'NFNetF9'"):
        keras_nfnets.NFNetF9  # noqa: B018


def test_public_api_is_reachable():
    for name in ("NFRegNetB1", "NFNetF7", "NFResNet288", "ScaledWSConv2D", "estimate_gamma", "preprocess_input",
                 "decode_predictions", "build_nf_model", "count_flops", "NFConfig"):
        assert hasattr(keras_nfnets, name), name
