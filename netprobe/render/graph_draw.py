"""`netprobe graph` drawn: SVG written as plain text and PNG through matplotlib, from one layered layout.

Boxes are coloured by what they do (convolutions blue, pools green, merges yellow); edges are labelled with
the shape of the tensor they carry (batch dimension left out), once per source and shape; a skip (see
`graph_labels.skip_edges`: a residual shortcut, a U-Net bridge) is drawn in orange. Repeated blocks drawn
once (--collapse-repeats) sit in a dashed box marked "x n", or carry "x n" on their one box. The text is in
a monospaced font so the boxes fit it in any renderer.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from netprobe.render.graph_labels import category, node_lines, shape_text, skip_edges
from netprobe.render.graph_layout import Layout, layout

FONT = 11.0  # px
CHAR = 0.61 * FONT  # advance of DejaVu Sans Mono (0.602 em), rounded up
LINE = 14.0
PAD_X, PAD_Y = 8.0, 5.0
TITLE = 28.0  # room for a panel's title
SPACE = 48.0  # between panels
FAMILY = "DejaVu Sans Mono, Menlo, Consolas, monospace"
COLOURS = {"io": "#ffffff", "merge": "#ffd966", "conv": "#cfe2f3", "pool": "#d9ead3", "norm": "#eeeeee",
           "act": "#fdf3e1", "linear": "#e6d5ee", "other": "#f6f6f6"}
EDGE, SKIP = "#666666", "#e06c00"


@dataclass
class Panel:
    """One model's drawing: the laid-out boxes and their text, edges, edge labels and repeat boxes."""

    title: str
    lines: dict[int, list[str]]
    fills: dict[int, str]
    layout: Layout
    skips: set = field(default_factory=set)
    labels: list[tuple[float, float, str]] = field(default_factory=list)  # (x, y of the baseline, text)
    groups: list[tuple[tuple[float, float, float, float], str]] = field(default_factory=list)


def panel(g, show=("shape",), title: str | None = None) -> Panel:
    """Lay out one ArchGraph with the --show fields on its boxes."""
    rows = {r["id"]: r for r in g.nodes.to_dict(orient="records")}
    groups = g.groups.to_dict(orient="records") if g.groups is not None else []
    repeats = {gr["nodes"][0]: gr["repeat"] for gr in groups if len(gr["nodes"]) == 1}
    lines = {i: node_lines(r, show, repeats.get(i, 1)) for i, r in rows.items()}
    sizes = {i: (max(map(len, ls)) * CHAR + 2 * PAD_X, len(ls) * LINE + 2 * PAD_Y) for i, ls in lines.items()}
    edges = list(zip(g.edges["src"], g.edges["dst"]))
    lay = layout(sizes, edges, gap_y=32.0 if "shape" in show else 22.0)
    skips = skip_edges(g)
    result = Panel(title or g.model, lines, {i: COLOURS[category(r)] for i, r in rows.items()}, lay, skips)
    if "shape" in show:
        result.labels = _edge_labels(g, lay)
    for gr in groups:
        if len(gr["nodes"]) > 1:
            boxes = [lay.boxes[n] for n in gr["nodes"]]
            # The label runs up the left side, clear of the edges that enter and leave at the top and bottom.
            x0, y0 = min(b[0] for b in boxes) - 20, min(b[1] for b in boxes) - 6
            x1, y1 = max(b[0] + b[2] for b in boxes) + 6, max(b[1] + b[3] for b in boxes) + 6
            result.groups.append(((x0, y0, x1 - x0, y1 - y0), f"{gr['first']} .. {gr['last']}  x{gr['repeat']}"))
    return result


def _edge_labels(g, lay: Layout) -> list[tuple[float, float, str]]:
    """One label per source and shape: under the source when it sends one shape, else (a U-Net level sends
    the pool one shape and the bridge another) above each target, or at the top of a long edge's trunk."""
    by_source: dict[int, dict[str, tuple[int, int]]] = {}
    for s, d, shape in g.edges[["src", "dst", "shape"]].itertuples(index=False):
        by_source.setdefault(s, {}).setdefault(shape_text(shape), (s, d))
    labels = []
    for shapes in by_source.values():
        for text, edge in shapes.items():
            path = lay.paths[edge]
            if len(shapes) == 1 or len(path) > 2:
                x, y = path[0] if len(shapes) == 1 else path[1]
                labels.append((x + 5, y + FONT + 1, text))
            else:
                labels.append((path[-1][0] + 5, path[-1][1] - 4, text))
    return labels


def _curve(points) -> str:
    """An SVG path through the points, each step an S-curve leaving and entering vertically."""
    (x, y), *rest = points
    d = [f"M{x:.1f},{y:.1f}"]
    for (x0, y0), (x1, y1) in zip(points, rest):
        mid = (y0 + y1) / 2
        d.append(f"C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}")
    return " ".join(d)


def _size(panels) -> tuple[float, float]:
    return (sum(p.layout.width for p in panels) + SPACE * (len(panels) - 1),
            max(p.layout.height for p in panels) + TITLE)


