"""Receptive-field engine: the Axis nodes, the state the rules read and extend, and the window pass.

The rules (`rules`, `rules_shape`) describe each operator by where its output units read; this module turns
those links into exact windows, per position, in both conventions (virtual and real, see `graph`), and
warns where merged operands' windows are not centred alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from netprobe.analysis.counting.trace import Trace

BIG = 1 << 40  # an empty window is [BIG, -BIG], so unions by min/max need no special case
AXIS_NAMES = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}


class Axis:
    """One spatial input axis of one traced tensor: layout, links to its sources, and (after `solve`) windows."""

    __slots__ = ("dim", "n", "jump", "links", "merge", "a", "b", "lo", "hi", "rlo", "rhi")

    def __init__(self, dim, n, jump, links=(), merge=None):
        self.dim, self.n, self.jump = dim, n, Fraction(jump)
        self.links = list(links)  # ("taps", src, fn) with fn(q) -> [(positions, mask or None)], or ("whole", src)
        self.merge = merge  # label of a merge of several operands, checked for alignment once solved
        self.a, self.b = 0, n  # range of virtual positions to compute; consumers widen it
        self.lo = self.hi = self.rlo = self.rhi = None

    def window(self, q: int, real: bool = False) -> tuple[int, int]:
        """The [lo, hi] input window of position q ((BIG, -BIG) when empty)."""
        lo, hi = (self.rlo, self.rhi) if real else (self.lo, self.hi)
        return int(lo[q - self.a]), int(hi[q - self.a])


Field = dict  # axis name -> Axis


@dataclass
class Graph:
    """The solved fields of every traced tensor, and what the analysis had to approximate or noticed."""

    axes: tuple[str, ...]
    fields: dict[int, Field]  # TensorRef.id -> Field
    warnings: list[str] = field(default_factory=list)


def same(src: Axis, dim, n=None, jump=None) -> Axis:
    """An axis whose unit q reads unit q of `src` (a layout change, or an operator that keeps positions)."""
    return Axis(dim, src.n if n is None else n, src.jump if jump is None else jump,
                [("taps", src, lambda q: [(q, None)])])


def broadcast(src: Axis, dim, n) -> Axis:
    """An axis of n units that all read unit 0 of `src` (broadcast from size 1)."""
    return Axis(dim, n, src.jump, [("taps", src, lambda q: [(np.zeros_like(q), None)])])


def whole(srcs, dim) -> Axis:
    """An axis whose every unit sees the real hull of its sources (global pooling, flatten, reductions)."""
    srcs = list(srcs)
    jump = max(s.jump * s.n for s in srcs)
    return Axis(dim, 1, jump, [("whole", s) for s in srcs])


class State:
    """The layout pass so far: the field of every tensor derived from the input, and what it noticed."""

    def __init__(self, tr: Trace):
        self.tr = tr
        first = tr.inputs[0]
        self.axes = AXIS_NAMES.get(len(first.shape) - 2, ())
        self.fields: dict[int, Field] = {}
        self.warnings: list[str] = []
        self.unknown: dict[str, set] = {}  # operator without a rule -> modules where it mixed positions
        # tensor id -> {axis name: (source Axis, dim, inner)}: an axis merged into dim with other dims
        # (position = index // inner % n), whose field is kept only for matrix products and views
        self.packed: dict[int, dict] = {}
        if self.axes:
            self.fields[first.id] = {name: Axis(2 + i, first.shape[2 + i], 1)
                                     for i, name in enumerate(self.axes)}

    def where(self, out) -> str:
        """The module that produced tensor `out` ("(root)" for the model itself)."""
        for op in reversed(self.tr.ops):
            if any(r.id == out.id for r in op.outputs):
                return op.module or "(root)"
        return "(root)"

    def merge_label(self, opname: str, out, links) -> str | None:
        """The label a merge of several links is warned under, None for a single link."""
        return f"aten.{opname} at {self.where(out)}" if len(links) > 1 else None

    def graph(self) -> Graph:
        """The layout as a Graph, with a warning per operator that mixed positions without a rule."""
        for name, where in sorted(self.unknown.items()):
            self.warnings.append(f"{name} (at {', '.join(sorted(where)) or '(root)'}) mixes spatial "
                                 "positions without a receptive-field rule: its output is taken to see all of its input")
        return Graph(self.axes, self.fields, self.warnings)


def windows(graph: Graph) -> None:
    """Compute every node's windows: widen each source to the positions its consumers read, then solve in order."""
    nodes = _ordered(graph.fields)
    for node in reversed(nodes):  # consumers first: widen each source to every position read
        for link in node.links:
            if link[0] == "taps":
                src = link[1]
                for pos, mask in link[2](np.arange(node.a, node.b)):
                    if mask is not None:
                        pos = pos[mask]
                    if pos.size:
                        src.a, src.b = min(src.a, int(pos.min())), max(src.b, int(pos.max()) + 1)
    for node in nodes:
        _compute(node, graph.warnings)


