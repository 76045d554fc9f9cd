"""Signal Propagation Plots (paper §3, Appendix F): statistics of every residual block at init.

For a batch of unit-Gaussian inputs, at the output of each residual block: the average channel
squared mean ``mean_C(mean_NHW(y)²)``, the average channel variance ``mean_C(var_NHW(y))``, and
the average channel variance at the end of the residual branch (before stochastic depth, the
SkipInit gain and α, i.e. before joining the skip path). The model is evaluated layer by layer,
freeing each activation once its consumers have run, so a 600-layer net never holds more than a
block's worth of activations.
"""

import dataclasses
import math
import os
from typing import List

import numpy as np

from keras_nfnets import graph, names

@dataclasses.dataclass
class SignalPropagation:
    """Per-block statistics of one model, in block order."""

    block_names: List[str]
    avg_sq_mean: np.ndarray
    avg_var: np.ndarray
    residual_avg_var: np.ndarray
    stage_ends: List[int]  # indices (into the block lists) of the last block of each stage
    name: str = ""


def _channel_stats(tensor):
    from keras import ops

    x = ops.cast(tensor, "float32")
    axes = tuple(range(len(x.shape) - 1))
    mean = ops.mean(x, axis=axes)
    var = ops.var(x, axis=axes)
    return float(ops.mean(mean**2)), float(ops.mean(var))


def signal_propagation(model, inputs=None, batch_size=8, image_size=None, seed=0):
    """Signal propagation statistics of ``model`` at its current weights (paper §3).

    Args:
        model: a functional model built by keras_nfnets (any family or baseline).
        inputs: the batch to feed; default a unit-Gaussian batch of ``batch_size`` images of
            ``image_size`` (default: the model's static input size, else 224).
        seed: seed of the Gaussian batch.

    BatchNorm layers use batch statistics (as at the start of training); stochastic depth and
    dropout are off. Returns a :class:`SignalPropagation`.
    """
    import keras

    from keras_nfnets.layers.blocks import SkipInitGain, StochasticDepth

    if inputs is None:
        height, width, channels = model.input.shape[1:]
        shape = (batch_size, image_size or height or 224, image_size or width or 224, channels)
        inputs = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    inputs = np.asarray(inputs, "float32")

    # which tensors to measure: block outputs, and the end of each residual branch
    branch_ends, block_outputs = {}, {}
    for layer in model.layers:
        if not names.is_block_output(layer.name):
            continue
        block_name = layer.name[: -len(names.block_output(""))]
        block_outputs[id(layer.output)] = block_name
        branch = layer.input[1]  # names.block_output: Add([shortcut, α·branch]); back over α, the gain, the drop
        while isinstance(graph.producer(branch), (SkipInitGain, StochasticDepth, keras.layers.Rescaling)):
            branch = graph.producer(branch).input
        branch_ends[id(branch)] = block_name
    if not block_outputs:
        raise ValueError(
            f"Model {model.name!r} has no residual blocks named {names.block_output(names.block('<i>', '<j>'))!r}; "
            "signal_propagation "
            "needs a model built by keras_nfnets (build_nf_model or a public builder)."
        )

    stats, residual = {}, {}

    def measure(layer, args, inbound):
        training = isinstance(layer, keras.layers.BatchNormalization)
        output = layer(args if len(args) > 1 else args[0], training=training)
        key = id(layer.output)
        if key in block_outputs:
            stats[block_outputs[key]] = _channel_stats(output)
        if key in branch_ends:
            residual[branch_ends[key]] = _channel_stats(output)[1]
        return output

    graph.propagate(model, [keras.ops.convert_to_tensor(inputs)], measure, release=True)

    blocks = [block_outputs[id(layer.output)] for layer in model.layers if id(layer.output) in block_outputs]
    stages = [names.parse_block_layer(names.block_output(b))[0] for b in blocks]
    stage_ends = [i for i in range(len(blocks)) if i == len(blocks) - 1 or stages[i + 1] != stages[i]]
    return SignalPropagation(
        block_names=blocks,
        avg_sq_mean=np.array([stats[n][0] for n in blocks]),
        avg_var=np.array([stats[n][1] for n in blocks]),
        residual_avg_var=np.array([residual[n] for n in blocks]),
        stage_ends=stage_ends,
        name=model.name,
    )


PANELS = (  # field, panel title, y-axis label
    ("avg_sq_mean", "Average Channel Squared Mean", "mean over channels of (channel mean)²"),
    ("avg_var", "Average Channel Variance", "mean over channels of channel variance"),
    ("residual_avg_var", "Residual Average Channel Variance", "channel variance at the end of the branch"),
)
STAGE_END_LABEL = "last block of a stage (the next block is a transition)"


