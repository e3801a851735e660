"""The report's architecture diagrams: each summarised model drawn with its repeats collapsed, as Mermaid in
index.md (GitHub draws it) and as SVG in index.html."""

from __future__ import annotations

from netprobe.report.sections import Diagram, Section

MOST_NODES = 110  # the deepest folding that stays readable on a page: GoogLeNet's 1x1 reductions (depth 3) fit
MOST_EDGES = 400  # GitHub's Mermaid refuses a diagram of more than 500 edges (DenseNet's dense links)


def diagram(model, tr, label: str):
    """The collapsed graph of `model`'s operator trace `tr` at the deepest depth with at most MOST_NODES nodes and
    MOST_EDGES edges, and that depth."""
    from netprobe.analysis.graph import collapse_repeats, from_trace

    for depth in range(max((c.depth for c in tr.modules), default=0), -1, -1):
        g = collapse_repeats(from_trace(tr, model, depth=depth, name=label))
        if (len(g.nodes) <= MOST_NODES and len(g.edges) <= MOST_EDGES) or depth == 0:
            return g, depth


def graph_step(entries, config) -> Section:
    """One diagram per model: modules and the + and cat between them, edges labelled with their shapes."""
    from netprobe.render.graph_draw import panel, to_svg
    from netprobe.render.graph_text import to_mermaid
    from netprobe.report.models import operator_trace

    section = Section("architecture", "Architectures", text=[
        "Each model as `netprobe graph MODEL --collapse-repeats --depth N` draws it, from the same traced pass "
        "as the summaries: boxes are modules (and the additions and concatenations between them), edges the "
        "tensors, labelled with their shapes (channels x height x width); orange edges are skips "
        "(a residual shortcut, a U-Net bridge, a DenseNet link). n identical consecutive blocks are drawn once, marked x n. "
        f"Each model is drawn at the deepest depth that keeps it to {MOST_NODES} boxes and {MOST_EDGES} edges."])
    for entry in entries:
        model, tr, size = operator_trace(entry)
        g, depth = diagram(model, tr, entry.label)
        caption = f"{entry.label}, depth {depth}, input {'x'.join(map(str, size))}"
        section.diagrams.append(Diagram(f"graph_{entry.slug}", caption, to_mermaid([g]), to_svg([panel(g)])))
        section.figures[entry.label] = {"depth": depth, "nodes": len(g.nodes), "edges": len(g.edges)}
    return section
