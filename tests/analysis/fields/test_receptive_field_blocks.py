"""Receptive fields of blocks from outside the zoo (MobileNetV2, EfficientNet, ConvNeXt, Swin), by hand and by
`verify`'s gradients: r_l = r_{l-1} + (k_l - 1) * j_{l-1}, j_l = j_{l-1} * s_l, effective padding
P_l = P_{l-1} + p_l * j_{l-1}; unit q's window is [q * j - P, q * j - P + r - 1]."""

import torch
from torch import nn

from netprobe.analysis.counting.trace import trace
from netprobe.analysis.fields.check import verify
from netprobe.analysis.fields.solve import solve
from netprobe.analysis.fields.receptive_field import receptive_field


class Clamp06(nn.Module):
    def forward(self, x):
        return x.clamp(0, 6)  # the functional spelling of ReLU6


class InvertedResidual(nn.Module):
    """MobileNetV2's block (Sandler et al. 2018): 1x1 expand, 3x3 depthwise, 1x1 project, shortcut at stride 1."""

    def __init__(self, c, stride, act):
        super().__init__()
        hidden = 4 * c
        self.stride = stride
        self.expand = nn.Sequential(nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act())
        self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                                nn.BatchNorm2d(hidden), act())
        self.project = nn.Sequential(nn.Conv2d(hidden, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.stride == 1 else y


def _mobilenet_like():
    stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
    blocks = [InvertedResidual(8, 1, nn.ReLU6) for _ in range(4)]
    return nn.Sequential(stem, *blocks, InvertedResidual(8, 2, Clamp06), InvertedResidual(8, 1, nn.Hardswish))


def test_mobilenetv2_stack_with_relu6_clamp_and_hardswish_verifies():
    # By hand at 32x32: stem 3x3/2 pad 1 -> r 3, j 2, P 1; four stride-1 blocks each add (3 - 1) * 2 = 4
    # -> r 19, P 9; the stride-2 block adds 4 -> r 23, j 4, P 11; the last adds 8 -> r 31, P 15.
    # The all-ones check doubles the activations at every shortcut (1, 2, 4, 8): block 5's expansion would sit
    # at 8 > 6, where ReLU6 has gradient 0, unless the check replaces it.
    model = _mobilenet_like()
    rows = {r["name"]: r for _, r in receptive_field(model, (1, 3, 32, 32), depth=1).iterrows()}
    assert [(rows[n].rf_h, rows[n].jump_h) for n in ("0", "4", "5", "6")] == [(3, 2), (19, 2), (23, 4), (31, 4)]
    table = verify(model, (1, 3, 32, 32), depth=1)
    assert table["match"].all(), table
    last = table[table["name"] == "6"]
    # central unit 4 of 8: [4 * 4 - 15, 4 * 4 - 15 + 30] = [1, 31] on both axes, read by the gradient too
    assert list(zip(last["grad_lo"], last["grad_hi"])) == [(1, 31), (1, 31)]
    assert table.attrs["warnings"] == []


class MBConvSE(nn.Module):
    """EfficientNet's MBConv (Tan & Le 2019): expand, depthwise, squeeze-and-excitation gate, project, shortcut."""

    def __init__(self, c):
        super().__init__()
        hidden = 4 * c
        self.expand = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden), nn.SiLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden, 2, 1), nn.SiLU(), nn.Conv2d(2, hidden, 1),
                                nn.Sigmoid())
        self.project = nn.Conv2d(hidden, c, 1)

    def forward(self, x):
        y = self.dw(self.expand(x))
        return x + self.project(y * self.se(y))


def test_mbconv_with_squeeze_excitation_sees_the_whole_input():
    # The gate is a global average: every output unit reads every input pixel, [0, 15] on both axes of 16x16.
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), MBConvSE(8))
    table = receptive_field(model, (1, 3, 16, 16))
    assert (table.iloc[-1].rf_h_min, table.iloc[-1].rf_w_min) == (16, 16)
    warnings = table.attrs["warnings"]
    assert any("global gate" in w for w in warnings) and not any("not centred alike" in w for w in warnings)
    checked = verify(model, (1, 3, 16, 16), depth=1)
    assert checked["match"].all(), checked
    last = checked[checked["name"] == "1"]
    assert list(zip(last["grad_lo"], last["grad_hi"])) == [(0, 15), (0, 15)]