def require_matplotlib():
    """Plots need matplotlib (the ``plots`` extra): checked before any slow measurement."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError('Signal Propagation Plots need matplotlib: pip install "keras-nfnets[plots]"')


def plot_signal_propagation(results, path=None, labels=None, log_scale=False, colors=None, title=None):
    """The paper's three-panel SPP figure: one line per model, black dots at stage ends; axes
    labelled, the legend (with the dots explained) below the panels, outside the data.

    Args:
        results: a :class:`SignalPropagation` or a list of them (overlaid).
        path: save the figure there (PNG/PDF/SVG by extension; a new file: an existing one is
            refused, never replaced); returns the matplotlib figure.
        labels: legend labels (default: the model names).
        log_scale: semilog y axes (Figure 6).
    """
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(results, SignalPropagation):
        results = [results]
    labels = labels or [r.name for r in results]
    if len(labels) != len(results):
        raise ValueError(f"Got {len(labels)} labels for {len(results)} results.")
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for index, (result, label) in enumerate(zip(results, labels)):
        color = colors[index] if colors else None
        depth = np.arange(1, len(result.block_names) + 1)
        for axis, (field, heading, ylabel) in zip(axes, PANELS):
            values = getattr(result, field)
            axis.plot(depth, values, label=label, color=color, linewidth=1.5)
            axis.scatter(depth[result.stage_ends], values[result.stage_ends], color="black", s=14, zorder=3,
                         label=STAGE_END_LABEL if index == 0 else None)
            axis.set_title(heading)
            axis.set_xlabel("Residual block")
            axis.set_ylabel(ylabel)
            if log_scale:
                axis.set_yscale("log")
    handles, names = axes[0].get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: names[i] == STAGE_END_LABEL)  # models first, the dots last
    handles, names = [handles[i] for i in order], [names[i] for i in order]
    figure.legend(handles, names, loc="lower center", ncol=min(len(names), 4), frameon=False)
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.1, 1, 1))  # room for the legend below the panels
    if path is not None:
        from keras_nfnets._files import write_file_into_place

        write_file_into_place(path, lambda temporary: figure.savefig(temporary, dpi=110, format=_image_format(path)))
    return figure


def _image_format(path):
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    return suffix or "png"


def _resnet600_depths(depth):
    """Per-stage block counts of a bottleneck ResNetV2 with ``depth`` conv layers (600 → [50]*4)."""
    blocks = max(1, round(depth / 12))
    return [blocks] * 4


FIGURES = (1, 2, 6, 7, 8, 9)  # the paper's SPP figures figure() regenerates
FIGURE_DEFAULTS = dict(depth=600, image_size=512, batch_size=8)  # the paper's ResNetV2-600 at 512 px, batch 8


def figure_models(figure, depth=FIGURE_DEFAULTS["depth"]):
    """The models of the paper's SPP figure ``figure`` (1, 2, 6, 7, 8 or 9) as ``(label, config, color)``."""
    from keras_nfnets.models.config import bn_resnetv2_config, nf_resnet_config

    depths = _resnet600_depths(depth)
    name = f"resnetv2_{depth}"
    # SPPs describe the NF recipe itself: no SkipInit (a zero branch gain would hide every branch)
    nf = dict(skipinit=False, stochastic_depth_rate=0.0, drop_rate=0.0)
    bn_relu_conv = bn_resnetv2_config(depths, "bn_relu_conv", name=f"bn_relu_conv_{name}")
    relu_bn_conv = bn_resnetv2_config(depths, "relu_bn_conv", name=f"relu_bn_conv_{name}")
    he_nf = nf_resnet_config(depths, name=f"nf_he_{name}", conv_type="plain", alpha=1.0, gamma=1.0, **nf)
    ws_nf = nf_resnet_config(depths, name=f"nf_ws_{name}", alpha=1.0, **nf)
    figures = {
        1: [("BN-ReLU-Conv", bn_relu_conv, "tab:blue"), ("ReLU-BN-Conv", relu_bn_conv, "tab:red")],
        2: [("BN (ReLU-BN-Conv)", relu_bn_conv, "tab:red"), ("NF, He init", he_nf, "tab:green"),
            ("NF, Scaled WS", ws_nf, "tab:cyan")],
        6: [("NF, He init, no normalization", he_nf, "tab:green")],
        7: [("BN, linear", bn_relu_conv.replace(activation="identity", stem_pool=False, name=f"bn_linear_{name}"),
             "tab:blue"),
            ("NF, linear", he_nf.replace(activation="identity", stem_pool=False, name=f"nf_linear_{name}"),
             "tab:green")],
        8: [("NF, Scaled WS, γ = √2", ws_nf.replace(gamma=math.sqrt(2.0), name=f"nf_ws_gain_sqrt2_{name}"),
             "tab:orange"), ("NF, Scaled WS, correct γ", ws_nf, "tab:cyan")],
        9: [("NF, unmodified SE", ws_nf.replace(attention="se", attention_gain=1.0, name=f"nf_se_plain_{name}"),
             "tab:purple"),
            ("NF, SE ×2", ws_nf.replace(attention="se", attention_gain=2.0, name=f"nf_se_x2_{name}"), "tab:cyan")],
    }
    assert tuple(figures) == FIGURES
    if figure not in figures:
        raise ValueError(f"The paper's SPP figures are {sorted(figures)}; received figure={figure!r}.")
    return figures[figure]


def figure(number, path=None, depth=FIGURE_DEFAULTS["depth"], image_size=FIGURE_DEFAULTS["image_size"],
           batch_size=FIGURE_DEFAULTS["batch_size"], seed=0):
    """Regenerate the paper's SPP Figure ``number``; returns the :class:`SignalPropagation` list."""
    import keras

    from keras_nfnets.models.builder import build_nf_model

    if path is not None:
        require_matplotlib()
    results, labels, colors = [], [], []
    for label, config, color in figure_models(number, depth):
        keras.utils.set_random_seed(seed)
        model = build_nf_model(config, include_top=False, input_shape=(image_size, image_size, 3))
        results.append(signal_propagation(model, batch_size=batch_size, image_size=image_size, seed=seed))
        labels.append(label)
        colors.append(color)
        del model
        keras.backend.clear_session()
    if path is not None:
        plot_signal_propagation(results, path, labels=labels, colors=colors, log_scale=number == 6,
                                title=f"Figure {number}: ResNetV2-{depth}, {image_size}px, batch {batch_size}")
    return results
