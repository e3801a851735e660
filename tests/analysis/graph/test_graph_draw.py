"""The drawings of netprobe graph: every zoo model without overlapping boxes, the edges drawn as traced."""

import re
import xml.etree.ElementTree as ET

import pytest

from netprobe.analysis.graph import collapse_repeats, graph
from netprobe.render.graph_draw import panel, to_png, to_svg
from netprobe.render.graph_text import to_dot, to_mermaid
from netprobe.zoo import list_models, model_spec

from helpers import meta_model, param_count

SVG = "{http://www.w3.org/2000/svg}"


def overlaps(boxes) -> list:
    """Pairs of (x, y, w, h) boxes that share area, by a sweep along x."""
    items = sorted(boxes.items(), key=lambda kv: kv[1][0])
    found = []
    for i, (a, (ax, ay, aw, ah)) in enumerate(items):
        for b, (bx, by, bw, bh) in items[i + 1:]:
            if bx >= ax + aw:
                break
            if by < ay + ah and ay < by + bh:
                found.append((a, b))
    return found


def test_overlap_check_finds_an_overlap():
    assert overlaps({1: (0, 0, 10, 10), 2: (20, 0, 10, 10), 3: (5, 5, 10, 10)}) == [(1, 3)]


def drawn_edges(svg: str, boxes) -> set:
    """(src, dst) of every edge path in the SVG, checked to leave the bottom centre of its source box and
    arrive at the top centre of its target box."""
    edges = set()
    for path in ET.fromstring(svg).iter(f"{SVG}path"):
        if "edge" not in path.get("class", ""):
            continue
        s, d = int(path.get("data-src")), int(path.get("data-dst"))
        numbers = [float(v) for v in re.findall(r"-?\d+\.?\d*", path.get("d"))]
        (sx, sy, sw, sh), (dx, dy, dw, _) = boxes[s], boxes[d]
        assert numbers[:2] == pytest.approx([sx + sw / 2, sy + sh], abs=0.1)
        assert numbers[-2:] == pytest.approx([dx + dw / 2, dy], abs=0.1)
        edges.add((s, d))
    return edges


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_draws_without_overlaps_and_with_its_dataflow(name):
    model = meta_model(name)
    full = graph(model, (1, *model_spec(name).input_size), name=name)
    assert full.nodes["params"].sum() == param_count(model)
    g = collapse_repeats(full)
    p = panel(g, ("shape", "params", "macs"))
    assert set(p.layout.boxes) == set(g.nodes["id"]) and not overlaps(p.layout.boxes)
    assert drawn_edges(to_svg([p]), p.layout.boxes) == set(zip(g.edges["src"], g.edges["dst"]))


def test_png_is_deterministic_and_side_by_side_panels_do_not_overlap():
    graphs = [graph(meta_model("resnet20", width=2, plain=plain), (1, 3, 32, 32)) for plain in (False, True)]
    panels = [panel(g) for g in graphs]
    png = to_png(panels)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == to_png(panels)
    root = ET.fromstring(to_svg(panels))
    shifts = [float(re.search(r"translate\(([\d.]+),", g.get("transform")).group(1))
              for g in root.iter(f"{SVG}g") if g.get("class") == "panel"]
    assert shifts[0] == 0 and shifts[1] >= panels[0].layout.width


def test_text_outputs_carry_every_node_and_edge():
    g = collapse_repeats(graph(meta_model("resnet20", width=2), (1, 3, 32, 32)))
    mermaid, dot = to_mermaid([g]), to_dot([g])
    assert mermaid.startswith("flowchart TB\n") and dot.startswith("digraph netprobe {")
    edges = set(zip(g.edges["src"], g.edges["dst"]))
    assert {tuple(map(int, m)) for m in re.findall(r"^n(\d+) [-=]=?-?> ?(?:\|[^|]*\| )?n(\d+)$", mermaid, re.M)} == edges
    assert {tuple(map(int, m)) for m in re.findall(r"^  n(\d+) -> n(\d+)", dot, re.M)} == edges
    # the three stages' repeated blocks (n = 3: 3, 2 and 2 after the downsampling first blocks)
    assert re.findall(r'subgraph ng\d\["(.*?)"\]', mermaid) == ["layer1.0 .. layer1.2 x3", "layer2.1 .. layer2.2 x2",
                                                                "layer3.1 .. layer3.2 x2"]
    assert mermaid.count("==>") == 9 - 4  # 9 skips; 4 of them inside the removed repeats
