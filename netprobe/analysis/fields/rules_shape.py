"""Receptive-field rules of the layout operators: views, expand, permutes, slices, splits, flips, rolls,
concatenation, and matrix products over positions packed into rows.

A linear layer over channels-last features (NHWC, Swin/ConvNeXt) flattens the positions into rows,
multiplies over the last dim and unflattens: `view` remembers where a merged axis lies in the flattened
tensor ("packed", `State.packed`), `matmul` keeps it for a product by a matrix that holds no positions, and
a later view that brings the axis back restores its field.
"""

from __future__ import annotations

import math

import numpy as np

from netprobe.analysis.counting.trace import TensorRef
from netprobe.analysis.fields.propagate import Axis, broadcast, same, whole
from netprobe.analysis.fields.rules import aten, default, packets, rule


def _suffix(shape, m: int) -> int:
    """Elements between neighbours along dim m of a row-major tensor."""
    return math.prod(shape[m + 1:])


def _rank(shape, dim: int) -> int:
    """How many size-1 dims follow `dim` at the same element stride: tells apart the size-1 dims a view may
    move (a 1x1 map's h and w in a (1, 1, 1, C) tensor)."""
    return sum(1 for m in range(dim + 1, len(shape)) if _suffix(shape, m) == _suffix(shape, dim))


def _place(shape, stride, n, rank=0):
    """(dim, inner) where an axis of n positions at element stride `stride` (row-major) lies within one dim of
    `shape`, at index // inner % n; None when it spans several dims (split). A dim that holds exactly the axis
    comes first; among size-1 dims at that stride, the one with the same `rank` (see `_rank`)."""
    exact = [m for m in reversed(range(len(shape))) if _suffix(shape, m) == stride and shape[m] == n]
    if len(exact) > (rank if n == 1 else 0):
        return exact[rank if n == 1 else 0], 1
    for m in range(len(shape)):
        step = _suffix(shape, m)
        if stride % step == 0 and (step * shape[m]) % (stride * n) == 0:
            return m, stride // step
        if step < stride * n and step > stride:
            return None
    return None


@rule(*packets(("view", "_unsafe_view", "reshape", "_reshape_alias", "view_copy", "squeeze", "unsqueeze", "flatten",
                "unflatten", "alias", "squeeze_copy", "unsqueeze_copy", "_unsafe_view_copy", "lift_fresh_copy")))
def view(state, op, args, ins) -> list:
    """An axis that keeps its own dim keeps its field; one merged with others (flatten) is remembered as packed
    in case a matrix product over other dims and a view bring it back; one split sees all."""
    x, out = ins[0], op.outputs[0]
    packed = state.packed.get(x.id, {})
    fld, kept = {}, {}
    for name, ax in state.fields[x.id].items():
        fld[name] = whole([ax], None)  # unless the axis is found below
        if ax.dim is not None:
            origin, stride, rank = ax, _suffix(x.shape, ax.dim), _rank(x.shape, ax.dim)
        elif name in packed:
            origin, d, inner, rank = packed[name]
            stride = _suffix(x.shape, d) * inner
        else:
            continue
        place = _place(out.shape, stride, origin.n, rank)
        if place is None:
            if ax.dim is not None:
                state.warnings.append(f"aten.{op.op._opname} at {op.module or '(root)'} splits spatial axis "
                                      f"{name} (a window partition?): its output is taken to see all of its input")
        elif place[1] == 1 and out.shape[place[0]] == origin.n:
            fld[name] = same(origin, place[0])
        else:
            kept[name] = (origin, *place, rank)
    if kept:
        state.packed[out.id] = kept
    return [fld]


