"""Receptive-field propagation over a traced operator graph: the input window of every unit of every tensor.

Every tensor derived from the model's input gets, per spatial input axis, an `Axis` node: which tensor
dimension holds that axis (None once the axis is reduced away), its size, its nominal jump (input pixels
between neighbouring units), and links to the axes it is computed from. A link maps output positions to
input positions (the taps of a window), so any operator is described by where each output unit reads.

Windows are computed exactly, per position, in two conventions (as inclusive [lo, hi] intervals):
- virtual (Araujo et al., Distill 2019): padding positions are units like the others, so the field of a
  conv chain is the same at every position and unit 0 may start at a negative pixel (-effective padding);
- real: padding holds nothing, so windows are clipped by the borders; this is what input gradients see.
A unit reading several positions or operands gets the union (hull) of their windows, which makes merges
(additions, concatenation) and position-dependent fields (transposed convolution, upsampling) exact.
Normalisation statistics are not part of the field (BatchNorm at inference is elementwise; GroupNorm,
LayerNorm and InstanceNorm are treated the same way by convention). Layers that see the whole input
(global pooling, flatten, linear) get the real hull of their input: the whole input. A linear layer over
channels-last features (NHWC, Swin/ConvNeXt) flattens the positions into rows, multiplies over the last dim
and unflattens: positions are tracked through those rows ("packed"), so it keeps the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from netprobe.analysis.counting.trace import Trace, TensorRef

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


def _named(op) -> dict:
    """The operator's arguments by schema name, defaults filled in."""
    values = {}
    for i, arg in enumerate(op.op._schema.arguments):
        if i < len(op.args):
            values[arg.name] = op.args[i]
        elif arg.name in op.kwargs:
            values[arg.name] = op.kwargs[arg.name]
        else:
            values[arg.name] = arg.default_value if arg.has_default_value() else None
    return values


def _pick(values, i: int, default: int) -> int:
    """Entry i of a per-dimension list (a single entry applies to all dimensions; empty means default)."""
    if values is None or (isinstance(values, (list, tuple)) and not values):
        return default
    if isinstance(values, int):
        return values
    return int(values[i] if len(values) > 1 else values[0])


def _same(src: Axis, dim, n=None, jump=None) -> Axis:
    return Axis(dim, src.n if n is None else n, src.jump if jump is None else jump,
                [("taps", src, lambda q: [(q, None)])])


def _broadcast(src: Axis, dim, n) -> Axis:
    return Axis(dim, n, src.jump, [("taps", src, lambda q: [(np.zeros_like(q), None)])])


def _whole(srcs, dim, n_in=None) -> Axis:
    """An axis whose every unit sees the real hull of its sources (global pooling, flatten, reductions)."""
    srcs = list(srcs)
    jump = max(s.jump * s.n for s in srcs)
    return Axis(dim, 1, jump, [("whole", s) for s in srcs])


def _window_taps(stride, pad, dil, k):
    return lambda q: [(stride * q - pad + dil * t, None) for t in range(k)]


def _transposed_taps(stride, pad, dil, k):
    # Output q receives input i when i * stride - pad + dil * t == q for some kernel tap t.
    def taps(q):
        out = []
        for t in range(k):
            num = q + pad - dil * t
            out.append((np.floor_divide(num, stride), np.remainder(num, stride) == 0))
        return out
    return taps


def _range_taps(start_fn, end_fn, width):
    """Taps covering [start(q), end(q)] inclusive, at most `width` positions each."""
    def taps(q):
        start, end = start_fn(q), end_fn(q)
        return [(start + t, start + t <= end) for t in range(width)]
    return taps


