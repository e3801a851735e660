"""rf --verify in bounded memory (issue 19): float64 convs run in bands of output rows, same values and gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.analysis.fields import bands, check

CASES = [  # (in channels, out channels, kernel, stride, padding, dilation, groups, H, W)
    (2, 3, 3, 1, 0, 1, 1, 13, 9),  # valid, as U-Net's convs
    (2, 3, 3, 1, 1, 1, 1, 13, 9),  # zero padding at both borders
    (2, 4, (5, 3), 2, (2, 1), 1, 2, 17, 8),  # strided, grouped, non-square
    (1, 2, 3, 3, 4, 2, 1, 19, 7),  # dilated, padding wider than the stride
    (4, 4, 3, 1, 1, 1, 4, 11, 6),  # depthwise
]


@pytest.mark.parametrize("cin, cout, k, stride, pad, dil, groups, h, w", CASES)
def test_banded_conv_equals_conv2d(monkeypatch, cin, cout, k, stride, pad, dil, groups, h, w):
    monkeypatch.setattr(bands, "BAND_BYTES", 1)  # one output row per band
    gen = torch.Generator().manual_seed(0)
    # small integers: every sum is exact in float64, whatever order the bands add in
    x = torch.randint(-3, 4, (1, cin, h, w), generator=gen).double().requires_grad_()
    weight = torch.randint(-2, 3, (cout, cin // groups, *((k, k) if isinstance(k, int) else k)),
                           generator=gen).double()
    bias = torch.arange(cout).double()
    expected = F.conv2d(x, weight, bias, stride, pad, dil, groups)
    got = bands.banded_conv2d(x, weight, bias, stride, pad, dil, groups)
    assert got.shape == expected.shape and torch.equal(got, expected)
    seed = torch.randint(-2, 3, expected.shape, generator=gen).double()
    (want,) = torch.autograd.grad(expected, x, seed)
    (have,) = torch.autograd.grad(got, x, seed)
    assert torch.equal(have, want)


def test_bands_follow_the_budget():
    # 6 output rows, 2 per band, 3x3 window at stride 1: the bands read input rows 0..3, 2..5, 4..7
    assert [band[2:4] for band in bands._bands(8, 6, 2, 1, 0, 2)] == [(0, 4), (2, 6), (4, 8)]
    # padding 1 at stride 2 (rows = (8 + 2 - 3) // 2 + 1 = 4), 3 per band: output rows 0..2 read padded rows
    # -1..5 (one zero row above input rows 0..5), output row 3 reads 5..7
    assert list(bands._bands(8, 4, 3, 2, 1, 2)) == [(0, 3, 0, 6, 1, 0), (3, 4, 5, 8, 0, 0)]


def test_weight_gradients_keep_the_plain_convolution():
    x = torch.ones(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    assert type(bands.banded_conv2d(x, w).grad_fn).__name__ == "_BandedConvBackward"
    w.requires_grad_()
    assert type(bands.banded_conv2d(x, w).grad_fn).__name__ == "ConvolutionBackward0"


def test_verify_in_bands_finds_the_same_windows(monkeypatch):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2),
                          nn.MaxPool2d(2), nn.Conv2d(2, 1, 3, padding=2, dilation=2))
    whole = check.verify(model, (1, 1, 21, 21))
    monkeypatch.setattr(bands, "BAND_BYTES", 1)
    banded = check.verify(model, (1, 1, 21, 21))
    assert banded.equals(whole) and banded["match"].all()
    # by hand, central units along each axis: the 3x3 pad-1 conv's unit 10 of 21 reads 9..11; the 3x3/2 conv's
    # unit 5 of (21 - 3) // 2 + 1 = 10 reads rows 10..12 of the first output, so input 9..13
    first, second = banded[banded["name"] == "0"], banded[banded["name"] == "2"]
    assert set(first["grad_lo"]) == {9} and set(first["grad_hi"]) == {11}
    assert set(second["grad_lo"]) == {9} and set(second["grad_hi"]) == {13}
