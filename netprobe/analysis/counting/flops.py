"""Counting rules: one formula per aten operator, each a pure function of the shapes the trace recorded.

Convention:
- MACs are the multiply-accumulates of convolution (plain, transposed, grouped, dilated) and of matrix
  products (mm, addmm, bmm, baddbmm, mv, addmv, dot; `linear`, `matmul` and `einsum` reach these). This
  is the convention behind torchvision's published GFLOPS, which are GMACs. Bias additions are not MACs.
- FLOPs = 2 x MACs (a multiply and an add each) + the elementwise work, counted per element:
  bias add, additions, multiplications, divisions, activations and other pointwise ops: 1;
  batch norm at inference: 2 (a scale and a shift); norms that compute statistics (layer, group, instance,
  batch norm in training): 5; softmax: 3 (exp, sum, divide); max and average pooling: one per window
  element per output; adaptive pooling, mean and sum: one per input element; bilinear upsampling: 7.
- Backward operators (for `netprobe.count`): convolution_backward costs the forward's MACs once per gradient
  it computes (input, weight), plus one per output element for the bias; activation backwards 1 per element;
  (log-)softmax backward 4 (multiply, sum, multiply or exp, subtract); batch norm backward 5; pooling
  backward 1 per input element; the negative log-likelihood 1 per row, its backward nothing (a scatter).
- Data movement (cat, pad, copy, fresh tensors, nearest upsampling) costs nothing. Views and metadata
  operators are skipped. Any other operator is reported as seen but not counted, never silently as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from netprobe.analysis.counting.trace import OpCall
from netprobe.registries import registrar

aten = torch.ops.aten


@dataclass(frozen=True)
class Count:
    """Work of one operator: multiply-accumulates and FLOPs (FLOPs include 2 x MACs)."""

    macs: int = 0
    flops: int = 0


FORMULAS: dict = {}  # operator packet (aten.convolution) -> formula(*args, out=..., **kwargs) -> Count


formula = registrar(FORMULAS, "formula")  # @formula(aten.op, ...): a second one for an operator is refused


def _numel(shape) -> int:
    return math.prod(shape)


@formula(aten.convolution, aten._convolution)
def conv(x, w, bias, stride, padding, dilation, transposed, output_padding, groups, *rest, out, **kwargs):
    """Each output (input, if transposed) element takes in_channels/groups x kernel multiply-accumulates."""
    per_element = w.shape[1] * _numel(w.shape[2:])  # w is (out, in/groups, *k), or (in, out/groups, *k) transposed
    macs = (_numel(x.shape) if transposed else _numel(out[0].shape)) * per_element
    return Count(macs, 2 * macs + (_numel(out[0].shape) if bias is not None else 0))


def _matmul(a, b) -> int:
    return _numel(a.shape) * b.shape[-1]  # (..., m, k) @ (..., k, n): m*k*n per batch


@formula(aten.mm, aten.bmm)
def mm(a, b, *rest, out, **kwargs):
    """m*k*n multiply-accumulates (per batch for bmm)."""
    macs = _matmul(a, b)
    return Count(macs, 2 * macs)


@formula(aten.addmm, aten.baddbmm)
def addmm(bias, a, b, *rest, out, **kwargs):
    """A matrix product plus one addition per output element."""
    macs = _matmul(a, b)
    return Count(macs, 2 * macs + _numel(out[0].shape))


@formula(aten.mv, aten.dot)
def mv(a, b, *rest, out, **kwargs):
    """(m, k) @ (k,): m*k multiply-accumulates; a dot product of length k: k."""
    macs = _numel(a.shape)
    return Count(macs, 2 * macs)


@formula(aten.addmv)
def addmv(bias, a, b, *rest, out, **kwargs):
    """A matrix-vector product plus one addition per output element."""
    macs = _numel(a.shape)
    return Count(macs, 2 * macs + _numel(out[0].shape))


def _per_output(per_element: int):
    def count(*args, out, **kwargs):
        return Count(0, per_element * _numel(out[0].shape))

    count.__doc__ = f"{per_element} FLOP(s) per output element."
    return count


_POINTWISE = ("add", "sub", "mul", "div", "rsub", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "pow", "reciprocal",
              "maximum", "minimum", "where", "relu", "leaky_relu", "hardtanh", "elu", "gelu", "silu", "sigmoid", "tanh",
              "hardswish", "hardsigmoid", "mish", "softplus", "clamp", "clamp_min", "clamp_max", "threshold",
              "prelu", "_prelu_kernel", "addcmul", "addcdiv", "lerp", "square", "erf", "log_sigmoid_forward")


def _packets(names):
    """The packets among `names` and their in-place forms that this torch build has."""
    found = []
    for name in names:
        for variant in (name, name + "_"):
            if hasattr(aten, variant) and getattr(aten, variant) not in found:
                found.append(getattr(aten, variant))
    return found


formula(*_packets(_POINTWISE))(_per_output(1))
formula(*_packets(("_softmax", "_log_softmax", "_safe_softmax")))(_per_output(3))
formula(*_packets(("threshold_backward", "sigmoid_backward", "tanh_backward", "gelu_backward", "silu_backward",
                   "hardtanh_backward", "hardswish_backward", "hardsigmoid_backward", "leaky_relu_backward",
                   "elu_backward", "max_pool2d_with_indices_backward", "avg_pool2d_backward",
                   "_adaptive_avg_pool2d_backward")))(_per_output(1))
formula(*_packets(("_softmax_backward_data", "_log_softmax_backward_data")))(_per_output(4))
formula(*_packets(("native_batch_norm_backward", "native_layer_norm_backward", "native_group_norm_backward")))(
    _per_output(5))


@formula(aten.convolution_backward)
def conv_backward(grad, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups, mask, *,
                  out, **kwargs):
    """The forward's MACs for each of the input and weight gradients asked for; the bias gradient sums grad."""
    forward = (_numel(x.shape) if transposed else _numel(grad.shape)) * w.shape[1] * _numel(w.shape[2:])
    macs = forward * (int(mask[0]) + int(mask[1]))
    return Count(macs, 2 * macs + (_numel(grad.shape) if mask[2] else 0))


