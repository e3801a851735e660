"""Plots of a lesion study: accuracy after deleting each block, accuracy against the number of blocks deleted
at once, and each block's residual ratio and output variance. Residual and plain share the axes.

Each function returns {format: bytes} via `figure_bytes` (no timestamps, so the same tables give identical
files); the caller writes them.
"""

from __future__ import annotations

from netprobe.render.figures import figure_bytes, new_figure


def _variants(table):
    """(variant label, rows) in table order; one unnamed series for a table without a variant column."""
    if "variant" not in table:
        return [("", table)]
    return list(table.groupby("variant", sort=False))


def _references(ax, summary):
    """Dashed lines at each variant's intact accuracy, dotted at chance."""
    for _, row in summary.iterrows():
        ax.axhline(row["intact_accuracy"], linestyle="--", linewidth=0.8, color="grey")
        ax.text(0.0, row["intact_accuracy"], f" {row['variant']} intact", fontsize=7, va="bottom",
                transform=ax.get_yaxis_transform())
    chance = float(summary["chance"].iloc[0])
    ax.axhline(chance, linestyle=":", linewidth=0.8, color="black")
    ax.text(0.0, chance, " chance", fontsize=7, va="bottom", transform=ax.get_yaxis_transform())


def plot_single(single, summary, title: str, formats=("png",)) -> dict[str, bytes]:
    """Test accuracy after deleting each block alone, by block position; downsampling blocks as open markers."""
    fig, ax = new_figure(9, 4.5)
    for label, rows in _variants(single):
        line, = ax.plot(rows["position"], rows["accuracy"], marker="o", linewidth=1, label=label or None)
        down = rows[rows["downsampling"]]
        ax.plot(down["position"], down["accuracy"], linestyle="none", marker="o", markersize=10,
                markerfacecolor="none", color=line.get_color())
    _references(ax, summary)
    names = single.drop_duplicates("position").sort_values("position")
    ax.set_xticks(names["position"], names["block"], rotation=60, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("deleted block (open ring: downsampling, its shortcut kept)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=9)
    if _variants(single)[0][0]:
        ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return figure_bytes(fig, formats)


def plot_curve(curve, summary, title: str, formats=("png",)) -> dict[str, bytes]:
    """Mean test accuracy (min to max shaded) against the number of blocks deleted at once (Veit et al. Fig. 4)."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = new_figure(8, 4.5)
    for label, rows in _variants(curve):
        line, = ax.plot(rows["deleted"], rows["accuracy_mean"], marker=".", label=label or None)
        ax.fill_between(rows["deleted"], rows["accuracy_min"], rows["accuracy_max"], color=line.get_color(),
                        alpha=0.2, linewidth=0)
    _references(ax, summary)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("blocks deleted at once (random sets of blocks that keep the shape)")
    ax.set_ylabel("test accuracy (mean; min to max shaded)")
    ax.set_title(title, fontsize=9)
    if _variants(curve)[0][0]:
        ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return figure_bytes(fig, formats)


def plot_blocks(blocks, title: str, formats=("png",)) -> dict[str, bytes]:
    """Left: ||F(x)|| / ||shortcut(x)|| per residual block, at the weights and at initialisation. Right: the
    variance of each block's output (log scale), at the weights and at initialisation, every variant."""
    fig, (left, right) = new_figure(6, 4.5, panels=2)
    for label, rows in _variants(blocks):
        tag = f"{label} " if label else ""
        if rows["ratio"].notna().any():
            line, = left.plot(rows["position"], rows["ratio"], marker="o", label=f"{tag}at the weights")
            left.plot(rows["position"], rows["ratio_init"], marker="o", linestyle="--", color=line.get_color(),
                      markerfacecolor="none", label=f"{tag}at initialisation")
        line, = right.plot(rows["position"], rows["output_var"], marker="o", label=f"{tag}at the weights")
        right.plot(rows["position"], rows["output_var_init"], marker="o", linestyle="--", color=line.get_color(),
                   markerfacecolor="none", label=f"{tag}at initialisation")
    names = blocks.drop_duplicates("position").sort_values("position")
    for ax in (left, right):
        ax.set_xticks(names["position"], names["block"], rotation=60, fontsize=7)
        ax.set_xlabel("block")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    left.set_ylabel("||F(x)|| / ||shortcut(x)|| (0: the block is the identity)")
    right.set_yscale("log")
    right.set_ylabel("variance of the block's output (log scale)")
    fig.suptitle(title, fontsize=9)
    return figure_bytes(fig, formats)
