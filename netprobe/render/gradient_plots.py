"""PNG plots of gradient profiles, layer responses and shattered-gradient correlations (matplotlib Agg).

Each function returns the PNG's bytes (the caller writes them atomically, after every output is ready). One
line per (model, variant), in table order. PNGs carry no software version or timestamp, so the same table
gives byte-identical files.
"""

from __future__ import annotations

import io

_KEYS = ("model", "variant")


def _series(table):
    """(label, rows) per model/variant present in the table, in table order."""
    keys = [k for k in _KEYS if k in table]
    if not keys:
        return [("", table)]
    return [(" ".join(str(v) for v in (key if isinstance(key, tuple) else (key,))), rows)
            for key, rows in table.groupby(keys, sort=False)]


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(8, 4.5), dpi=100)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def plot_profile(table, title: str) -> bytes:
    """PNG: gradient L2 norm (log scale) against layer depth, one line per variant, mean +- std over batches shaded."""
    fig, ax = _figure()
    for label, rows in _series(table):
        mean, std = rows["grad_norm"].to_numpy(), rows["grad_norm_std"].to_numpy()
        line, = ax.plot(rows["depth"], mean, marker=".", label=label or None)
        low = (mean - std).clip(min=mean * 1e-3)  # keep the band positive on the log axis
        ax.fill_between(rows["depth"], low, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_yscale("log")
    ax.set_xlabel("weighted layer (forward order)")
    ax.set_ylabel("gradient L2 norm of the layer's weight (loss units / weight units)")
    ax.set_title(title)
    if _series(table)[0][0]:
        ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def plot_responses(table, title: str) -> bytes:
    """PNG: std of each BN layer's output against its depth (He et al. Fig. 7), one line per variant."""
    fig, ax = _figure()
    for label, rows in _series(table):
        ax.plot(rows["depth"], rows["response_std"], marker=".", label=label or None)
    ax.set_xlabel("BatchNorm layer (forward order)")
    ax.set_ylabel("std of the layer's response (activation units)")
    ax.set_title(title)
    if _series(table)[0][0]:
        ax.legend()
    ax.grid(True, alpha=0.3)
    return _png(fig)


def plot_shattered(table, title: str) -> bytes:
    """PNG: autocorrelation of input gradients against the distance along the line, one line per model/variant."""
    fig, ax = _figure()
    for label, rows in _series(table):
        mean, std = rows["correlation"].to_numpy(), rows["correlation_std"].to_numpy()
        line, = ax.plot(rows["lag"], mean, marker=".", label=label or None)
        ax.fill_between(rows["lag"], mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("lag (points along the line; see the CSV's distance column for L2 input units)")
    ax.set_ylabel("correlation of input gradients (Pearson)")
    ax.set_title(title)
    if _series(table)[0][0]:
        ax.legend()
    ax.grid(True, alpha=0.3)
    return _png(fig)
