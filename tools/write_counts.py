"""Print the rows of keras_nfnets/models/counts.py anew: every builder's parameters and FLOPs
(1000-class head, test size) from a shapes-only build.

usage: python tools/write_counts.py > rows.txt"""


def compute_counts(builder_name):
    """``(parameters, FLOPs)`` of the builder at its test size; variables are never initialised."""
    import keras

    from keras_nfnets.applications import BUILDERS
    from keras_nfnets.models.summary import count_flops, count_params

    with keras.StatelessScope(initialize_variables=False):
        model = BUILDERS[builder_name]()
        counts = count_params(model), count_flops(model)
    keras.backend.clear_session()
    return counts


if __name__ == "__main__":
    from keras_nfnets.models.variants import VARIANTS

    for name in VARIANTS:
        print(f'    "{name}": {compute_counts(name)},', flush=True)
