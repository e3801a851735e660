"""A node's detail in the papers' words ("1x1 conv, 96", "3x3 max pool, /2"), from its traced operators."""

from __future__ import annotations

from netprobe.analysis.counting.opgraph import TensorRef

_POOLS = {"max_pool1d": "max", "max_pool2d": "max", "max_pool3d": "max", "max_pool1d_with_indices": "max",
          "max_pool2d_with_indices": "max", "max_pool3d_with_indices": "max", "avg_pool1d": "avg",
          "avg_pool2d": "avg", "avg_pool3d": "avg"}
_ADAPTIVE = {"_adaptive_avg_pool2d": "avg", "adaptive_avg_pool2d": "avg", "adaptive_max_pool2d": "max",
             "_adaptive_avg_pool1d": "avg", "_adaptive_avg_pool3d": "avg"}


def _kernel(sizes) -> str:
    return "x".join(str(k) for k in sizes)


def _stride(stride, kernel) -> str:
    """', /2' for a stride of 2 (the downsampling the papers mark); nothing for stride 1."""
    stride = list(stride) if stride else list(kernel)  # pools default their stride to the kernel
    return "" if all(s == 1 for s in stride) else f", /{_kernel(stride) if len(set(stride)) > 1 else stride[0]}"


def conv_detail(args) -> str:
    """'3x3 conv, 64, /2' (plain), '2x2 up-conv, 512' (transposed), with ', groups G' when grouped."""
    weight, stride, transposed, groups = args[1], args[3], args[6], args[8]
    kernel = weight.shape[2:]
    out = weight.shape[1] * groups if transposed else weight.shape[0]
    text = f"{_kernel(kernel)} {'up-conv' if transposed else 'conv'}, {out}"
    text += "" if transposed else _stride(stride, [1])
    return text + (f", groups {groups}" if groups > 1 else "")


def pool_detail(kind: str, args) -> str:
    """'3x3 max pool, /2' from a pooling operator's kernel and stride arguments."""
    kernel = list(args[1]) if isinstance(args[1], (list, tuple)) else [args[1]]
    stride = args[2] if len(args) > 2 else []
    stride = list(stride) if isinstance(stride, (list, tuple)) else [stride]
    return f"{_kernel(kernel)} {kind} pool{_stride(stride, kernel)}"


def describe(op) -> str | None:
    """The detail of one operator, None for operators the papers do not annotate."""
    name = op.op._opname
    if name in ("convolution", "_convolution"):
        return conv_detail(op.args)
    if name in _POOLS:
        return pool_detail(_POOLS[name], op.args)
    if name in _ADAPTIVE:
        return f"adaptive {_ADAPTIVE[name]} pool > {_kernel(op.outputs[0].shape[2:])}"
    if name in ("addmm", "mm") and isinstance(op.args[-1], TensorRef) and len(op.args[-1].shape) == 2:
        return f"{op.args[-1].shape[0]} > {op.args[-1].shape[1]}"  # a linear layer: in > out features
    return None


def detail(ops) -> str:
    """What a node does in one phrase: the detail of its one annotated operator, or how many it holds."""
    found = [d for d in map(describe, ops) if d]
    if len(found) <= 1:
        return found[0] if found else ""
    convs = sum("conv" in d for d in found)
    return f"{convs} convs" if convs else f"{len(found)} layers"