class NHWC(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


class NCHW(nn.Module):
    def forward(self, x):
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block (Liu et al. 2022): 7x7 depthwise, then LayerNorm, Linear, GELU, Linear channels-last."""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.to_nhwc = NHWC()
        self.norm = nn.LayerNorm(c)
        self.pw1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(4 * c, c)
        self.to_nchw = NCHW()

    def forward(self, x):
        y = self.pw2(self.act(self.pw1(self.norm(self.to_nhwc(self.dw(x))))))
        return x + self.to_nchw(y)


def test_convnext_block_keeps_the_7x7_field_through_linear_layers():
    # One block: the 7x7 depthwise conv gives r 7 (P 3); the Linears mix channels at each position only.
    model = nn.Sequential(ConvNeXtBlock(4))
    rows = {r["name"]: r for _, r in receptive_field(model, (1, 4, 16, 16)).iterrows()}
    for name in ("0.dw", "0.pw1", "0.pw2", "0"):
        assert (rows[name].rf_h, rows[name].rf_w, rows[name].jump_h, rows[name].center_h) == (7, 7, 1, 0), name
    # verify on the channels-last outputs too: central unit 8 of 16 reads [8 - 3, 8 + 3]
    table = verify(model, (1, 4, 16, 16), depth=2)
    assert table["match"].all(), table
    pw1 = table[table["name"] == "0.pw1"]
    assert list(zip(pw1["grad_lo"], pw1["grad_hi"])) == [(5, 11), (5, 11)]


def test_linear_over_channels_last_keeps_the_issue_example_field():
    # The issue's minimal case at 32x32: a 3x3 conv, then a Linear over C in NHWC: r 3, not the whole input.
    model = nn.Sequential(nn.Conv2d(3, 8, 3), NHWC(), nn.Linear(8, 8), NCHW())
    table = receptive_field(model, (1, 3, 32, 32))
    assert list(table.rf_h) == [3, 3, 3, 3] and list(table.rf_w) == [3, 3, 3, 3]
    assert table.attrs["warnings"] == []


def test_flatten_then_linear_still_sees_the_whole_input():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    table = receptive_field(model, (1, 1, 8, 8))
    assert (table.iloc[-1].rf_h, table.iloc[-1].rf_w) == (8, 8)


class Roll(nn.Module):
    def forward(self, x):
        return x.roll(2, dims=2)  # Swin's cyclic shift, along h only


class WindowSplit(nn.Module):
    def forward(self, x):
        return x.view(1, 2, 2, 4, 8).sum(2)  # folds the two halves of h together: not a per-position op


def test_roll_is_a_cyclic_shift_and_window_splits_warn():
    # conv 3x3 pad 1 on 10 rows, rolled by 2: output row q reads conv row (q - 2) mod 10, so row 0 reads conv
    # row 8 -> input rows [7, 9]; row 5 reads conv row 3 -> [2, 4].
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), Roll())
    graph = solve(trace(model, (1, 1, 10, 10)))
    out = graph.fields[max(graph.fields)]["h"]
    assert (out.window(0, real=True), out.window(5, real=True)) == ((7, 9), (2, 4))
    assert verify(model, (1, 1, 10, 10), depth=1)["match"].all()
    split = receptive_field(nn.Sequential(nn.Conv2d(1, 2, 1), WindowSplit()), (1, 1, 8, 8))
    assert any("splits spatial axis h" in w for w in split.attrs["warnings"])


def test_verify_names_operators_whose_gradient_vanishes():
    class Rounded(nn.Module):
        def forward(self, x):
            return torch.round(x) + x

    table = verify(nn.Sequential(nn.Conv2d(1, 1, 3), Rounded()), (1, 1, 8, 8), depth=1)
    assert any(w.startswith("round ") for w in table.attrs["warnings"])


class ChannelsLastNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_convnext_t_trunk_field_is_1688():
    # ConvNeXt-T's layout (stem 4x4/4, stages of 3, 3, 9, 3 blocks, 2x2/2 downsampling between), 4 channels:
    # stem r 4, j 4; each block adds 6 j; each downsampling adds j and doubles it:
    # 4 + 3*24 = 76, +4 = 80 (j 8), +3*48 = 224, +8 = 232 (j 16), +9*96 = 1096, +16 = 1112 (j 32),
    # +3*192 = 1688, the gradient support the issue reports for this trunk at 1792x1792.
    layers = [nn.Conv2d(3, 4, 4, 4), ChannelsLastNorm(4)]
    for i, depth in enumerate((3, 3, 9, 3)):
        if i:
            layers += [ChannelsLastNorm(4), nn.Conv2d(4, 4, 2, 2)]
        layers += [ConvNeXtBlock(4) for _ in range(depth)]
    table = receptive_field(nn.Sequential(*layers).to("meta"), (1, 3, 64, 64), depth=1)
    assert (table.iloc[-1].rf_h, table.iloc[-1].rf_w, table.iloc[-1].jump_h) == (1688, 1688, 32)
    assert table.attrs["warnings"] == []
