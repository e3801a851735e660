"""Plots of summaries: per-layer parameters and MACs, activation memory, and models at a glance."""

from __future__ import annotations

from netprobe.render.figures import figure_bytes, layer_ticks, new_figure


def _working(layers):
    """Rows that own parameters, compute or allocate outputs: the layers every per-layer summary plot shows, so
    position i is the same layer in all of them."""
    busy = (layers["params"] > 0) | (layers["macs"] > 0) | (layers["flops"] > 0) | (layers["activation_bytes"] > 0)
    return layers[busy].reset_index(drop=True)


def layer_costs(layers, title: str, formats=("png",)) -> dict[str, bytes]:
    """Two panels: parameters and MACs per layer (log scale), layers named in execution order."""
    rows = _working(layers)
    fig, (left, right) = new_figure(7, 4.5, panels=2)
    x = range(len(rows))
    left.bar(x, rows["params"].clip(lower=0), width=0.8, color="tab:blue")
    right.bar(x, rows["macs"].clip(lower=0), width=0.8, color="tab:orange")
    for ax, label in ((left, "parameters per layer"), (right, "MACs per layer")):
        ax.set_yscale("symlog", linthresh=1)
        layer_ticks(ax, rows["name"])
        ax.set_xlabel("layer (execution order)")
        ax.set_ylabel(f"{label} (log scale)")
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title)
    return figure_bytes(fig, formats)


def activation_memory(layers, title: str, formats=("png",)) -> dict[str, bytes]:
    """Output activation memory per layer in MiB, the same layers and positions as `layer_costs`."""
    rows = _working(layers)
    fig, ax = new_figure(9, 4.5)
    ax.bar(range(len(rows)), rows["activation_bytes"] / 2**20, width=0.8, color="tab:green")
    layer_ticks(ax, rows["name"])
    # A container's row holds its own operators (U-Net's skip concatenations sit at the root's row, first).
    ax.set_xlabel("layer (execution order; a container's own operators at its row)")
    ax.set_ylabel("output activations (MiB, batch 1, float32)")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    return figure_bytes(fig, formats)


def models_glance(totals, formats=("png",)) -> dict[str, bytes]:
    """Parameters against MACs, one labelled point per model (log-log)."""
    fig, ax = new_figure(7, 5)
    ax.scatter(totals["params"], totals["macs"], color="tab:purple")
    for _, row in totals.iterrows():
        ax.annotate(row["model"], (row["params"], row["macs"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=9)
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short log spans
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("MACs per image at the default input (log scale)")
    ax.set_title("Models at a glance")
    ax.grid(True, which="both", alpha=0.3)
    return figure_bytes(fig, formats)
