"""Convolution, eval-mode batch norm and ReLU with cheaper second derivatives, swapped in while the curvature
products' graphs are built (`cheap_second_order`).

A product differentiates each layer's backward pass. Autograd's double backward of a convolution takes the weight
term, the gradient of convT(gy, W) with respect to W, as a convolution whose kernel is the output gradient (as
large as the image), with transposed copies of both (resnet20, batch 32, 1 thread: 46 of 289 ms of a profiled
product in the first stage alone); here it is the weight gradient of `convolution_backward`, in the same call as
the input term. Batch norm on running statistics is the affine map x * scale + shift (its batch-statistics terms
are zero), its second derivatives in four elementwise passes. ReLU's backward has no gradient with respect to the
saved output, where autograd sends zeros down the forward graph. The same functions of the same tensors: products
agree to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def _convolve(x, w, conf, b=None):
    stride, padding, dilation, groups = conf
    return torch.convolution(x, w, b, stride, padding, dilation, False, [0] * len(stride), groups)


def _convolution_backward(gy, x, w, conf, mask):
    stride, padding, dilation, groups = conf
    return torch.ops.aten.convolution_backward(gy, x, w, None, stride, padding, dilation, False,
                                               [0] * len(stride), groups, [*mask, False])[:2]


def _sum_but_channels(x):
    return x.sum([0, *range(2, x.dim())])


class _ConvolutionGrad(torch.autograd.Function):
    """(gy, x, w) -> (dL/dx, dL/dw) of a convolution, differentiable once more."""

    @staticmethod
    def forward(ctx, gy, x, w, conf, mask):
        ctx.save_for_backward(gy, x, w)
        ctx.conf = conf
        ctx.set_materialize_grads(False)  # an output the product does not use: None, not zeros to convolve
        return _convolution_backward(gy, x, w, conf, mask)

    @staticmethod
    def backward(ctx, ggx, ggw):
        gy, x, w = ctx.saved_tensors
        g_gy = None
        if ctx.needs_input_grad[0]:  # dx = convT(gy, w) and dw = wgrad(x, gy) are linear in gy
            parts = [_convolve(a, b, ctx.conf) for a, b in ((ggx, w), (x, ggw)) if a is not None and b is not None]
            g_gy = sum(parts[1:], parts[0]) if parts else None
        # d<ggw, wgrad(x, gy)>/dx = convT(gy, ggw) and d<ggx, convT(gy, w)>/dw = wgrad(ggx, gy): one call.
        mask = (ggw is not None and ctx.needs_input_grad[1], ggx is not None and ctx.needs_input_grad[2])
        g_x = g_w = None
        if any(mask):
            g_x, g_w = _convolution_backward(gy, x if ggx is None else ggx, w if ggw is None else ggw, ctx.conf,
                                             mask)
        return g_gy, g_x, g_w, None, None


class _Convolution(torch.autograd.Function):
    """A convolution whose backward is `_ConvolutionGrad`."""

    @staticmethod
    def forward(ctx, x, w, b, conf):
        ctx.save_for_backward(x, w)
        ctx.conf, ctx.bias = conf, b is not None
        return _convolve(x, w, conf, b)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gx, gw = _ConvolutionGrad.apply(gy, x, w, ctx.conf, ctx.needs_input_grad[:2])
        gb = _sum_but_channels(gy) if ctx.bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


def _scale(w, r):
    """Batch norm's per-channel factor r * w (r alone without affine weights)."""
    return r if w is None else r * w


def _channels(x, c):
    """Per-channel values `c` shaped to broadcast against `x` (N, C, ...)."""
    return c.view((1, -1) + (1,) * (x.dim() - 2))


