"""Receptive-field rules of the windowed operators: convolution, pooling, upsampling, padding, pixel shuffle,
softmax and reductions. Each output unit reads a window (or all) of its input's positions along each axis."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from netprobe.analysis.fields.propagate import Axis, same, whole
from netprobe.analysis.fields.rules import aten, packets, pick, rule


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


@rule(aten.convolution, aten._convolution, aten.convolution_overrideable)
def conv(state, op, args, ins) -> list:
    """Output q reads taps stride * q - padding + dilation * t (transposed: the inputs that write q)."""
    out = op.outputs[0]
    kernel = args["weight"].shape[2:]
    fld = {}
    for name, ax in state.fields[args["input"].id].items():
        i = ax.dim - 2 if ax.dim is not None else -1
        if i < 0:  # batch passes through; channels all mix
            fld[name] = same(ax, ax.dim) if ax.dim == 0 else whole([ax], ax.dim)
            continue
        s, p, d = pick(args["stride"], i, 1), pick(args["padding"], i, 0), pick(args["dilation"], i, 1)
        n = out.shape[ax.dim]
        if args["transposed"]:
            fld[name] = Axis(ax.dim, n, ax.jump / s, [("taps", ax, _transposed_taps(s, p, d, kernel[i]))])
        else:
            fld[name] = Axis(ax.dim, n, ax.jump * s, [("taps", ax, _window_taps(s, p, d, kernel[i]))])
    return [fld]


@rule(*packets(("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
                "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d", "mkldnn_max_pool2d",
                "mkldnn_max_pool3d", "quantized_max_pool1d", "quantized_max_pool2d", "quantized_max_pool3d")))
def pool(state, op, args, ins) -> list:
    """A window of kernel_size taps per output, like a convolution (stride defaults to the kernel)."""
    out = op.outputs[0]
    spatial = int(op.op._opname.split("pool")[1][0])  # max_pool2d_with_indices -> 2
    ndim = len(args["self"].shape)
    fld = {}
    for axname, ax in state.fields[args["self"].id].items():
        i = ax.dim - (ndim - spatial) if ax.dim is not None else -1
        if i < 0:
            fld[axname] = same(ax, ax.dim)
            continue
        k = pick(args["kernel_size"], i, 1)
        s = pick(args["stride"], i, k)
        p, d = pick(args.get("padding"), i, 0), pick(args.get("dilation"), i, 1)
        fld[axname] = Axis(ax.dim, out.shape[ax.dim], ax.jump * s, [("taps", ax, _window_taps(s, p, d, k))])
    return [fld] + [None] * (len(op.outputs) - 1)


@rule(*packets(("_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
                "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
                "mkldnn_adaptive_avg_pool2d")))
def adaptive(state, op, args, ins) -> list:
    """torch's adaptive windows; an output of size 1 (global pooling) sees the whole input."""
    x, out = args["self"], op.outputs[0]
    sizes = list(out.shape[len(out.shape) - len(args["output_size"]):])
    first = len(out.shape) - len(sizes)
    fld = {}
    for name, ax in state.fields[x.id].items():
        if ax.dim is None or ax.dim < first:
            fld[name] = same(ax, ax.dim)
            continue
        n_in, n_out = x.shape[ax.dim], out.shape[ax.dim]
        if n_out == 1:
            fld[name] = whole([ax], ax.dim)
            continue
        # torch's adaptive windows: [floor(q * n_in / n_out), ceil((q + 1) * n_in / n_out))
        fn = _range_taps(lambda q: (q * n_in) // n_out, lambda q: -((-(q + 1) * n_in) // n_out) - 1,
                         -(-n_in // n_out) + 1)
        fld[name] = Axis(ax.dim, n_out, ax.jump * Fraction(n_in, n_out), [("taps", ax, fn)])
    return [fld] + [None] * (len(op.outputs) - 1)


@rule(*packets(("mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "prod",
                "logsumexp", "norm", "linalg_vector_norm", "argmax", "argmin", "all", "any", "count_nonzero")))
def reduce(state, op, args, ins) -> list:
    """A reduced axis sees its whole input (and is gone unless keepdim); other axes keep their positions."""
    x = ins[0]
    dims = args.get("dim")
    if dims is None or dims == []:
        dims = list(range(len(x.shape)))
    dims = {d % max(len(x.shape), 1) for d in ([dims] if isinstance(dims, int) else dims)}
    keep = bool(args.get("keepdim"))
    fld = {}
    for name, ax in state.fields[x.id].items():
        if ax.dim is None:
            fld[name] = same(ax, None)
        elif ax.dim in dims:
            fld[name] = whole([ax], ax.dim if keep else None)
        else:
            fld[name] = same(ax, ax.dim if keep else ax.dim - sum(d < ax.dim for d in dims))
    return [fld] * len(op.outputs)


@rule(*packets(("constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
                "replication_pad1d", "replication_pad2d", "replication_pad3d")))
def pad(state, op, args, ins) -> list:
    """A shift by the left padding; reflected or replicated borders read the mirrored or edge position."""
    x, out, name = ins[0], op.outputs[0], op.op._opname
    pads = list(args.get("pad") or args.get("padding"))
    ndim = len(x.shape)
    fld = {}
    for axname, ax in state.fields[x.id].items():
        k = ndim - 1 - ax.dim if ax.dim is not None else -1
        if k < 0 or 2 * k >= len(pads):
            fld[axname] = same(ax, ax.dim)
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
    return [fld]


@rule(*packets(("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
                "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "upsample_linear1d",
                "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d")))
def upsample(state, op, args, ins) -> list:
    """Output q reads the source positions torch interpolates from (one for nearest, two or four for linear)."""
    name, out = op.op._opname, op.outputs[0]
    x = args.get("input", args.get("self"))
    ndim = len(x.shape)
    nsp = {"1d": 1, "2d": 2, "3d": 3}[name[-2:]]
    scales = args.get("scale_factors")
    if scales is None:
        scales = [args.get(k) for k in ("scales_d", "scales_h", "scales_w", "scales") if k in args][-nsp:]
    linear = "linear" in name or "bilinear" in name or "bicubic" in name
    fld = {}
    for axname, ax in state.fields[x.id].items():
        i = ax.dim - (ndim - nsp) if ax.dim is not None else -1
        if i < 0:
            fld[axname] = same(ax, ax.dim)
            continue
        n_in, n_out = x.shape[ax.dim], out.shape[ax.dim]
        given = scales[i] if scales and i < len(scales) and scales[i] else None
        fn = _upsample_taps(name, n_in, n_out, given, bool(args.get("align_corners")), linear)
        fld[axname] = Axis(ax.dim, n_out, ax.jump * Fraction(n_in, n_out), [("taps", ax, fn)])
    return [fld]


@rule(aten.pixel_shuffle, aten.pixel_unshuffle)
def shuffle(state, op, args, ins) -> list:
    """Pixel shuffle: output q reads q // r; unshuffle: output q reads the r positions from q * r."""
    x, out = ins[0], op.outputs[0]
    ndim = len(x.shape)
    r = args.get("upscale_factor") or args.get("downscale_factor")
    fld = {}
    for axname, ax in state.fields[x.id].items():
        if ax.dim is None or ax.dim < ndim - 2:
            fld[axname] = same(ax, ax.dim) if ax.dim != ndim - 3 else whole([ax], ax.dim)
        elif op.op._opname == "pixel_shuffle":
            fld[axname] = Axis(ax.dim, out.shape[ax.dim], ax.jump / r,
                               [("taps", ax, lambda q: [(np.floor_divide(q, r), None)])])
        else:
            fld[axname] = Axis(ax.dim, out.shape[ax.dim], ax.jump * r,
                               [("taps", ax, lambda q: [(q * r + t, None) for t in range(r)])])
    return [fld]


@rule(*packets(("_softmax", "_log_softmax", "softmax", "log_softmax")))
def softmax(state, op, args, ins) -> list:
    """Every output reads every position along the softmax dimension."""
    x = ins[0]
    dim = args["dim"] % len(x.shape)
    fld = {}
    for name, ax in state.fields[x.id].items():
        if ax.dim == dim:
            fld[name] = Axis(dim, ax.n, ax.jump * ax.n,
                             [("taps", ax, lambda q, n=ax.n: [(np.full_like(q, t), None) for t in range(n)])])
        else:
            fld[name] = same(ax, ax.dim)
    return [fld]
