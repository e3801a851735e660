"""A layered drawing of a dataflow graph, top to bottom, in the manner of Sugiyama et al. (1981), kept small.

1. Ranks: each node one layer below its lowest predecessor (longest path from the inputs).
2. Edges spanning several layers get a thin dummy vertex in each layer between, so they are routed between
   the boxes instead of across them; the long edges of one source share their dummies (a trunk).
3. Order within each layer: barycentre sweeps, down and up.
4. Horizontal positions: each layer in turn is placed as near as its order and spacing allow to the mean of
   its neighbours in the layer just placed (a weighted isotonic regression, solved exactly by pool-adjacent-
   violators). Dummies weigh little, so the main path stays straight and skips bend around it; a long edge
   pulls its target toward its source, so a merge sits under the paths it joins.
Boxes of one layer never overlap (the spacing is a constraint) and layers are stacked, so no two boxes do.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

DUMMY_WIDTH = 6.0
DUMMY_WEIGHT = 0.001  # a dummy gives way to a box
SKIP_PULL = 0.02  # how much a box's own trunk of long edges pulls it, relative to a neighbour


@dataclass
class Layout:
    """Where everything goes: boxes as (x, y, width, height) from the top-left corner, edges as point lists."""

    boxes: dict[int, tuple[float, float, float, float]]
    paths: dict[tuple[int, int], list[tuple[float, float]]]  # source bottom, dummies, target top
    width: float
    height: float


def layout(sizes: dict[int, tuple[float, float]], edges: list[tuple[int, int]], *, gap_x: float = 24.0,
           gap_y: float = 30.0, margin: float = 12.0) -> Layout:
    """Lay out nodes of the given (width, height) and the edges between them (a DAG); see the module docstring."""
    rank = ranks(list(sizes), edges)
    layers, up, down, chains = _split(sizes, rank, edges)
    _order(layers, up, down)
    widths = {v: sizes[v][0] if not isinstance(v, tuple) else DUMMY_WIDTH for layer in layers for v in layer}
    x = _place(layers, widths, up, down, gap_x)
    left = min((x[v] - widths[v] / 2 for v in x), default=0.0)
    x = {v: c - left + margin for v, c in x.items()}
    tops, heights, top = [], [], margin
    for layer in layers:
        tops.append(top)
        heights.append(max((sizes[v][1] for v in layer if not isinstance(v, tuple)), default=0.0))
        top += heights[-1] + gap_y
    boxes = {v: (x[v] - sizes[v][0] / 2, tops[rank[v]] + (heights[rank[v]] - sizes[v][1]) / 2, *sizes[v])
             for v in sizes}
    paths = {}
    for (s, d), chain in chains.items():
        bx, by, bw, bh = boxes[s]
        points = [(x[s], by + bh)]
        for v in chain:
            points += [(x[v], tops[v[2]]), (x[v], tops[v[2]] + heights[v[2]])]
        points.append((x[d], boxes[d][1]))
        paths[(s, d)] = points
    width = max((x[v] + widths[v] / 2 for v in x), default=0.0) + margin
    return Layout(boxes, paths, width, top - gap_y + margin)


def ranks(nodes: list[int], edges) -> dict[int, int]:
    """Longest-path layers, visiting nodes in a topological order that keeps their given order where free."""
    preds = {v: [] for v in nodes}
    succs = {v: [] for v in nodes}
    for s, d in edges:
        preds[d].append(s)
        succs[s].append(d)
    waiting = {v: len(preds[v]) for v in nodes}
    index = {v: i for i, v in enumerate(nodes)}
    ready = [(index[v], v) for v in nodes if not waiting[v]]
    heapq.heapify(ready)
    rank = {}
    while ready:
        _, v = heapq.heappop(ready)
        rank[v] = max((rank[u] + 1 for u in preds[v]), default=0)
        for d in succs[v]:
            waiting[d] -= 1
            if not waiting[d]:
                heapq.heappush(ready, (index[d], d))
    if len(rank) != len(nodes):
        raise ValueError("the graph has a cycle")
    return rank


def _split(sizes, rank, edges):
    """Layers of vertices (node ids, and ("d", source, layer) dummies), their neighbours, each edge's dummies.

    The long edges of one source share one trunk of dummies, down to the layer above its farthest target, and
    leave it above each target (a DenseNet block would otherwise need a dummy per edge and layer: cubic)."""
    layers = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    up = {v: {} for v in sizes}  # dicts as ordered sets
    down = {v: {} for v in sizes}
    for v in sizes:
        layers[rank[v]].append(v)
    chains = {}
    for s, d in edges:
        chain = [("d", s, k) for k in range(rank[s] + 1, rank[d])]
        for v in chain:
            if v not in up:
                layers[v[2]].append(v)
                up[v], down[v] = {}, {}
        path = [s, *chain, d]
        for a, b in zip(path, path[1:]):
            down[a][b] = None
            up[b][a] = None
        chains[(s, d)] = chain
    return layers, {v: list(n) for v, n in up.items()}, {v: list(n) for v, n in down.items()}, chains


def _order(layers, up, down, sweeps: int = 4) -> None:
    """Barycentre ordering, in place: each layer sorted by the mean position of its neighbours."""
    pos = {v: i for layer in layers for i, v in enumerate(layer)}

    def sort(layer, nbrs):
        """Sort one layer by its neighbours' mean position, ties kept in the current order."""
        layer.sort(key=lambda v: (sum(pos[n] for n in nbrs[v]) / len(nbrs[v]) if nbrs[v] else pos[v], pos[v]))
        pos.update((v, i) for i, v in enumerate(layer))

    for _ in range(sweeps):
        for layer in layers[1:]:
            sort(layer, up)
        for layer in reversed(layers[:-1]):
            sort(layer, down)
    for layer in layers[1:]:
        sort(layer, up)


