"""Plots of a Hessian study: the eigenvalue density (stochastic Lanczos quadrature, as PyHessian's Fig. 3 on a
log scale) and the top eigenvalue and trace per block. Residual and plain share the axes.

Each function returns {format: bytes} via `figure_bytes` (no timestamps, so the same data give identical files).
"""

from __future__ import annotations

from netprobe.render.figures import figure_bytes, new_figure


def plot_density(curves, title: str, formats=("png",)) -> dict[str, bytes]:
    """Density against eigenvalue, log scale, one panel per variant; `curves`: (label, grid, density) each."""
    fig, axes = new_figure(6 if len(curves) > 1 else 8, 4.5, panels=len(curves))
    for ax, (label, grid, density) in zip(axes if len(curves) > 1 else [axes], curves):
        ax.semilogy(grid, [max(d, 1e-12) for d in density], linewidth=1)
        ax.set_ylim(1e-10, None)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density (Gaussian-smoothed Ritz values)")
        ax.set_title(f"{title}{f' ({label})' if label else ''}", fontsize=9)
        ax.grid(True, alpha=0.3)
    return figure_bytes(fig, formats)


def plot_scopes(table, title: str, formats=("png",)) -> dict[str, bytes]:
    """Left: the top eigenvalue of each scope's diagonal block of the Hessian. Right: its trace (+- 1 standard
    error), symmetric log scale; one series per variant, scopes in forward order."""
    fig, (left, right) = new_figure(6, 4.5, panels=2)
    rows = table[table["scope"] != "model"]
    scopes = list(dict.fromkeys(rows["scope"]))
    for label, part in rows.groupby("variant", sort=False):
        for ax, quantity in ((left, "eigenvalue_1"), (right, "trace")):
            sel = part[part["quantity"] == quantity]
            if len(sel):
                ax.errorbar([scopes.index(s) for s in sel["scope"]], sel["value"],
                            yerr=sel["stderr"].fillna(0), marker="o", linewidth=1, capsize=2, label=label)
    for ax, name in ((left, "top eigenvalue (largest magnitude)"), (right, "trace (Hutchinson, +- 1 s.e.)")):
        ax.set_xticks(range(len(scopes)), scopes, rotation=60, fontsize=7)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylabel(name)
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return figure_bytes(fig, formats)
