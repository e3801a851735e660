"""Output metadata of the operators CNNs use most, computed directly so a trace avoids torch's Python meta kernels.

Many meta kernels are written in Python (torch._refs, torch._meta_registrations); the first one a process
calls imports sympy and torch._dynamo, about two seconds, and each later call costs up to a millisecond. These
rules give the same shapes, strides and dtypes for contiguous inputs and decline (return None) anything
else, including invalid arguments, which then go to the real kernel and its error message.
"""

from __future__ import annotations

import math

import torch

from netprobe.registries import registrar

aten = torch.ops.aten
RULES: dict = {}  # OpOverload -> rule(*args, **kwargs) -> outputs, or None to use the real kernel


rule = registrar(RULES, "output rule")  # @rule(aten.op, ...)


def outputs(func, args, kwargs):
    """The outputs `func` would return on meta tensors, or None when no rule applies."""
    fn = RULES.get(func)
    return None if fn is None else fn(*args, **kwargs)


def _plain(*tensors) -> bool:
    """Contiguous floating-point meta tensors of one dtype: the case every rule handles."""
    first = tensors[0]
    return all(isinstance(t, torch.Tensor) and t.is_meta and t.is_contiguous() and t.is_floating_point()
               and t.dtype == first.dtype for t in tensors)


def _empty(shape, like: torch.Tensor) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device="meta")


_UNARY = ("relu", "sigmoid", "tanh", "gelu", "silu", "hardtanh", "hardswish", "hardsigmoid", "leaky_relu", "elu",
          "neg", "exp", "sqrt", "rsqrt", "abs", "clamp", "clamp_min", "clamp_max")


@rule(aten.pow.Tensor_Scalar, *[getattr(aten, name).default for name in _UNARY])
def unary(x, *args, **kwargs):
    """Pointwise with scalar arguments: a fresh tensor like the input."""
    if not _plain(x) or any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
        return None
    return _empty(x.shape, x)


@rule(aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor)
def binary(a, b, **kwargs):
    """A tensor and one that broadcasts to its shape, or a Python number: a fresh tensor like the first."""
    if kwargs.get("rounding_mode") is not None:
        return None
    if isinstance(b, torch.Tensor) and not (_plain(a, b) and b.dim() <= a.dim() and all(
            sb in (1, sa) for sa, sb in zip(reversed(a.shape), reversed(b.shape)))):
        return None
    if not isinstance(b, torch.Tensor) and not (_plain(a) and isinstance(b, (int, float)) and not isinstance(b, bool)):
        return None
    return _empty(a.shape, a)


@rule(aten.relu_.default, aten.hardtanh_.default, aten.leaky_relu_.default, aten.sigmoid_.default,
      aten.clamp_.default, aten.clamp_min_.default, aten.add_.Tensor, aten.sub_.Tensor, aten.mul_.Tensor,
      aten.div_.Tensor)
def inplace(x, *args, **kwargs):
    """In place with scalars or a same-shape tensor: the input itself."""
    others = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if not _plain(x, *others) or any(o.shape != x.shape for o in others) or kwargs.get("rounding_mode"):
        return None
    return x


@rule(aten.native_batch_norm.default, aten._native_batch_norm_legit.default,
      aten._native_batch_norm_legit_no_training.default)
def batch_norm(x, weight, bias, *args, **kwargs):
    """(output like the input, per-channel mean, per-channel inverse std)."""
    stats = [t for t in (weight, bias, *args[:2]) if isinstance(t, torch.Tensor)]
    if not _plain(x, *stats) or x.dim() < 2 or any(tuple(t.shape) != (x.shape[1],) for t in stats):
        return None
    channels = x.shape[1]
    return _empty(x.shape, x), _empty((channels,), x), _empty((channels,), x)


@rule(aten.convolution.default)
def convolution(x, w, bias, stride, padding, dilation, transposed, output_padding, groups):
    """Batched 1/2/3-d convolution, plain or transposed, on contiguous inputs."""
    if not _plain(x, w) or x.dim() != w.dim() or x.dim() < 3 or (bias is not None and not _plain(bias)):
        return None
    n, k = x.dim() - 2, w.shape[2:]
    if not (len(stride) == len(padding) == len(dilation) == len(output_padding) == n) or groups < 1:
        return None
    if transposed:
        if x.shape[1] != w.shape[0] or w.shape[0] % groups:
            return None
        channels = w.shape[1] * groups
        spatial = [(i - 1) * s - 2 * p + d * (kk - 1) + op + 1 for i, s, p, d, kk, op
                   in zip(x.shape[2:], stride, padding, dilation, k, output_padding)]
    else:
        if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
            return None
        channels = w.shape[0]
        spatial = [(i + 2 * p - d * (kk - 1) - 1) // s + 1 for i, s, p, d, kk
                   in zip(x.shape[2:], stride, padding, dilation, k)]
    if bias is not None and tuple(bias.shape) != (channels,):
        return None
    if any(v <= 0 for v in spatial) or any(v <= 0 for v in x.shape):
        return None
    return _empty((x.shape[0], channels, *spatial), x)


