"""keras-hub is optional: a clear error that names the extra."""


def keras_hub():
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError("keras_nfnets' keras-hub classes and presets need keras-hub: "
                          "pip install 'keras-nfnets[kerashub]'.") from error
    return keras_hub


keras_hub()  # every module of this subpackage imports this one first
