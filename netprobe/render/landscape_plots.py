"""Plots of loss surfaces: contours with Li et al.'s evenly spaced levels, 3-D surfaces and 1-D curves.

Every function takes [(label, table), ...] (one panel or line per surface) and returns {format: bytes}
through `figure_bytes`, so the same tables give byte-identical files. Panels share their colour levels and
z range, so side-by-side surfaces compare at a glance. Non-finite losses are left as gaps.
"""

from __future__ import annotations

import numpy as np

from netprobe.render.figures import figure_bytes, new_figure

# Li et al.'s plot_2D.py draws contour lines at np.arange(0.1, 10, 0.5): evenly spaced, capped at 10 so the
# explosion far from the minimum does not squeeze the interesting levels together.
LEVEL_CAP = 10.0
LEVEL_STEP = 0.5
MIN_LEVELS = 10


def contour_levels(tables) -> np.ndarray:
    """Evenly spaced loss levels shared by all `tables`, at round values: Li et al.'s 0.5 apart up to 10 above
    the lowest loss, about 10 levels at a round step when the losses span less than 5."""
    from matplotlib.ticker import MaxNLocator

    losses = np.concatenate([t["loss"].to_numpy(dtype=float) for t in tables])
    losses = losses[np.isfinite(losses)]
    if losses.size == 0:
        return np.array([0.0, 1.0])
    lo = losses.min()
    hi = min(losses.max(), lo + LEVEL_CAP)
    if hi - lo <= 0:
        return np.array([lo, lo + 1.0])
    if hi - lo < LEVEL_STEP * MIN_LEVELS:
        # Round steps (1, 2, 2.5, 5 x 10^k) from at or below the lowest loss, so the colour bar reads easily.
        return MaxNLocator(MIN_LEVELS, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    start = np.floor(lo / LEVEL_STEP) * LEVEL_STEP
    return start + LEVEL_STEP * np.arange(int(np.floor((hi - start) / LEVEL_STEP)) + 1)


def _grid(table):
    from netprobe.analysis.surfaces.roughness import as_grid

    xs, ys, z = as_grid(table)
    z = np.where(np.isfinite(z), z, np.nan)
    return xs, ys, z


def plot_contours(surfaces, title: str, formats=("png",)) -> dict[str, bytes]:
    """Filled contours of the loss over (x, y), one panel per surface, shared levels, origin marked."""
    tables = [t for _, t in surfaces]
    levels = contour_levels(tables)
    fig, axes = new_figure(5.5, 5.0, panels=len(surfaces))
    axes = list(axes) if len(surfaces) > 1 else [axes]
    for ax, (label, table) in zip(axes, surfaces):
        filled = _contour_panel(ax, table, levels)
        ax.set_xlabel("direction 1 (filter-normalised units)")
        ax.set_ylabel("direction 2")
        ax.set_title(f"{label}" if label else "loss")
        ax.set_aspect("equal")
    return _finish(fig, axes, filled, title, formats)


def plot_paths(surfaces, paths, explained, title: str, formats=("png",)) -> dict[str, bytes]:
    """Contours of each PCA plane with its training path drawn on it (Li et al. 2018, Fig. 9), shared levels.

    `paths`: a (step, x, y) table per surface; `explained`: each plane's two explained-variance fractions."""
    levels = contour_levels([t for _, t in surfaces])
    fig, axes = new_figure(5.5, 5.0, panels=len(surfaces))
    axes = list(axes) if len(surfaces) > 1 else [axes]
    for ax, (label, table), path, (ex, ey) in zip(axes, surfaces, paths, explained):
        filled = _contour_panel(ax, table, levels)
        ax.plot(path["x"], path["y"], color="red", marker=".", markersize=6, linewidth=1.2)
        ax.annotate(f"step {path['step'].iloc[0]}", (path["x"].iloc[0], path["y"].iloc[0]), color="red",
                    fontsize=7, textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel(f"1st PCA component: {100 * ex:.1f}% of the path's variance")
        ax.set_ylabel(f"2nd PCA component: {100 * ey:.1f}%")
        ax.set_title(label or "loss")
    return _finish(fig, axes, filled, title, formats)


def _contour_panel(ax, table, levels):
    xs, ys, z = _grid(table)
    # Values above the top level are drawn in its colour (extend="max"), NaNs stay blank.
    filled = ax.contourf(xs, ys, np.ma.masked_invalid(z.T), levels=levels, cmap="viridis", extend="max")
    lines = ax.contour(xs, ys, np.ma.masked_invalid(z.T), levels=levels, colors="white", linewidths=0.5)
    ax.clabel(lines, lines.levels[::4], inline=True, fontsize=7, fmt="%.2f")
    ax.plot([0.0], [0.0], marker="+", color="red", markersize=10)
    return filled


def _finish(fig, axes, filled, title, formats):
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    # One colour bar beside the last panel serves all (the levels are shared); a divider keeps tight_layout working.
    cax = make_axes_locatable(axes[-1]).append_axes("right", size="5%", pad=0.1)
    fig.colorbar(filled, cax=cax, label="loss (mean cross-entropy)")
    fig.suptitle(title)
    return figure_bytes(fig, formats)


def plot_surfaces_3d(surfaces, title: str, formats=("png",)) -> dict[str, bytes]:
    """3-D loss surfaces, one panel per surface, the same z range (capped as the contour levels)."""
    from matplotlib.ticker import MaxNLocator

    levels = contour_levels([t for _, t in surfaces])
    fig, axes = new_figure(5.5, 5.0, panels=len(surfaces))
    for ax in list(axes) if len(surfaces) > 1 else [axes]:
        ax.remove()
    for k, (label, table) in enumerate(surfaces):
        ax = fig.add_subplot(1, len(surfaces), k + 1, projection="3d")
        xs, ys, z = _grid(table)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        shown = np.minimum(z, levels[-1])  # NaN stays NaN: a hole in the surface
        ax.plot_surface(gx, gy, shown, cmap="viridis", vmin=levels[0], vmax=levels[-1], linewidth=0,
                        antialiased=False)
        ax.set_zlim(levels[0], levels[-1])
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(5))  # the default 9 ticks overlap on the foreshortened axes
        ax.set_xlabel("direction 1", labelpad=8)
        ax.set_ylabel("direction 2", labelpad=8)
        ax.set_zlabel("loss (cross-entropy)")
        ax.set_title(label or "loss")
    fig.suptitle(title)
    return figure_bytes(fig, formats)


def plot_curves(surfaces, title: str, xlabel: str = "step along the direction (filter-normalised units)",
                formats=("png",)) -> dict[str, bytes]:
    """Loss and accuracy along a 1-D slice, one line per surface (two panels)."""
    fig, (loss_ax, acc_ax) = new_figure(6.0, 4.5, panels=2)
    for label, table in surfaces:
        loss = table["loss"].to_numpy(dtype=float)
        loss_ax.plot(table["x"], np.where(np.isfinite(loss), loss, np.nan), marker=".", label=label or None)
        acc_ax.plot(table["x"], table["accuracy"], marker=".", label=label or None)
    loss_ax.set_ylabel("loss (mean cross-entropy)")
    acc_ax.set_ylabel("accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if surfaces[0][0]:
            ax.legend()
    fig.suptitle(title)
    return figure_bytes(fig, formats)
