"""Models on the meta device (issue 15): torchvision's RegNet, rebuilt by hand at toy size.

RegNet computes its stage widths with tensors in its constructor (`BlockParams.from_init_params`:
`torch.arange(depth) * w_a + w_0`, rounding, `.int().tolist()`) and gates channels with squeeze-excitation.
Under `with torch.device("meta")` those tensors are meta and `.tolist()` fails with "Cannot copy out of
meta tensor; no data!" inside the constructor, before netprobe sees the model. Built on the CPU and moved
with `.to("meta")`, the model is traced as it is.
"""

import math
import textwrap

import pytest
import torch
import torch.nn as nn

from netprobe.analysis.counting import trace as trace_module
from netprobe.analysis.counting.summary import summary
from netprobe.analysis.fields.check import effective
from netprobe.errors import NetprobeError
from netprobe.zoo.loading import load_model


def regnet_widths(depth: int, w_0: int, w_a: float, w_m: float) -> list[int]:
    """torchvision's quantised block widths (multiples of 8), computed with tensors as it does."""
    widths_cont = torch.arange(depth) * w_a + w_0
    capacity = torch.round(torch.log(widths_cont / w_0) / math.log(w_m))
    return (torch.round(torch.divide(w_0 * torch.pow(w_m, capacity), 8)) * 8).int().tolist()


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: avgpool > 1x1 conv > ReLU > 1x1 conv > sigmoid, times the input."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class TinyRegNet(nn.Module):
    """Stem 3x3/2 to widths[0], SE, 3x3 to widths[-1], global pool, linear: RegNet's construction pattern."""

    def __init__(self):
        super().__init__()
        widths = regnet_widths(2, 8, 8.0, 2.0)  # [8, 16]: 8 + 8 = 16 = 8 * 2^1
        self.stem = nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False)
        self.se = SqueezeExcitation(widths[0], 2)
        self.conv = nn.Conv2d(widths[0], widths[-1], 3, padding=1, bias=False)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], 10)

    def forward(self, x):
        x = self.conv(self.se(self.stem(x)))  # (N, 16, 8, 8) at 16x16
        return self.fc(self.avgpool(x).flatten(1))


# By hand: stem 3*8*9 = 216, SE 8*2+2 + 2*8+8 = 42, conv 8*16*9 = 1152, fc 16*10+10 = 170.
PARAMS = 216 + 42 + 1152 + 170
# At 1x3x16x16: stem 8*8 positions x 8 x 27 = 13824, SE 16 + 16 on 1x1, conv 64 x 16 x 72 = 73728, fc 160.
MACS = 13824 + 16 + 16 + 73728 + 160


def test_widths_are_torchvisions_rule():
    assert regnet_widths(2, 8, 8.0, 2.0) == [8, 16]


def test_building_under_meta_fails_in_the_constructor():
    with torch.device("meta"), pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        TinyRegNet()


def test_moved_to_meta_counts_as_on_cpu_and_is_traced_as_it_is(monkeypatch):
    on_cpu = summary(TinyRegNet(), (1, 3, 16, 16)).totals
    model = TinyRegNet().to("meta")

    def no_copy(*args, **kwargs):
        raise AssertionError("a model already on meta was copied")

    monkeypatch.setattr(trace_module, "meta_copy", no_copy)
    on_meta = summary(model, (1, 3, 16, 16)).totals
    assert (on_meta.params, on_meta.macs) == (PARAMS, MACS)
    assert on_meta == on_cpu
    assert all(t.is_meta for t in model.parameters()) and model.training  # left as it was


def test_loader_explains_a_constructor_that_reads_meta_values(tmp_path):
    path = tmp_path / "regnet_meta.py"
    path.write_text(textwrap.dedent("""
        import torch

        def Net():
            with torch.device("meta"):
                width = (torch.arange(2) * 8 + 8).tolist()[-1]  # as RegNet's BlockParams
                return torch.nn.Conv2d(3, width, 3)
    """))
    with pytest.raises(NetprobeError, match=r"Net\(\) raised NotImplementedError: Cannot copy out of meta tensor.*"
                                            r"construction reads tensor values.*build it on the CPU"):
        load_model(f"{path}:Net")


def test_effective_field_refuses_a_model_without_weights():
    with pytest.raises(NetprobeError, match="meta device: it has no weights"):
        effective(TinyRegNet().to("meta"), (1, 3, 16, 16), samples=1)


class GatedResidual(nn.Module):
    """x + conv(x * sigmoid(conv1x1(avgpool(x)))): RegNet-Y's squeeze-excitation inside a residual block."""

    def __init__(self, c: int = 2):
        super().__init__()
        self.squeeze = nn.Conv2d(c, c, 1)
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        gate = torch.sigmoid(self.squeeze(x.mean((2, 3), keepdim=True)))
        return x + self.conv(x * gate)


def test_verify_stacked_gates_stay_finite():
    # With the gate as identity each block squares the magnitudes (2 -> 4 -> 16 -> ... inf within 16 blocks) and
    # inf gradients hid every pixel. The first gate already pools the whole 8x8 input: every later unit reads
    # rows and columns 0..7.
    from netprobe.analysis.fields.check import verify

    model = nn.Sequential(nn.Conv2d(1, 2, 1), *[GatedResidual() for _ in range(16)])
    table = verify(model, (1, 1, 8, 8))
    assert table["match"].all()
    later = table[table["name"].astype(int) >= 1]
    assert set(later["grad_lo"]) == {0} and set(later["grad_hi"]) == {7}