def _place(layers, widths, up, down, gap: float, sweeps: int = 6) -> dict:
    """Centre x of every vertex: packed, then aligned to its neighbours, down and up, ending downward."""
    x = {}
    for layer in layers:
        cursor = 0.0
        for v in layer:
            x[v] = cursor + widths[v] / 2
            cursor += widths[v] + gap
    for _ in range(sweeps):
        for layer in layers[1:]:
            _align(layer, up, x, widths, gap)
        for layer in reversed(layers[:-1]):
            _align(layer, down, x, widths, gap)
    for layer in layers[1:]:
        _align(layer, up, x, widths, gap)
    return x


def _align(layer, nbrs, x, widths, gap: float) -> None:
    """Place one layer, in its order and spacing, nearest (weighted least squares) to its neighbours' mean."""
    targets, weights, offsets, offset = [], [], [], 0.0
    for i, v in enumerate(layer):
        dummy = isinstance(v, tuple)
        # A box is pulled by its real neighbours, and by the source of a long edge arriving (so a merge sits
        # under the paths it joins); its own trunk leaving pulls it only a little.
        ends = [n[1] if isinstance(n, tuple) and not dummy and n[1] != v else n for n in nbrs[v]]
        pulls = [SKIP_PULL if isinstance(n, tuple) and not dummy else 1.0 for n in ends]
        want = sum(p * x[n] for p, n in zip(pulls, ends)) / sum(pulls) if pulls else x[v]
        if i:
            offset += (widths[layer[i - 1]] + widths[v]) / 2 + gap
        offsets.append(offset)
        targets.append(want - offset)
        weights.append(DUMMY_WEIGHT if dummy else 1.0)
    for v, fitted, off in zip(layer, _isotonic(targets, weights), offsets):
        x[v] = fitted + off


def _isotonic(values: list[float], weights: list[float]) -> list[float]:
    """The non-decreasing sequence nearest to `values` in weighted least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values, weights):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return [mean for mean, _, count in blocks for _ in range(count)]
