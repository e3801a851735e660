"""`netprobe graph` as text for renderers elsewhere: Mermaid (GitHub draws it inside markdown) and Graphviz dot.

Both carry the same nodes, labels, shape-labelled edges and repeat boxes as the SVG; a skip into a merge is a
thick edge in Mermaid and an orange one in dot. Models compared side by side are one subgraph each.
"""

from __future__ import annotations

from netprobe.render.graph_labels import is_merge, node_lines, shape_text, skip_edges


def _parts(g, show):
    """Rows by id, label lines by id, the groups of several nodes, and (src, dst, label, skip) per edge."""
    rows = {r["id"]: r for r in g.nodes.to_dict(orient="records")}
    groups = g.groups.to_dict(orient="records") if g.groups is not None else []
    repeats = {gr["nodes"][0]: gr["repeat"] for gr in groups if len(gr["nodes"]) == 1}
    lines = {i: node_lines(r, show, repeats.get(i, 1)) for i, r in rows.items()}
    skips = skip_edges(g)
    edges = [(s, d, shape_text(shape) if "shape" in show else "", (s, d) in skips)
             for s, d, shape in g.edges[["src", "dst", "shape"]].itertuples(index=False)]
    return rows, lines, [gr for gr in groups if len(gr["nodes"]) > 1], edges


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(graphs, show=("shape",)) -> str:
    """A Mermaid flowchart, top to bottom; several graphs side by side as subgraphs."""
    out = ["flowchart TB"]
    for k, g in enumerate(graphs):
        prefix = f"m{k}n" if len(graphs) > 1 else "n"
        rows, lines, groups, edges = _parts(g, show)
        if len(graphs) > 1:
            out.append(f'subgraph m{k}["{_mermaid_text(g.model)}"]')
            out.append("direction TB")
        out += [f'{prefix}{n}["{"<br/>".join(map(_mermaid_text, lines[n]))}"]' for n in rows]
        for i, gr in enumerate(groups):  # nodes named in a subgraph move into it
            out.append(f'subgraph {prefix}g{i}["{_mermaid_text(gr["first"])} .. '
                       f'{_mermaid_text(gr["last"])} x{gr["repeat"]}"]')
            out += [f"{prefix}{n}" for n in gr["nodes"]]
            out.append("end")
        for s, d, label, skip in edges:
            arrow = "==>" if skip else "-->"
            out.append(f'{prefix}{s} {arrow}{f"|{_mermaid_text(label)}|" if label else ""} {prefix}{d}')
        if len(graphs) > 1:
            out.append("end")
    return "\n".join(out) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graphs, show=("shape",)) -> str:
    """A Graphviz digraph, top to bottom; several graphs side by side as clusters."""
    out = ["digraph netprobe {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", fillcolor="#f6f6f6", '
           'fontname="DejaVu Sans Mono", fontsize=10];', '  edge [fontname="DejaVu Sans Mono", fontsize=9];']
    for k, g in enumerate(graphs):
        prefix = f"m{k}n" if len(graphs) > 1 else "n"
        rows, lines, groups, edges = _parts(g, show)
        if len(graphs) > 1:
            out.append(f'  subgraph cluster_m{k} {{ label="{_dot_text(g.model)}";')
        for i, gr in enumerate(groups):
            out.append(f'  subgraph cluster_{prefix}g{i} {{ label="{_dot_text(gr["first"])} .. '
                       f'{_dot_text(gr["last"])} x{gr["repeat"]}"; style=dashed;')
            out += [f"    {prefix}{n};" for n in gr["nodes"]]
            out.append("  }")
        for n in rows:
            fill = ', fillcolor="#ffd966"' if is_merge(rows[n]) else ""
            label = "\\n".join(map(_dot_text, lines[n]))
            out.append(f'  {prefix}{n} [label="{label}"{fill}];')
        for s, d, label, skip in edges:
            attrs = [f'label="{_dot_text(label)}"'] if label else []
            attrs += ['color="#e06c00"', "penwidth=2"] if skip else []
            listed = f" [{', '.join(attrs)}]" if attrs else ""
            out.append(f"  {prefix}{s} -> {prefix}{d}{listed};")
        if len(graphs) > 1:
            out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"
