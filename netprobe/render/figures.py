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