def _ordered(fields: dict[int, Field]) -> list[Axis]:
    """Every Axis node once, sources before the nodes that read them."""
    seen, order = set(), []

    def visit(node):
        stack = [(node, False)]
        while stack:
            ax, done = stack.pop()
            if done:
                order.append(ax)
                continue
            if id(ax) in seen:
                continue
            seen.add(id(ax))
            stack.append((ax, True))
            stack.extend((link[1], False) for link in ax.links if id(link[1]) not in seen)

    for fld in fields.values():
        for ax in fld.values():
            visit(ax)
    return order


def _compute(node: Axis, warnings: list[str]) -> None:
    q = np.arange(node.a, node.b)
    if not node.links:  # the input itself: unit q sees pixel q; padding positions see nothing real
        node.lo = node.hi = q
        real = (q >= 0) & (q < node.n)
        node.rlo, node.rhi = np.where(real, q, BIG), np.where(real, q, -BIG)
        return
    lo, hi = np.full(q.shape, BIG), np.full(q.shape, -BIG)
    rlo, rhi = lo.copy(), hi.copy()
    parts = []
    for link in node.links:
        src = link[1]
        if link[0] == "whole":
            inner = slice(0 - src.a, src.n - src.a)
            wl, wh = src.rlo[inner].min(), src.rhi[inner].max()
            parts.append((np.full(q.shape, wl), np.full(q.shape, wh)))
            lo, hi = np.minimum(lo, wl), np.maximum(hi, wh)
            rlo, rhi = np.minimum(rlo, wl), np.maximum(rhi, wh)
            continue
        plo, phi = np.full(q.shape, BIG), np.full(q.shape, -BIG)
        for pos, mask in link[2](q):
            i = pos - src.a
            if mask is None:
                vl, vh, rl, rh = src.lo[i], src.hi[i], src.rlo[i], src.rhi[i]
            else:
                i = np.where(mask, i, 0)
                vl, vh = np.where(mask, src.lo[i], BIG), np.where(mask, src.hi[i], -BIG)
                rl, rh = np.where(mask, src.rlo[i], BIG), np.where(mask, src.rhi[i], -BIG)
            plo, phi = np.minimum(plo, vl), np.maximum(phi, vh)
            rlo, rhi = np.minimum(rlo, rl), np.maximum(rhi, rh)
        parts.append((plo, phi))
        lo, hi = np.minimum(lo, plo), np.maximum(hi, phi)
    outside = (q < 0) | (q >= node.n)
    node.lo, node.hi = lo, hi
    node.rlo, node.rhi = np.where(outside, BIG, rlo), np.where(outside, -BIG, rhi)
    if node.merge and len(parts) > 1:
        _check_alignment(node, q, parts, warnings)


def _check_alignment(node: Axis, q, parts, warnings: list[str]) -> None:
    """Warn when merged operands' windows are not centred alike (their union is then wider than each)."""
    inside = (q >= 0) & (q < node.n)
    centres = []
    for plo, phi in parts:
        ok = inside & (plo <= phi)
        centres.append((np.where(ok, plo + phi, 0), ok))
    base, base_ok = centres[0]
    for other, ok in centres[1:]:
        both = base_ok & ok
        if both.any() and (base[both] != other[both]).any():
            root = node
            while root.links:  # every chain of links ends at the input's own axis
                root = root.links[0][1]
            if any(((plo <= 0) & (phi >= root.n - 1))[inside].all() for plo, phi in parts):
                warnings.append(f"merge {node.merge}: a global gate (global pooling multiplied back into the "
                                "features, as in squeeze-and-excitation) widened the field to the whole input")
                return
            offset = np.abs(base[both] - other[both]).max() / 2
            warnings.append(f"merge {node.merge}: operand fields are not centred alike (off by up to {offset:g} "
                            "input pixels); the field is the union of their windows")
            return