def to_svg(panels: list[Panel]) -> str:
    """The panels side by side as a standalone SVG document."""
    e = html.escape
    width, height = _size(panels)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FAMILY}" font-size="{FONT:g}">',
           '<rect width="100%" height="100%" fill="#ffffff"/>']
    left = 0.0
    for p in panels:
        out.append(f'<g class="panel" transform="translate({left:.1f},{TITLE:g})">')
        out.append(f'<text x="12" y="-9" font-size="14" font-weight="bold">{e(p.title)}</text>')
        for (x, y, w, h), text in p.groups:
            out.append(f'<rect class="repeat" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" '
                       f'fill="#fafafa" stroke="#888888" stroke-dasharray="5,3"/>'
                       f'<text x="{x + 14:.1f}" y="{y + 6:.1f}" transform="rotate(-90 {x + 14:.1f} {y + 6:.1f})" '
                       f'text-anchor="end" fill="#555555">{e(text)}</text>')
        for (s, d), points in p.layout.paths.items():
            colour = SKIP if (s, d) in p.skips else EDGE
            kind = "edge skip" if (s, d) in p.skips else "edge"
            (x, y) = points[-1]
            out.append(f'<path class="{kind}" data-src="{s}" data-dst="{d}" d="{_curve(points)}" fill="none" '
                       f'stroke="{colour}" stroke-width="{1.6 if colour == SKIP else 1.1}"/>'
                       f'<polygon points="{x - 3.5:.1f},{y - 7:.1f} {x + 3.5:.1f},{y - 7:.1f} {x:.1f},{y:.1f}" '
                       f'fill="{colour}"/>')
        for x, y, text in p.labels:
            out.append(f'<text class="shape" x="{x:.1f}" y="{y:.1f}" fill="#444444" font-size="10" stroke="#ffffff" stroke-width="3" paint-order="stroke">{e(text)}</text>')
        for node, (x, y, w, h) in p.layout.boxes.items():
            out.append(f'<g class="node" data-id="{node}"><rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
                       f'height="{h:.1f}" rx="{h / 2 if p.fills[node] == COLOURS["merge"] else 4:.1f}" '
                       f'fill="{p.fills[node]}" stroke="#333333"/>')
            for k, line in enumerate(p.lines[node]):
                weight = ' font-weight="bold"' if k == 0 else ""
                out.append(f'<text x="{x + PAD_X:.1f}" y="{y + PAD_Y + (k + 0.78) * LINE:.1f}"{weight}>'
                           f'{e(line)}</text>')
            out.append("</g>")
        out.append("</g>")
        left += p.layout.width + SPACE
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_png(panels: list[Panel], *, most: float = 20000.0) -> bytes:
    """The panels drawn by matplotlib (Agg), twice the SVG's size, or smaller if a side would pass `most` px (memory)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = _size(panels)
    fig = Figure(figsize=(width / 72, height / 72), dpi=72 * min(2.0, most / max(width, height)))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    left = 0.0
    for p in panels:
        _draw_panel(ax, p, left)
        left += p.layout.width + SPACE
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _draw_panel(ax, p: Panel, left: float) -> None:
    """One panel on matplotlib axes whose units are the SVG's pixels (1 pt at 72 dpi)."""
    from matplotlib import patheffects
    from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
    from matplotlib.path import Path

    font = dict(family="monospace", fontsize=FONT, va="baseline")
    top = TITLE
    ax.text(left + 12, top - 9, p.title, fontsize=14, fontweight="bold", family="monospace", va="baseline")
    for (x, y, w, h), text in p.groups:
        ax.add_patch(FancyBboxPatch((left + x, top + y), w, h, boxstyle="round,pad=0,rounding_size=6",
                                    fc="#fafafa", ec="#888888", ls=(0, (5, 3)), lw=1))
        ax.text(left + x + 14, top + y + 6, text, color="#555555", rotation=90, rotation_mode="anchor",
                ha="right", **font)
    for edge, points in p.layout.paths.items():
        colour = SKIP if edge in p.skips else EDGE
        verts, codes = [(left + points[0][0], top + points[0][1])], [Path.MOVETO]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            mid = top + (y0 + y1) / 2
            verts += [(left + x0, mid), (left + x1, mid), (left + x1, top + y1)]
            codes += [Path.CURVE4] * 3
        ax.add_patch(PathPatch(Path(verts, codes), fc="none", ec=colour, lw=1.6 if colour == SKIP else 1.1))
        x, y = left + points[-1][0], top + points[-1][1]
        ax.add_patch(Polygon([(x - 3.5, y - 7), (x + 3.5, y - 7), (x, y)], closed=True, fc=colour, ec="none"))
    halo = [patheffects.withStroke(linewidth=3, foreground="#ffffff")]
    for x, y, text in p.labels:
        ax.text(left + x, top + y, text, color="#444444", path_effects=halo, **{**font, "fontsize": 10})
    for node, (x, y, w, h) in p.layout.boxes.items():
        merge = p.fills[node] == COLOURS["merge"]
        ax.add_patch(FancyBboxPatch((left + x, top + y), w, h, fc=p.fills[node], ec="#333333", lw=1,
                                    boxstyle=f"round,pad=0,rounding_size={h / 2 if merge else 4}"))
        for k, line in enumerate(p.lines[node]):
            ax.text(left + x + PAD_X, top + y + PAD_Y + (k + 0.78) * LINE, line,
                    fontweight="bold" if k == 0 else "normal", **font)