@rule(aten.mm, aten.addmm, aten.bmm)
def matmul(state, op, args, ins) -> list:
    """A product by a matrix that holds no positions (a weight, and a bias without a field) keeps the rows'
    positions, directly or packed; any other product sees all of its inputs."""
    rows = args.get("mat1") if op.op._opname == "addmm" else args.get("self")
    others = [r for r in args.values() if isinstance(r, TensorRef) and r is not rows]
    if rows is None or rows.id not in state.fields or any(r.id in state.fields for r in others):
        return default(state, op, args, ins)
    last = len(rows.shape) - 1
    kept = {n: p for n, p in state.packed.get(rows.id, {}).items() if p[1] != last}
    if kept:
        state.packed[op.outputs[0].id] = kept
    fields = state.fields[rows.id]
    if any(ax.dim == last and ax.n > 1 for ax in fields.values()):
        return default(state, op, args, ins)  # positions along the contracted dim are mixed
    return [{n: same(ax, ax.dim) if ax.dim is not None else whole([ax], None) for n, ax in fields.items()}]


def _roll_taps(shift, n):
    """A cyclic shift inside the tensor; outside it (padding read by a consumer) a plain translation."""
    return lambda q: [(np.where((q >= 0) & (q < n), np.mod(q - shift, n), q - shift), None)]


@rule(aten.roll)
def roll(state, op, args, ins) -> list:
    """A cyclic shift along the rolled dims (a roll of the flattened tensor has no rule)."""
    if not args["dims"]:
        return default(state, op, args, ins)
    x = ins[0]
    ndim = len(x.shape)
    shifts = dict(zip((d % ndim for d in args["dims"]), args["shifts"]))
    fld = {}
    for name, ax in state.fields[x.id].items():
        if ax.dim in shifts:
            fld[name] = Axis(ax.dim, ax.n, ax.jump, [("taps", ax, _roll_taps(shifts[ax.dim], ax.n))])
        else:
            fld[name] = same(ax, ax.dim)
    return [fld]


@rule(aten.expand)
def expand(state, op, args, ins) -> list:
    """A dim expanded from size 1 reads its single position; new leading dims shift the others."""
    x, out = ins[0], op.outputs[0]
    shift = len(out.shape) - len(x.shape)
    fld = {}
    for name, ax in state.fields[x.id].items():
        if ax.dim is None:
            fld[name] = same(ax, None)
        elif x.shape[ax.dim] == 1 and out.shape[ax.dim + shift] != 1:
            fld[name] = broadcast(ax, ax.dim + shift, out.shape[ax.dim + shift])
        else:
            fld[name] = same(ax, ax.dim + shift)
    return [fld]


@rule(*packets(("permute", "transpose", "t", "swapaxes", "movedim")))
def permute(state, op, args, ins) -> list:
    """Positions are kept; the axis moves to its new dim."""
    x, name = ins[0], op.op._opname
    ndim = len(x.shape)
    order = list(range(ndim))
    if name == "permute":
        order = [d % ndim for d in args["dims"]]
    elif name == "t":
        order = order[::-1]
    elif name == "movedim":
        src = [args["source"]] if isinstance(args["source"], int) else list(args["source"])
        dst = [args["destination"]] if isinstance(args["destination"], int) else list(args["destination"])
        moved = {d % ndim: e % ndim for d, e in zip(src, dst)}
        rest = iter(d for d in range(ndim) if d not in moved)
        inverse = {e: d for d, e in moved.items()}
        order = [inverse[e] if e in inverse else next(rest) for e in range(ndim)]
    else:
        d0, d1 = args["dim0"] % ndim, args["dim1"] % ndim
        order[d0], order[d1] = order[d1], order[d0]
    return [{n: same(ax, None if ax.dim is None else order.index(ax.dim)) for n, ax in state.fields[x.id].items()}]


@rule(aten.slice)
def slice_(state, op, args, ins) -> list:
    """Output q reads start + step * q along the sliced dim."""
    x, out = ins[0], op.outputs[0]
    ndim = len(x.shape)
    dim = args["dim"] % ndim
    n = x.shape[dim]
    start = 0 if args["start"] is None else args["start"]
    start = min(max(start + n if start < 0 else start, 0), n)
    step = args["step"] or 1
    fld = {}
    for name, ax in state.fields[x.id].items():
        if ax.dim == dim:
            fld[name] = Axis(dim, out.shape[dim], ax.jump * step,
                             [("taps", ax, lambda q, start=start, step=step: [(start + step * q, None)])])
        else:
            fld[name] = same(ax, ax.dim)
    return [fld]