@rule(aten.addmm.default, aten.mm.default, aten.bmm.default)
def matmul(*args, **kwargs):
    """(m, k) @ (k, n), batched for bmm; addmm's bias must broadcast to the result."""
    if kwargs:
        return None
    bias, a, b = (args[0], args[1], args[2]) if len(args) >= 3 else (None, args[0], args[1])
    tensors = [t for t in (bias, a) if t is not None]
    if not _plain(*tensors) or not b.is_meta or b.dtype != a.dtype or b.dim() != a.dim() or a.dim() not in (2, 3):
        return None
    if a.shape[-1] != b.shape[-2] or a.shape[:-2] != b.shape[:-2]:
        return None
    shape = (*a.shape[:-1], b.shape[-1])
    if bias is not None and (bias.dim() > 2 or tuple(bias.shape) not in ((shape[-1],), shape)):
        return None
    return _empty(shape, a)


@rule(aten.mean.dim)
def mean(x, dims, keepdim=False, **kwargs):
    """Mean over `dims` of a contiguous tensor."""
    if kwargs or not _plain(x) or not dims:
        return None
    axes = {d % x.dim() for d in dims}
    shape = [1 if i in axes else s for i, s in enumerate(x.shape) if keepdim or i not in axes]
    return _empty(shape, x)


@rule(aten.cat.default)
def cat(tensors, dim=0):
    """Concatenation of contiguous tensors that agree on every other dimension."""
    if not tensors or not _plain(*tensors) or len({t.dim() for t in tensors}) != 1 or tensors[0].dim() == 0:
        return None
    dim %= tensors[0].dim()
    rest = {tuple(s for i, s in enumerate(t.shape) if i != dim) for t in tensors}
    if len(rest) != 1:
        return None
    shape = list(tensors[0].shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return _empty(shape, tensors[0])


@rule(aten._adaptive_avg_pool2d.default)
def adaptive_avg_pool2d(x, output_size):
    """(N, C, *output_size) for a contiguous batched input."""
    if not _plain(x) or x.dim() != 4 or len(output_size) != 2 or min(output_size) <= 0 or math.prod(x.shape) == 0:
        return None
    return _empty((*x.shape[:2], *output_size), x)


@rule(aten._softmax.default, aten._log_softmax.default)
def softmax(x, dim, half_to_float):
    """Like the input."""
    return _empty(x.shape, x) if _plain(x) and not half_to_float else None


def _pooled(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's pooling_output_shape: a window may not start in the right padding."""
    span = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)
    out = span // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_shape(x, kernel_size, stride, padding, dilation, ceil_mode):
    def pair(v, default=None):
        v = list(v) if v else default
        return v * 2 if v is not None and len(v) == 1 else v

    k, s, p, d = pair(kernel_size), pair(stride, kernel_size), pair(padding), pair(dilation)
    if not _plain(x) or x.dim() != 4 or any(v is None or len(v) != 2 for v in (k, s, p, d)):
        return None
    if any(pp > kk // 2 for pp, kk in zip(p, k)) or min(*k, *s, *d) <= 0 or min(p) < 0:
        return None
    spatial = [_pooled(i, kk, ss, pp, dd, ceil_mode) for i, kk, ss, pp, dd in zip(x.shape[2:], k, s, p, d)]
    return None if min(spatial) <= 0 or min(x.shape) <= 0 else (*x.shape[:2], *spatial)


@rule(aten.max_pool2d_with_indices.default)
def max_pool2d(x, kernel_size, stride=(), padding=(0,), dilation=(1,), ceil_mode=False):
    """(output, int64 indices) of a batched 2-d max pool."""
    shape = _pool_shape(x, kernel_size, stride, padding, dilation, ceil_mode)
    return None if shape is None else (_empty(shape, x), torch.empty(shape, dtype=torch.int64, device="meta"))


@rule(aten.avg_pool2d.default)
def avg_pool2d(x, kernel_size, stride=(), padding=(0,), ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """A batched 2-d average pool."""
    shape = _pool_shape(x, kernel_size, stride, padding, (1,), ceil_mode)
    return None if shape is None else _empty(shape, x)
