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


def banded_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv2d computed in bands of output rows when its im2col buffer would exceed BAND_BYTES."""
    if isinstance(padding, str) or input.dim() != 4:
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = input.shape
    kh, kw = weight.shape[2:]
    rows = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    cols = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    per_row = n * c * kh * kw * max(cols, 1) * input.element_size()
    if rows <= 1 or per_row * rows <= BAND_BYTES:
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    step = max(1, BAND_BYTES // per_row)
    bands = []
    for r0 in range(0, rows, step):
        r1 = min(r0 + step, rows)
        lo, hi = r0 * sh - ph, (r1 - 1) * sh + dh * (kh - 1) - ph  # input rows the band reads (inclusive)
        band = input[:, :, max(lo, 0):min(hi, h - 1) + 1]
        if lo < 0 or hi > h - 1:  # zero padding rows at the top or bottom border
            band = F.pad(band, (0, 0, max(-lo, 0), max(hi - h + 1, 0)))
        bands.append(F.conv2d(band, weight, bias, (sh, sw), (0, pw), (dh, dw), groups))
    return torch.cat(bands, dim=2)
