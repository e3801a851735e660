"""Receptive-field propagation over a traced operator graph: the input window of every unit of every tensor.

Every tensor derived from the model's input gets, per spatial input axis, an `Axis` node: which tensor
dimension holds that axis (None once the axis is reduced away), its size, its nominal jump (input pixels
between neighbouring units), and links to the axes it is computed from. A link maps output positions to
input positions (the taps of a window), so any operator is described by where each output unit reads:
one rule per aten operator (`rules`, `rules_spatial`, `rules_shape`), run in trace order by `solve`.

Windows are computed exactly, per position, in two conventions (as inclusive [lo, hi] intervals; `propagate`):
- virtual (Araujo et al., Distill 2019): padding positions are units like the others, so the field of a
  conv chain is the same at every position and unit 0 may start at a negative pixel (-effective padding);
- real: padding holds nothing, so windows are clipped by the borders; this is what input gradients see.
A unit reading several positions or operands gets the union (hull) of their windows, which makes merges
(additions, concatenation) and position-dependent fields (transposed convolution, upsampling) exact.
Normalisation statistics are not part of the field (BatchNorm at inference is elementwise; GroupNorm,
LayerNorm and InstanceNorm are treated the same way by convention). Layers that see the whole input
(global pooling, flatten, linear) get the real hull of their input: the whole input. A linear layer over
channels-last features (NHWC, Swin/ConvNeXt) flattens the positions into rows, multiplies over the last dim
and unflattens: positions are tracked through those rows ("packed"), so it keeps the field, down to a 1x1 map
(where torch runs it as aten.addmm on rows of positions).
"""

from __future__ import annotations

from netprobe.analysis.counting.trace import Trace
from netprobe.analysis.fields import rules_shape, rules_spatial  # noqa: F401 (importing registers their rules)
from netprobe.analysis.fields.propagate import AXIS_NAMES, BIG, Axis, Field, Graph, State, windows
from netprobe.analysis.fields.rules import RULES, default, named

__all__ = ["AXIS_NAMES", "BIG", "Axis", "Field", "Graph", "solve"]


def solve(tr: Trace) -> Graph:
    """Propagate receptive fields through the traced graph: each operator's rule in order, then the windows."""
    state = State(tr)
    for op in tr.ops:
        ins = [r for r in op.inputs if r.id in state.fields]
        if not ins or not op.outputs:
            continue
        fn = RULES.get(op.op.overloadpacket, default)
        for ref, fld in zip(op.outputs, fn(state, op, named(op), ins)):
            if fld is not None:
                state.fields[ref.id] = fld
    graph = state.graph()
    windows(graph)
    return graph
