"""Float64 convolutions in bands of output rows, for `check.verify`: CPU conv2d in float64 unfolds its whole input
(im2col, C x kh x kw x H_out x W_out values), 1.5 GB for each of U-Net's first 3x3 convs at 572x572, and again
in the backward pass. Band by band the values and gradients are the same and the buffer stays bounded."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Largest im2col buffer, in bytes, one banded conv2d allocates.
BAND_BYTES = 32 * 2**20


def _pair(value) -> tuple:
    return tuple(value) * (2 // len(value)) if isinstance(value, (list, tuple)) else (value, value)


def _bands(h: int, rows: int, step: int, sh: int, ph: int, span: int):
    """(first, last output row + 1, first, last input row + 1, zero rows above, zero rows below) per band."""
    for r0 in range(0, rows, step):
        r1 = min(r0 + step, rows)
        lo, hi = r0 * sh - ph, (r1 - 1) * sh + span - ph  # input rows the band reads (inclusive)
        yield r0, r1, max(lo, 0), min(hi, h - 1) + 1, max(-lo, 0), max(hi - h + 1, 0)


class _BandedConv(torch.autograd.Function):
    """conv2d band by band, forward and backward: the input gradient is built in one tensor, band by band (slicing
    under autograd would materialise a full-size zero gradient per band). The weight and bias take no gradient, so
    the input itself is not kept: its gradient needs the weight only."""

    @staticmethod
    def forward(ctx, input, weight, bias, step, stride, padding, dilation, groups):
        ctx.save_for_backward(weight)
        ctx.input = input.shape, input.dtype
        ctx.args = step, stride, padding, dilation, groups
        bands = []
        for r0, r1, a, b, top, bottom in _bands(input.shape[2], _rows(input, weight, stride, padding, dilation),
                                                 step, stride[0], padding[0], dilation[0] * (weight.shape[2] - 1)):
            band = F.pad(input[:, :, a:b], (0, 0, top, bottom)) if top or bottom else input[:, :, a:b]
            bands.append(F.conv2d(band, weight, bias, stride, (0, padding[1]), dilation, groups))
        return torch.cat(bands, dim=2)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        (size, dtype), (step, stride, padding, dilation, groups) = ctx.input, ctx.args
        out = torch.zeros(size, dtype=dtype, device=grad.device)
        for r0, r1, a, b, top, bottom in _bands(size[2], grad.shape[2], step, stride[0], padding[0],
                                                 dilation[0] * (weight.shape[2] - 1)):
            shape = (*size[:2], b - a + top + bottom, size[3])
            part = torch.nn.grad.conv2d_input(shape, weight, grad[:, :, r0:r1], stride, (0, padding[1]), dilation,
                                              groups)
            out[:, :, a:b] += part[:, :, top:part.shape[2] - bottom]
        return out, None, None, None, None, None, None, None


def _rows(input, weight, stride, padding, dilation) -> int:
    return (input.shape[2] + 2 * padding[0] - dilation[0] * (weight.shape[2] - 1) - 1) // stride[0] + 1


def banded_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv2d in bands of output rows, each unfolding at most BAND_BYTES, for input gradients only (a weight or
    bias that requires grad keeps the plain convolution)."""
    weighted = weight.requires_grad or (bias is not None and bias.requires_grad)
    if isinstance(padding, str) or input.dim() != 4 or weighted:
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, _, w = input.shape
    kw = weight.shape[3]
    rows = _rows(input, weight, stride, padding, dilation)
    cols = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    per_row = n * c * weight.shape[2] * kw * max(cols, 1) * input.element_size()
    if rows < 1:  # too small an input: the plain convolution says so
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    # small convolutions too, in one band: the graph then keeps no convolution's input
    return _BandedConv.apply(input, weight, bias, max(1, BAND_BYTES // per_row), stride, padding, dilation, groups)
