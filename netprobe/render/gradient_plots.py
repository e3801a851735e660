"""Plots of gradient profiles, layer responses and shattered-gradient correlations.

Each function returns {format: bytes} (png and/or svg, via `figure_bytes`, free of timestamps so the same
table gives byte-identical files); the caller writes them atomically, after every output is ready. One line
per (model, variant), in table order.
"""

from __future__ import annotations

from netprobe.render.figures import figure_bytes, layer_ticks, merged_order, new_figure

_KEYS = ("model", "variant")


def _series(table):
    """(label, rows) per model/variant present in the table, in table order."""
    keys = [k for k in _KEYS if k in table]
    if not keys:
        return [("", table)]
    return [(" ".join(str(v) for v in (key if isinstance(key, tuple) else (key,))), rows)
            for key, rows in table.groupby(keys, sort=False)]


def _figure(panels: int = 1):
    from matplotlib.ticker import MaxNLocator

    fig, axes = new_figure(8, 4.5, panels=panels)
    for ax in (axes if panels > 1 else [axes]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes


def _positions(ax, table, what: str):
    """x of each series' rows and the axis label. One model (and its twins): the layers named, in one order for
    all series, so a layer sits at the same position in every line. Several models (a depth sweep): the index
    of the layer among its model's, as integers."""
    series = _series(table)
    if ("model" in table and table["model"].nunique() > 1) or "layer" not in table:
        ax.set_xlabel(f"{what} (forward order, 1 = first)")
        return [rows["depth"].to_numpy() for _, rows in series]
    order = merged_order([rows["layer"].tolist() for _, rows in series])
    layer_ticks(ax, order)
    ax.set_xlabel(f"{what} (forward order)")
    index = {name: i for i, name in enumerate(order)}
    return [rows["layer"].map(index).to_numpy() for _, rows in series]


def plot_profile(table, title: str, formats=("png",)) -> dict[str, bytes]:
    """gradient L2 norm (log scale) against layer, one line per variant, mean +- std over batches shaded."""
    fig, ax = _figure()
    for x, (label, rows) in zip(_positions(ax, table, "weighted layer"), _series(table)):
        mean, std = rows["grad_norm"].to_numpy(), rows["grad_norm_std"].to_numpy()
        line, = ax.plot(x, mean, marker=".", label=label or None)
        low = (mean - std).clip(min=mean * 1e-3)  # keep the band positive on the log axis
        ax.fill_between(x, low, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_yscale("log")
    ax.set_ylabel("L2 norm of d loss / d weight (log scale)")
    ax.set_title(title)
    if _series(table)[0][0]:
        ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return figure_bytes(fig, formats)


def plot_responses(table, title: str, formats=("png",)) -> dict[str, bytes]:
    """std of each BN layer's output against the layer (He et al. Fig. 7), one line per variant."""
    fig, ax = _figure()
    for x, (label, rows) in zip(_positions(ax, table, "BatchNorm layer"), _series(table)):
        ax.plot(x, rows["response_std"], marker=".", label=label or None)
    ax.set_ylabel("std of the BN output (activation units)")
    ax.set_title(title)
    if _series(table)[0][0]:
        ax.legend()
    ax.grid(True, alpha=0.3)
    return figure_bytes(fig, formats)


def plot_shattered(table, title: str, formats=("png",)) -> dict[str, bytes]:
    """autocorrelation of input gradients against lag; with several models, lag-1 correlation against depth too."""
    models = table["model"].unique() if "model" in table else []
    fig, axes = _figure(2 if len(models) > 1 else 1)
    ax = axes[0] if len(models) > 1 else axes
    for label, rows in _series(table):
        mean, std = rows["correlation"].to_numpy(), rows["correlation_std"].to_numpy()
        line, = ax.plot(rows["lag"], mean, marker=".", label=label or None)
        ax.fill_between(rows["lag"], mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("lag (points along the line; the CSV's distance column gives L2 input units)")
    ax.set_ylabel("correlation of input gradients (Pearson)")
    ax.set_title(title)
    if _series(table)[0][0]:
        ax.legend()
    ax.grid(True, alpha=0.3)
    if len(models) > 1:
        ax = axes[1]
        first = table[table["lag"] == 1]
        for variant, rows in first.groupby("variant", sort=False):
            depths = rows["model"].str.extract(r"(\d+)$")[0].astype(int)
            ax.errorbar(depths, rows["correlation"], yerr=rows["correlation_std"], marker="o", capsize=3,
                        label=variant)
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_xlabel("network depth (weighted layers)")
        ax.set_ylabel("lag-1 correlation of input gradients")
        ax.set_title("neighbouring points, by depth")
        ax.legend()
        ax.grid(True, alpha=0.3)
    return figure_bytes(fig, formats)