class _AffineGrad(torch.autograd.Function):
    """(gy, x, w) -> (dL/dx, dL/dw, dL/db) of y = (x - m) * r * w + b (w None: of (x - m) * r + b), the last
    two where `wanted`."""

    @staticmethod
    def forward(ctx, gy, x, w, m, r, wanted):
        ctx.save_for_backward(gy, x, w, m, r)
        ctx.set_materialize_grads(False)
        gx = gy * _channels(gy, _scale(w, r))
        gsum = _sum_but_channels(gy) if any(wanted) else None
        gw = (_sum_but_channels(gy * x) - m * gsum) * r if wanted[0] else None
        return gx, gw, gsum if wanted[1] else None

    @staticmethod
    def backward(ctx, ggx, ggw, ggb):
        gy, x, w, m, r = ctx.saved_tensors
        # gy's adjoint ggx * s + (x - m) * ggw * r + ggb: one pass from ggw's terms, one for ggx's.
        g_gy = g_x = g_w = None
        c = None if ggw is None else ggw * r
        shift = ggb if c is None else (-m * c if ggb is None else ggb - m * c)
        if c is not None:
            g_gy = torch.addcmul(_channels(x, shift), x, _channels(x, c))
        elif shift is not None:
            g_gy = _channels(x, shift).expand_as(x)
        if ggx is not None:
            s = _channels(x, _scale(w, r))
            g_gy = ggx * s if g_gy is None else g_gy.addcmul(ggx, s)
        if c is not None and ctx.needs_input_grad[1]:
            g_x = gy * _channels(gy, c)
        if ggx is not None and w is not None and ctx.needs_input_grad[2]:
            g_w = _sum_but_channels(ggx * gy) * r
        return g_gy, g_x, g_w, None, None, None


class _Affine(torch.autograd.Function):
    """An eval-mode batch norm as the affine map it is, y = (x - m) * r * w + b with r = 1 / sqrt(var + eps)."""

    @staticmethod
    def forward(ctx, x, w, b, m, r):
        ctx.save_for_backward(x, w, m, r)
        ctx.bias = b is not None
        s = _scale(w, r)
        shift = -m * s if b is None else b - m * s
        return torch.addcmul(_channels(x, shift), x, _channels(x, s))

    @staticmethod
    def backward(ctx, gy):
        x, w, m, r = ctx.saved_tensors
        wanted = (ctx.needs_input_grad[1], ctx.bias and ctx.needs_input_grad[2])
        gx, gw, gb = _AffineGrad.apply(gy, x, w, m, r, wanted)
        return gx, gw, gb, None, None


class _ReluGrad(torch.autograd.Function):
    """(gy, y) -> dL/dx of y = relu(x); no gradient with respect to y (zero almost everywhere)."""

    @staticmethod
    def forward(ctx, gy, y):
        ctx.save_for_backward(y)
        return torch.ops.aten.threshold_backward(gy, y, 0)

    @staticmethod
    def backward(ctx, gg):
        return torch.ops.aten.threshold_backward(gg, ctx.saved_tensors[0], 0), None


class _Relu(torch.autograd.Function):
    """ReLU whose backward is `_ReluGrad`."""

    @staticmethod
    def forward(ctx, x):
        y = torch.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        return _ReluGrad.apply(gy, ctx.saved_tensors[0])


def _per_dimension(v, dims: int) -> list[int]:
    """A convolution's stride, padding or dilation as one int per spatial dimension (torch repeats a single one)."""
    v = [v] if isinstance(v, int) else list(v)
    return v * dims if len(v) == 1 else v


def _convolution(dims):
    def rule(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if padding == "valid":
            padding = 0
        if isinstance(padding, str) or x.dim() != dims + 2:  # "same", or an unbatched input: autograd's own
            return NotImplemented
        conf = tuple(_per_dimension(v, dims) for v in (stride, padding, dilation)) + (groups,)
        return _Convolution.apply(x, weight, bias, conf)

    return rule


def _batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if training or running_mean is None or running_var is None or x.dim() < 2:
        return NotImplemented
    return _Affine.apply(x, weight, bias, running_mean, torch.rsqrt(running_var + eps))


def _relu(x, inplace=False):
    return NotImplemented if inplace else _Relu.apply(x)


RULES = {torch.conv1d: _convolution(1), torch.conv2d: _convolution(2), torch.conv3d: _convolution(3),
         F.batch_norm: _batch_norm, F.relu: _relu, torch.relu: _relu}


class cheap_second_order(TorchFunctionMode):  # noqa: N801 (used as a context manager, like torch's modes)
    """While active, the convolutions, eval-mode batch norms and (out-of-place) ReLUs that a forward calls run as
    the functions above; everything else, and anything they do not cover, as torch's own."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = RULES.get(func)
        out = NotImplemented if rule is None else rule(*args, **kwargs)
        return func(*args, **kwargs) if out is NotImplemented else out