class _Builder:
    """Builds Axis nodes operator by operator (the layout pass); `solve` then computes the windows."""

    def __init__(self, tr: Trace):
        self.tr = tr
        first = tr.inputs[0]
        self.axes = AXIS_NAMES.get(len(first.shape) - 2, ())
        self.fields: dict[int, Field] = {}
        self.warnings: list[str] = []
        self.unknown: dict[str, set] = {}
        # tensor id -> {axis name: (source Axis, dim, inner)}: an axis merged into dim with other dims
        # (position = index // inner % n), whose field is kept only for matrix products and views
        self.packed: dict[int, dict] = {}
        if self.axes:
            self.fields[first.id] = {name: Axis(2 + i, first.shape[2 + i], 1)
                                     for i, name in enumerate(self.axes)}

    def run(self) -> Graph:
        for op in self.tr.ops:
            ins = [r for r in op.inputs if r.id in self.fields]
            if not ins or not op.outputs:
                continue
            outs = self.rule(op, ins)
            for ref, fld in zip(op.outputs, outs):
                if fld is not None:
                    self.fields[ref.id] = fld
        for name, where in sorted(self.unknown.items()):
            self.warnings.append(f"{name} (at {', '.join(sorted(where)) or '(root)'}) mixes spatial "
                                 "positions without a receptive-field rule: its output is taken to see all of its input")
        return Graph(self.axes, self.fields, self.warnings)

    # -- rules ---------------------------------------------------------------------------------------------

    def rule(self, op, ins: list[TensorRef]) -> list:
        name = op.op._opname
        args = _named(op)
        out = op.outputs[0]
        if name in _NO_DATA:
            return [None] * len(op.outputs)
        if name in ("convolution", "_convolution", "convolution_overrideable"):
            return [self.conv(op, args, out)]
        if "pool" in name and not name.startswith("_adaptive") and not name.startswith("adaptive"):
            return [self.pool(op, name, args, out)] + [None] * (len(op.outputs) - 1)
        if "adaptive" in name:
            return [self.adaptive(args, out)] + [None] * (len(op.outputs) - 1)
        if name in _REDUCTIONS:
            return [self.reduce(args, out, ins[0])] * len(op.outputs)
        if name in _VIEWS:
            return [self.view(op, ins[0], out)]
        if name in _MATMULS:
            self.matmul(name, args, out)
        if name == "roll" and args["dims"]:
            return [self.roll(args, ins[0], out)]
        if name == "expand":
            return [self.expand(ins[0], out)]
        if name in ("permute", "transpose", "t", "swapaxes", "movedim"):
            return [self.permute(name, args, ins[0], out)]
        if name == "slice":
            return [self.slice(args, ins[0], out)]
        if name == "select":
            return [self.select(args, ins[0], out)]
        if name in ("split", "split_with_sizes", "unbind", "chunk", "unsafe_split", "unsafe_split_with_sizes"):
            return self.split(name, args, ins[0], op.outputs)
        if name in ("constant_pad_nd",) or "reflection_pad" in name or "replication_pad" in name:
            return [self.pad(name, args, ins[0], out)]
        if name.startswith("upsample") or name.startswith("_upsample"):
            return [self.upsample(name, args, out)]
        if name in ("cat", "concat", "stack"):
            return [self.cat(name, args, out)]
        if name in ("pixel_shuffle", "pixel_unshuffle"):
            return [self.shuffle(name, args, ins[0], out)]
        if name == "flip":
            return [self.flip(args, ins[0], out)]
        if name in ("_softmax", "_log_softmax", "softmax", "log_softmax"):
            return [self.softmax(args, ins[0], out)]
        if name in _NORMS:
            return [self.pointwise(op, [args["input"]], out)] + [None] * (len(op.outputs) - 1)
        if name in ("copy_", "copy"):
            return [self.pointwise(op, [r for r in [args.get("src")] if r is not None and r.id in self.fields]
                                   or ins, out)]
        if torch.Tag.pointwise in op.op.tags or name in _ELEMENTWISE:
            return [self.pointwise(op, ins, ref) if ref.shape == out.shape else None for ref in op.outputs]
        # Matrix products and operators without a rule: every output sees all of every input. Only worth a
        # warning where positions are lost (a linear layer after flatten has none left to lose).
        if any(ax.dim is not None and ax.n > 1 for r in ins for ax in self.fields[r.id].values()):
            self.unknown.setdefault(str(op.op), set()).add(op.module)
        return [self.collapse(ins, ref) for ref in op.outputs]

    def conv(self, op, args, out) -> Field:
        src = self.fields[args["input"].id]
        weight = args["weight"]
        kernel = weight.shape[2:]
        fld = {}
        for name, ax in src.items():
            i = ax.dim - 2 if ax.dim is not None else -1
            if i < 0:  # batch passes through; channels all mix
                fld[name] = _same(ax, ax.dim) if ax.dim == 0 else _whole([ax], ax.dim)
                continue
            s, p, d = _pick(args["stride"], i, 1), _pick(args["padding"], i, 0), _pick(args["dilation"], i, 1)
            n = out.shape[ax.dim]
            if args["transposed"]:
                fld[name] = Axis(ax.dim, n, ax.jump / s, [("taps", ax, _transposed_taps(s, p, d, kernel[i]))])
            else:
                fld[name] = Axis(ax.dim, n, ax.jump * s, [("taps", ax, _window_taps(s, p, d, kernel[i]))])
        return fld

    def pool(self, op, name, args, out) -> Field:
        src = self.fields[args["self"].id]
        spatial = int(name.split("pool")[1][0])  # max_pool2d_with_indices -> 2
        ndim = len(args["self"].shape)
        fld = {}
        for axname, ax in src.items():
            i = ax.dim - (ndim - spatial) if ax.dim is not None else -1
            if i < 0:
                fld[axname] = _same(ax, ax.dim)
                continue
            k = _pick(args["kernel_size"], i, 1)
            s = _pick(args["stride"], i, k)
            p, d = _pick(args.get("padding"), i, 0), _pick(args.get("dilation"), i, 1)
            fld[axname] = Axis(ax.dim, out.shape[ax.dim], ax.jump * s, [("taps", ax, _window_taps(s, p, d, k))])
        return fld

    def adaptive(self, args, out) -> Field:
        x = args["self"]
        src = self.fields[x.id]
        sizes = list(out.shape[len(out.shape) - len(args["output_size"]):])
        first = len(out.shape) - len(sizes)
        fld = {}
        for name, ax in src.items():
            if ax.dim is None or ax.dim < first:
                fld[name] = _same(ax, ax.dim)
                continue
            n_in, n_out = x.shape[ax.dim], out.shape[ax.dim]
            if n_out == 1:
                fld[name] = _whole([ax], ax.dim)
                continue
            # torch's adaptive windows: [floor(q * n_in / n_out), ceil((q + 1) * n_in / n_out))
            fn = _range_taps(lambda q: (q * n_in) // n_out, lambda q: -((-(q + 1) * n_in) // n_out) - 1,
                             -(-n_in // n_out) + 1)
            fld[name] = Axis(ax.dim, n_out, ax.jump * Fraction(n_in, n_out), [("taps", ax, fn)])
        return fld

    def reduce(self, args, out, x) -> Field:
        src = self.fields[x.id]
        dims = args.get("dim")
        if dims is None or dims == []:
            dims = list(range(len(x.shape)))
        dims = {d % max(len(x.shape), 1) for d in ([dims] if isinstance(dims, int) else dims)}
        keep = bool(args.get("keepdim"))
        fld = {}
        for name, ax in src.items():
            if ax.dim is None:
                fld[name] = _same(ax, None)
            elif ax.dim in dims:
                fld[name] = _whole([ax], ax.dim if keep else None)
            else:
                fld[name] = _same(ax, ax.dim if keep else ax.dim - sum(d < ax.dim for d in dims))
        return fld

    def view(self, op, x, out) -> Field:
        src = self.fields[x.id]
        packed = self.packed.get(x.id, {})
        fld, kept = {}, {}
        for name, ax in src.items():
            dim = None
            if ax.dim is not None:
                prefix = math.prod(x.shape[:ax.dim])
                for m in range(len(out.shape)):
                    if math.prod(out.shape[:m]) == prefix and out.shape[m] == x.shape[ax.dim]:
                        dim = m
                        break
            if dim is not None:
                fld[name] = _same(ax, dim)
                continue
            # An axis merged with others (flatten) or split loses its positions: the whole input. A merged
            # axis is remembered in case a matrix product over other dims and a view bring it back.
            fld[name] = _whole([ax], None)
            if ax.dim is not None and ax.n > 1:
                origin, stride = ax, math.prod(x.shape[ax.dim + 1:])
            elif name in packed:
                origin, d, inner = packed[name]
                stride = math.prod(x.shape[d + 1:]) * inner
            else:
                continue
            place = _place(out.shape, stride, origin.n)
            if place is None:
                if ax.dim is not None:
                    self.warnings.append(f"aten.{op.op._opname} at {op.module or '(root)'} splits spatial axis "
                                         f"{name} (a window partition?): its output is taken to see all of its input")
            elif place[1] == 1 and out.shape[place[0]] == origin.n:
                fld[name] = _same(origin, place[0])
            else:
                kept[name] = (origin, *place)
        if kept:
            self.packed[out.id] = kept
        return fld

    def matmul(self, name, args, out) -> None:
        """Rows of a product by a matrix that holds no positions (a weight) keep their packed axes."""
        rows = args.get("mat1") if name == "addmm" else args.get("self")
        others = [r for r in args.values() if isinstance(r, TensorRef) and r is not rows]
        if rows is None or rows.id not in self.packed or any(r.id in self.fields for r in others):
            return
        last = len(rows.shape) - 1
        kept = {n: p for n, p in self.packed[rows.id].items() if p[1] != last}
        if kept:
            self.packed[out.id] = kept

    def roll(self, args, x, out) -> Field:
        ndim = len(x.shape)
        shifts = dict(zip((d % ndim for d in args["dims"]), args["shifts"]))
        fld = {}
        for name, ax in self.fields[x.id].items():
            if ax.dim in shifts:
                fld[name] = Axis(ax.dim, ax.n, ax.jump, [("taps", ax, _roll_taps(shifts[ax.dim], ax.n))])
            else:
                fld[name] = _same(ax, ax.dim)
        return fld

    def expand(self, x, out) -> Field:
        shift = len(out.shape) - len(x.shape)
        fld = {}
        for name, ax in self.fields[x.id].items():
            if ax.dim is None:
                fld[name] = _same(ax, None)
            elif x.shape[ax.dim] == 1 and out.shape[ax.dim + shift] != 1:
                fld[name] = _broadcast(ax, ax.dim + shift, out.shape[ax.dim + shift])
            else:
                fld[name] = _same(ax, ax.dim + shift)
        return fld

    def permute(self, name, args, x, out) -> Field:
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
        return {n: _same(ax, None if ax.dim is None else order.index(ax.dim))
                for n, ax in self.fields[x.id].items()}

    def slice(self, args, x, out) -> Field:
        ndim = len(x.shape)
        dim = args["dim"] % ndim
        n = x.shape[dim]
        start = 0 if args["start"] is None else args["start"]
        start = min(max(start + n if start < 0 else start, 0), n)
        step = args["step"] or 1
        fld = {}
        for name, ax in self.fields[x.id].items():
            if ax.dim == dim:
                fld[name] = Axis(dim, out.shape[dim], ax.jump * step,
                                 [("taps", ax, lambda q, start=start, step=step: [(start + step * q, None)])])
            else:
                fld[name] = _same(ax, ax.dim)
        return fld

    def select(self, args, x, out) -> Field:
        ndim = len(x.shape)
        dim = args["dim"] % ndim
        index = args["index"] % x.shape[dim]
        fld = {}
        for name, ax in self.fields[x.id].items():
            if ax.dim == dim:
                fld[name] = Axis(None, 1, ax.jump, [("taps", ax, lambda q, i=index: [(np.full_like(q, i), None)])])
            else:
                fld[name] = _same(ax, None if ax.dim is None else ax.dim - (ax.dim > dim))
        return fld

    def split(self, name, args, x, outs) -> list:
        ndim = len(x.shape)
        dim = args.get("dim", 0) % ndim
        fields = []
        offset = 0
        for ref in outs:
            fld = {}
            for axname, ax in self.fields[x.id].items():
                if ax.dim != dim:
                    shifted = ax.dim if ax.dim is None or name != "unbind" else ax.dim - (ax.dim > dim)
                    fld[axname] = _same(ax, shifted)
                elif name == "unbind":
                    fld[axname] = Axis(None, 1, ax.jump, [("taps", ax, lambda q, i=offset: [(np.full_like(q, i), None)])])
                else:
                    fld[axname] = Axis(dim, ref.shape[dim], ax.jump,
                                       [("taps", ax, lambda q, o=offset: [(q + o, None)])])
            fields.append(fld)
            offset += 1 if name == "unbind" else ref.shape[dim]
        return fields

    def pad(self, name, args, x, out) -> Field:
        pads = list(args.get("pad") or args.get("padding"))
        ndim = len(x.shape)
        fld = {}
        for axname, ax in self.fields[x.id].items():
            k = ndim - 1 - ax.dim if ax.dim is not None else -1
            if k < 0 or 2 * k >= len(pads):
                fld[axname] = _same(ax, ax.dim)
                continue
            left, n_in, n_out = pads[2 * k], x.shape[ax.dim], out.shape[ax.dim]
            if name == "constant_pad_nd":  # negative padding crops: the same shift
                fn = lambda q, left=left: [(q - left, None)]
            else:
                def fn(q, left=left, n_in=n_in, n_out=n_out, reflect="reflection" in name):
                    src = q - left
                    inside = (q >= 0) & (q < n_out)
                    edge = np.where(src < 0, -src, 2 * (n_in - 1) - src) if reflect else np.clip(src, 0, n_in - 1)
                    return [(np.where(inside & ((src < 0) | (src >= n_in)), edge, src), None)]
            fld[axname] = Axis(ax.dim, n_out, ax.jump, [("taps", ax, fn)])
        return fld

    def upsample(self, name, args, out) -> Field:
        x = args.get("input", args.get("self"))
        src = self.fields[x.id]
        ndim = len(x.shape)
        nsp = {"1d": 1, "2d": 2, "3d": 3}[name[-2:]]
        scales = args.get("scale_factors")
        if scales is None:
            scales = [args.get(k) for k in ("scales_d", "scales_h", "scales_w", "scales") if k in args][-nsp:]
        linear = "linear" in name or "bilinear" in name or "bicubic" in name
        fld = {}
        for axname, ax in src.items():
            i = ax.dim - (ndim - nsp) if ax.dim is not None else -1
            if i < 0:
                fld[axname] = _same(ax, ax.dim)
                continue
            n_in, n_out = x.shape[ax.dim], out.shape[ax.dim]
            given = scales[i] if scales and i < len(scales) and scales[i] else None
            fn = _upsample_taps(name, n_in, n_out, given, bool(args.get("align_corners")), linear)
            fld[axname] = Axis(ax.dim, n_out, ax.jump * Fraction(n_in, n_out), [("taps", ax, fn)])
        return fld

    def cat(self, name, args, out) -> Field:
        refs = [r for r in args["tensors"] if isinstance(r, TensorRef)]
        ndim = len(out.shape)
        dim = args.get("dim", 0) % ndim
        fld = {}
        for axname in self.axes:
            links, jumps, target, offset = [], [], None, 0
            for ref in refs:
                ax = self.fields.get(ref.id, {}).get(axname)
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
                fld[axname] = Axis(target, n, max(jumps), links, merge=self._merge_label(name, out, links))
        return fld

    def shuffle(self, name, args, x, out) -> Field:
        ndim = len(x.shape)
        r = args.get("upscale_factor") or args.get("downscale_factor")
        fld = {}
        for axname, ax in self.fields[x.id].items():
            if ax.dim is None or ax.dim < ndim - 2:
                fld[axname] = _same(ax, ax.dim) if ax.dim != ndim - 3 else _whole([ax], ax.dim)
            elif name == "pixel_shuffle":
                fld[axname] = Axis(ax.dim, out.shape[ax.dim], ax.jump / r,
                                   [("taps", ax, lambda q: [(np.floor_divide(q, r), None)])])
            else:
                fld[axname] = Axis(ax.dim, out.shape[ax.dim], ax.jump * r,
                                   [("taps", ax, lambda q: [(q * r + t, None) for t in range(r)])])
        return fld

    def flip(self, args, x, out) -> Field:
        ndim = len(x.shape)
        dims = {d % ndim for d in args["dims"]}
        fld = {}
        for name, ax in self.fields[x.id].items():
            if ax.dim in dims:
                fld[name] = Axis(ax.dim, ax.n, ax.jump, [("taps", ax, lambda q, n=ax.n: [(n - 1 - q, None)])])
            else:
                fld[name] = _same(ax, ax.dim)
        return fld

    def softmax(self, args, x, out) -> Field:
        dim = args["dim"] % len(x.shape)
        fld = {}
        for name, ax in self.fields[x.id].items():
            if ax.dim == dim:  # every output reads every position along the axis
                fld[name] = Axis(dim, ax.n, ax.jump * ax.n,
                                 [("taps", ax, lambda q, n=ax.n: [(np.full_like(q, t), None) for t in range(n)])])
            else:
                fld[name] = _same(ax, ax.dim)
        return fld

    def pointwise(self, op, ins, out) -> Field:
        """Elementwise with broadcasting: each output unit reads the same position of every operand."""
        ndim = len(out.shape)
        fld = {}
        for axname in self.axes:
            links, jumps, target = [], [], None
            for ref in ins:
                ax = self.fields.get(ref.id, {}).get(axname)
                if ax is None:
                    continue
                shift = ndim - len(ref.shape)
                if ax.dim is not None and ref.shape[ax.dim] == out.shape[ax.dim + shift]:
                    target = ax.dim + shift
                    links.append(("taps", ax, lambda q: [(q, None)]))
                    jumps.append(ax.jump)
                else:  # broadcast from size 1, or an axis already reduced away
                    links.append(("taps", ax, lambda q: [(np.zeros_like(q), None)]))
                    if ax.dim is not None:
                        target = target if target is not None else ax.dim + shift
            if not links:
                continue
            n = out.shape[target] if target is not None else 1
            jump = max(jumps) if jumps else max(link[1].jump for link in links)
            label = self._merge_label(op.op._opname, out, links) if len(jumps) > 1 else None
            fld[axname] = Axis(target, n, jump, links, merge=label)
        return fld

    def collapse(self, ins, out) -> Field:
        fld = {}
        for axname in self.axes:
            srcs = [self.fields[r.id][axname] for r in ins if axname in self.fields[r.id]]
            if srcs:
                fld[axname] = _whole(srcs, None)
        return fld

    def _merge_label(self, opname, out, links) -> str | None:
        return f"aten.{opname} at {self._where(out)}" if len(links) > 1 else None

    def _where(self, out) -> str:
        for op in reversed(self.tr.ops):
            if any(r.id == out.id for r in op.outputs):
                return op.module or "(root)"
        return "(root)"


def _roll_taps(shift, n):
    """A cyclic shift inside the tensor; outside it (padding read by a consumer) a plain translation."""
    return lambda q: [(np.where((q >= 0) & (q < n), np.mod(q - shift, n), q - shift), None)]


def _place(shape, stride, n):
    """(dim, inner) where an axis of n positions at element stride `stride` (row-major) lies within one dim of
    `shape`, at index // inner % n; None when it spans several dims (split)."""
    for m in range(len(shape)):
        step = math.prod(shape[m + 1:])
        if stride % step == 0 and (step * shape[m]) % (stride * n) == 0:
            return m, stride // step
        if step < stride * n and step > stride:
            return None
    return None


def _upsample_taps(name, n_in, n_out, given, align, linear):
    """torch's source positions: nearest floor(q * scale), nearest-exact floor((q + .5) * scale), linear
    interpolation between floor(src) and the next position when its weight is not zero."""
    scale = 1.0 / given if given else n_in / n_out

    def taps(q):
        inside = (q >= 0) & (q < n_out)
        if not linear:
            shift = 0.5 if "exact" in name else 0.0
            idx = np.floor((q + shift) * scale).astype(np.int64)
            return [(np.where(inside, np.minimum(idx, n_in - 1), idx), None)]
        if align:
            src = q * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        else:
            src = scale * (q + 0.5) - 0.5
            src = np.where(inside, np.maximum(src, 0.0), src)
        low = np.floor(src).astype(np.int64)
        frac = src - low
        second = (frac > 0) & ~(inside & (low >= n_in - 1))
        if "bicubic" in name:
            return [(low + t, None) for t in (-1, 0)] + [(low + 1, second), (low + 2, second)]
        return [(low, None), (low + 1, second)]
    return taps


# Operators whose outputs carry no information about their tensor arguments' values.
_NO_DATA = {"empty_like", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "randint_like",
            "new_zeros", "new_ones", "new_empty", "new_full", "new_empty_strided", "empty", "zeros", "ones",
            "full", "arange", "scalar_tensor", "fill_", "zero_", "sym_size", "sym_stride", "size", "stride",
            "_local_scalar_dense", "empty_strided", "fill"}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "prod",
               "logsumexp", "norm", "linalg_vector_norm", "argmax", "argmin", "all", "any", "count_nonzero"}
_VIEWS = {"view", "_unsafe_view", "reshape", "_reshape_alias", "view_copy", "squeeze", "unsqueeze", "flatten",
          "unflatten", "alias", "squeeze_copy", "unsqueeze_copy", "_unsafe_view_copy", "lift_fresh_copy"}
_MATMULS = {"mm", "addmm", "bmm"}
_NORMS = {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
          "_native_batch_norm_legit_functional", "native_group_norm", "native_layer_norm", "cudnn_batch_norm",
          "miopen_batch_norm", "_batch_norm_impl_index", "batch_norm"}
# Shape-preserving, position-preserving operators that torch does not tag as pointwise.
_ELEMENTWISE = {"clone", "contiguous", "detach", "_to_copy", "to", "dropout", "native_dropout", "alpha_dropout",
                "feature_alpha_dropout", "_conj", "resolve_conj", "resolve_neg", "prelu", "_prelu_kernel",
                "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "gelu", "gelu_", "silu",
                "silu_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "mish", "mish_", "softplus",
                "threshold", "threshold_", "rrelu_with_noise", "celu", "selu", "glu", "relu6", "masked_fill",
                "masked_fill_", "where", "clamp", "clamp_", "lerp", "addcmul", "addcdiv", "logit", "nan_to_num"}


def solve(tr: Trace) -> Graph:
    """Propagate receptive fields through the traced graph: layout pass, required ranges, then windows."""
    builder = _Builder(tr)
    graph = builder.run()
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
    return graph


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