@formula(aten.nll_loss_forward, aten.nll_loss2d_forward)
def nll_loss(x, *args, out, **kwargs):
    """One per picked log-probability (a row of the scores)."""
    return Count(0, _numel(x.shape) // x.shape[-1 if len(x.shape) == 1 else 1] if x.shape else 1)
formula(aten.upsample_bilinear2d)(_per_output(7))


@formula(aten.native_batch_norm, aten._native_batch_norm_legit, aten._native_batch_norm_legit_no_training)
def batch_norm(x, *args, out, **kwargs):
    """2 per element at inference (a folded scale and shift), 5 when statistics are computed."""
    training = next((a for a in args if isinstance(a, bool)), False)
    return Count(0, (5 if training else 2) * _numel(x.shape))


@formula(aten.native_layer_norm, aten.native_group_norm)
def stats_norm(x, *args, out, **kwargs):
    """5 per element: mean, variance, normalise, scale and shift."""
    return Count(0, 5 * _numel(x.shape))


def _pool(dims: int):
    def count(x, kernel_size, *args, out, **kwargs):
        kernel = list(kernel_size) * dims if len(kernel_size) == 1 else list(kernel_size)
        return Count(0, _numel(out[0].shape) * _numel(kernel))

    count.__doc__ = f"{dims}-d pooling: one per window element for every output element."
    return count


formula(aten.max_pool1d, aten.avg_pool1d)(_pool(1))
formula(aten.max_pool2d, aten.max_pool2d_with_indices, aten.avg_pool2d)(_pool(2))
formula(aten.max_pool3d, aten.max_pool3d_with_indices, aten.avg_pool3d)(_pool(3))


def _window_total(size_in: int, size_out: int) -> int:
    """Summed window lengths of adaptive pooling along one dimension (PyTorch's start/end rule)."""
    return sum(-(-(i + 1) * size_in // size_out) - (i * size_in // size_out) for i in range(size_out))


@formula(aten._adaptive_avg_pool2d, aten._adaptive_avg_pool3d, aten.adaptive_max_pool2d, aten.adaptive_max_pool3d)
def adaptive_pool(x, output_size, *args, out, **kwargs):
    """One per element of every window: the input size when windows do not overlap."""
    spatial = len(output_size)
    lead = _numel(x.shape[:-spatial])
    return Count(0, lead * math.prod(_window_total(i, o) for i, o in zip(x.shape[-spatial:], out[0].shape[-spatial:])))


@formula(aten.mean, aten.sum)
def reduce(x, *args, out, **kwargs):
    """One per input element."""
    return Count(0, _numel(x.shape))


FREE = {op for op in _packets((
    "cat", "stack", "constant_pad_nd", "copy", "clone", "_to_copy", "empty", "empty_like", "empty_strided", "zeros",
    "zeros_like", "ones", "ones_like", "full", "full_like", "fill", "zero", "new_zeros", "new_empty", "new_ones",
    "new_full", "lift_fresh_copy", "scalar_tensor", "arange", "repeat",
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "reflection_pad2d", "replication_pad2d",
    "index_select", "gather", "flip", "roll", "contiguous", "masked_fill", "nll_loss_backward", "slice_backward",
    "nll_loss2d_backward"))}


# Operators that return an existing tensor or a view of one without saying so in their schema.
METADATA = set(_packets(("_unsafe_view", "lift_fresh", "alias", "detach", "_reshape_alias")))


def is_free(op: OpCall) -> bool:
    """Views, metadata and data movement: no arithmetic."""
    packet = op.op.overloadpacket
    return op.op.is_view or packet in METADATA or packet in FREE or op.op.namespace == "profiler"


def count(op: OpCall) -> Count | None:
    """The work of one traced operator, None if netprobe has no formula for it (and it is not free)."""
    fn = FORMULAS.get(op.op.overloadpacket)
    if fn is None:
        return Count() if is_free(op) else None
    return fn(*op.args, out=op.outputs, **op.kwargs)


def allocates(op: OpCall) -> bool:
    """Whether the operator's first output is fresh memory (not a view of, or written into, an input)."""
    returns = op.op._schema.returns
    return (bool(op.outputs) and bool(returns) and returns[0].alias_info is None
            and op.op.overloadpacket not in METADATA)


def output_bytes(op: OpCall) -> int:
    """Bytes of the first output if the operator allocates it, else 0."""
    return op.outputs[0].nbytes if allocates(op) else 0


__all__ = ["Count", "FORMULAS", "allocates", "count", "formula", "is_free", "output_bytes"]
