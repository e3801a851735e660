"""Plots of a depth study: training curves in He et al.'s Fig. 6 layout (plain left, residual right, one line
per depth, shared axes) and final training loss against depth, one line per variant.

Each function returns {format: bytes} via `figure_bytes` (no timestamps, so the same tables give identical
files); the caller writes them.
"""

from __future__ import annotations

from netprobe.render.figures import figure_bytes, new_figure


def plot_curves(curves, title: str, formats=("png",)) -> dict[str, bytes]:
    """Training loss (solid) and test loss (dashed) against SGD steps; one panel per variant, same axes.

    The y axis ends just above the highest training loss: early test losses (BatchNorm's running statistics
    still settling) can be orders of magnitude higher and are clipped rather than flattening the curves."""
    variants = list(dict.fromkeys(curves["variant"]))
    fig, axes = new_figure(6, 4.5, panels=max(2, len(variants)))
    depths = sorted(set(curves["depth"]))
    colours = {d: f"C{i}" for i, d in enumerate(depths)}
    top = float(curves["train_loss"].max()) * 1.1
    for ax, variant in zip(axes, variants):
        for depth, rows in curves[curves["variant"] == variant].groupby("depth"):
            ax.plot(rows["step"], rows["train_loss"], color=colours[depth], linewidth=1.5,
                    label=f"{variant}-{depth} train")
            ax.plot(rows["step"], rows["test_loss"], color=colours[depth], linewidth=0.8, linestyle="--",
                    label=f"{variant}-{depth} test")
        ax.set_title(variant, fontsize=10)
        ax.set_xlabel("SGD step")
        ax.set_ylim(0, top)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("cross-entropy loss")
    for ax in axes[len(variants):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    return figure_bytes(fig, formats)


def plot_final(final, title: str, formats=("png",)) -> dict[str, bytes]:
    """Final training loss against depth, one line per variant (the degradation problem in one picture)."""
    fig, ax = new_figure(6, 4.5)
    for variant, rows in final.groupby("variant", sort=False):
        rows = rows.sort_values("depth")
        ax.plot(rows["depth"], rows["train_loss"], marker="o", label=variant)
    ax.set_xticks(sorted(set(final["depth"])))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel("final training loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return figure_bytes(fig, formats)
