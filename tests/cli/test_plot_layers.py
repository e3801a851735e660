"""Per-layer plots (issue 18): layers named at integer positions, one indexing, input sizes, a colour bar."""

import numpy as np
import pandas as pd
import pytest

from netprobe.analysis.counting.summary import summary
from netprobe.analysis.fields.check import EffectiveField
from netprobe.analysis.fields.receptive_field import receptive_field
from netprobe.render import figures, gradient_plots, rf_plots, summary_plots
from netprobe.zoo.loading import load_model


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions would render, left open for inspection."""
    figs = []

    def keep(fig, formats=("png",)):
        figs.append(fig)
        return {}

    for module in (gradient_plots, rf_plots, summary_plots):
        monkeypatch.setattr(module, "figure_bytes", keep)
    yield figs
    import matplotlib.pyplot as plt

    for fig in figs:
        plt.close(fig)


def _ticks(ax):
    return list(ax.get_xticks()), [t.get_text() for t in ax.get_xticklabels()]


def test_merged_order_keeps_each_series_order():
    # the plain twin of an option-B ResNet lacks the projection: it slots in after its predecessor
    residual = ["conv1", "layer1.0.conv1", "layer1.0.downsample.0", "fc"]
    plain = ["conv1", "layer1.0.conv1", "fc"]
    assert figures.merged_order([plain, residual]) == residual


def test_alexnet_costs_and_activations_name_the_same_layers(drawn):
    layers = summary(load_model("alexnet").model, (1, 3, 224, 224)).layers
    summary_plots.layer_costs(layers, "alexnet")
    summary_plots.activation_memory(layers, "alexnet")
    params, macs = drawn[0].axes
    activations = drawn[1].axes[0]
    positions, labels = _ticks(params)
    assert positions == list(range(len(positions)))  # integers, one per layer: no fractional ticks
    # torchvision's layout: features.0 is the 11x11 conv, classifier.6 the last Linear (1000 classes)
    assert labels[0] == "features.0" and labels[-1] == "classifier.6"
    assert "features.3" in labels and "classifier.1" in labels  # the second conv, the first Linear
    assert _ticks(macs) == _ticks(activations) == (positions, labels)
    assert all(t.get_rotation() == 90 for t in params.get_xticklabels())


def test_long_layer_lists_label_every_kth_at_integer_positions(drawn):
    layers = pd.DataFrame({"name": [f"block{i}" for i in range(100)], "params": 1, "macs": 1, "flops": 1,
                           "activation_bytes": 4})
    summary_plots.activation_memory(layers, "many")
    positions, labels = _ticks(drawn[0].axes[0])
    assert positions == list(range(0, 100, 3)) and labels == [f"block{i}" for i in range(0, 100, 3)]


def test_gradient_profile_puts_a_layer_at_one_position_in_every_line(drawn):
    residual = ["conv1", "layer1.0.conv1", "layer1.0.downsample.0", "fc"]
    plain = ["conv1", "layer1.0.conv1", "fc"]
    table = pd.DataFrame({
        "variant": ["residual"] * 4 + ["plain"] * 3,
        "depth": [1, 2, 3, 4, 1, 2, 3],
        "layer": residual + plain,
        "grad_norm": [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 4.0],
        "grad_norm_std": [0.0] * 7,
    })
    gradient_plots.plot_profile(table, "twins")
    ax = drawn[0].axes[0]
    assert _ticks(ax) == ([0, 1, 2, 3], residual)
    lines = {line.get_label(): line.get_xdata().tolist() for line in ax.get_lines()}
    assert lines == {"residual": [0, 1, 2, 3], "plain": [0, 1, 3]}  # fc at 3 in both


def test_responses_use_the_same_naming(drawn):
    table = pd.DataFrame({"variant": ["residual"] * 2, "depth": [1, 2], "layer": ["bn1", "layer1.0.bn1"],
                          "response_std": [1.0, 0.5]})
    gradient_plots.plot_responses(table, "responses")
    assert _ticks(drawn[0].axes[0]) == ([0, 1], ["bn1", "layer1.0.bn1"])


def test_rf_by_depth_says_each_models_input_size(drawn):
    tables = {"lenet5": receptive_field(load_model("lenet5").model, (1, 1, 32, 32), name="lenet5"),
              "resnet20": receptive_field(load_model("resnet20").model, (1, 3, 32, 32), name="resnet20")}
    rf_plots.rf_by_depth(tables, inputs={"lenet5": (1, 32, 32), "resnet20": (1, 3, 32, 32)})
    ax = drawn[0].axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["lenet5, input 1x32x32", "resnet20, input 3x32x32"]
    assert all(float(p).is_integer() for p in ax.get_xticks())


def test_rf_by_depth_of_one_model_names_its_layers(drawn):
    table = receptive_field(load_model("lenet5").model, (1, 1, 32, 32), name="lenet5")
    rf_plots.rf_by_depth({"lenet5": table})
    ax = drawn[0].axes[0]
    # LeNet-5's spatial leaves: C1 5x5 conv, tanh, S2 2x2/2 pool, C3 5x5 conv, tanh, S4 2x2/2 pool
    assert _ticks(ax) == (list(range(6)), [f"features.{i}" for i in range(6)])
    # r by hand: 5, 5, 5 + 1 = 6, 6 + 4 x 2 = 14, 14, 14 + 1 x 2 = 16
    assert ax.get_lines()[0].get_ydata().tolist() == [5, 5, 6, 14, 14, 16]


def test_effective_heatmap_has_a_colour_bar(drawn):
    heat = np.full((5, 5), 1 / 25)
    field = EffectiveField("toy", "conv", (2, 2), heat, (1.4, 1.4), ((0, 4), (0, 4)), (5, 5), 0.96)
    rf_plots.erf_heatmaps([field, field])
    fig = drawn[0]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(fig.axes) == 4 and len(bars) == 2
    assert bars[0].get_ylabel() == "share of mean |d unit / d input|"
