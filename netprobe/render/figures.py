"""Saving matplotlib figures as PNG and SVG bytes with no timestamps or versions, so reruns are identical."""

from __future__ import annotations

import io


def new_figure(width: float = 8.0, height: float = 4.5, panels: int = 1):
    """A figure on the Agg backend with `panels` side-by-side axes (one axes object when panels == 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width * panels, height), dpi=100, squeeze=False)
    return fig, (axes[0] if panels > 1 else axes[0][0])


def figure_bytes(fig, formats=("png",)) -> dict[str, bytes]:
    """Render and close `fig`; returns {format: bytes} for 'png' and/or 'svg', free of embedded dates."""
    import matplotlib
    import matplotlib.pyplot as plt

    out = {}
    fig.tight_layout()
    for fmt in formats:
        buf = io.BytesIO()
        # SVG element ids are random unless salted; the date/software entries would change every run.
        with matplotlib.rc_context({"svg.hashsalt": "netprobe"}):
            metadata = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
            fig.savefig(buf, format=fmt, metadata=metadata)
        out[fmt] = buf.getvalue()
    plt.close(fig)
    return out


def layer_ticks(ax, names, *, most: int = 40) -> None:
    """Name the layers along the x axis: ticks at integer positions 0..n-1 (every k-th when more than `most`),
    labelled with the layer names ("(root)" for the model's own operators), rotated to stay readable."""
    names = [name or "(root)" for name in names]
    step = max(1, -(-len(names) // most))
    positions = list(range(0, len(names), step))
    ax.set_xticks(positions, [names[i] for i in positions], rotation=90, fontsize=7 if len(positions) > 16 else 8)
    ax.set_xlim(-0.75, len(names) - 0.25)


def merged_order(series) -> list[str]:
    """One order for the layer names of several series (plain and residual twins): each series' own order kept,
    a name missing from earlier series placed after its predecessor in the series that has it."""
    order: list[str] = []
    for names in series:
        after = -1
        for name in names:
            if name in order:
                after = order.index(name)
            else:
                after += 1
                order.insert(after, name)
    return order