@rule(aten.select)
def select(state, op, args, ins) -> list:
    """The selected dim is gone; what remains reads the selected position."""
    x = ins[0]
    ndim = len(x.shape)
    dim = args["dim"] % ndim
    index = args["index"] % x.shape[dim]
    fld = {}
    for name, ax in state.fields[x.id].items():
        if ax.dim == dim:
            fld[name] = Axis(None, 1, ax.jump, [("taps", ax, lambda q, i=index: [(np.full_like(q, i), None)])])
        else:
            fld[name] = same(ax, None if ax.dim is None else ax.dim - (ax.dim > dim))
    return [fld]


@rule(*packets(("split", "split_with_sizes", "unbind", "chunk", "unsafe_split", "unsafe_split_with_sizes")))
def split(state, op, args, ins) -> list:
    """Each piece reads its own offset along the split dim (unbind: one position, and the dim is gone)."""
    x, name = ins[0], op.op._opname
    ndim = len(x.shape)
    dim = args.get("dim", 0) % ndim
    fields = []
    offset = 0
    for ref in op.outputs:
        fld = {}
        for axname, ax in state.fields[x.id].items():
            if ax.dim != dim:
                shifted = ax.dim if ax.dim is None or name != "unbind" else ax.dim - (ax.dim > dim)
                fld[axname] = same(ax, shifted)
            elif name == "unbind":
                fld[axname] = Axis(None, 1, ax.jump, [("taps", ax, lambda q, i=offset: [(np.full_like(q, i), None)])])
            else:
                fld[axname] = Axis(dim, ref.shape[dim], ax.jump, [("taps", ax, lambda q, o=offset: [(q + o, None)])])
        fields.append(fld)
        offset += 1 if name == "unbind" else ref.shape[dim]
    return fields


@rule(aten.flip)
def flip(state, op, args, ins) -> list:
    """Output q reads n - 1 - q along the flipped dims."""
    x = ins[0]
    dims = {d % len(x.shape) for d in args["dims"]}
    fld = {}
    for name, ax in state.fields[x.id].items():
        if ax.dim in dims:
            fld[name] = Axis(ax.dim, ax.n, ax.jump, [("taps", ax, lambda q, n=ax.n: [(n - 1 - q, None)])])
        else:
            fld[name] = same(ax, ax.dim)
    return [fld]


@rule(*packets(("cat", "concat", "stack")))
def cat(state, op, args, ins) -> list:
    """Along the concatenated dim each operand fills its own offsets; across it, a merge of their windows."""
    name, out = op.op._opname, op.outputs[0]
    refs = [r for r in args["tensors"] if isinstance(r, TensorRef)]
    ndim = len(out.shape)
    dim = args.get("dim", 0) % ndim
    fld = {}
    for axname in state.axes:
        links, jumps, target, offset = [], [], None, 0
        for ref in refs:
            ax = state.fields.get(ref.id, {}).get(axname)
            size = 0 if name == "stack" else (ref.shape[dim] if len(ref.shape) == ndim else 0)
            if ax is not None:
                adim = ax.dim if name != "stack" or ax.dim is None else ax.dim + (ax.dim >= dim)
                target = adim if target is None else target
                if adim == dim and name != "stack":
                    n_ref = ref.shape[dim]
                    links.append(("taps", ax, lambda q, o=offset, n_ref=n_ref: [(q - o, (q >= o) & (q < o + n_ref))]))
                elif ax.dim is None or out.shape[adim] == 1 or ref.shape[ax.dim] == out.shape[adim]:
                    links.append(("taps", ax, lambda q: [(q, None)]) if ax.dim is not None and
                                 ref.shape[ax.dim] == out.shape[adim] else
                                 ("taps", ax, lambda q: [(np.zeros_like(q), None)]))
                jumps.append(ax.jump)
            offset += size
        if links:
            n = out.shape[target] if target is not None else 1
            fld[axname] = Axis(target, n, max(jumps), links, merge=state.merge_label(name, out, links))
    return [fld]
