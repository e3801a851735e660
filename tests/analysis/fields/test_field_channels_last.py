"""Receptive fields through a channels-last Linear (ConvNeXt's block: a depthwise 7x7, then LayerNorm and an MLP
applied to an NHWC tensor, which dispatches to aten.addmm on rows of positions), at maps down to 1x1.

Hand figures (Araujo et al.'s convention, padding positions count): a 4x4 stride-4 stem gives r = 4 at jump 4;
each block's 7x7 depthwise conv adds 6 x jump; a 2x2 stride-2 downsample adds 1 x 4 and doubles the jump.
So r = 4, 28, 52 (two blocks at jump 4), 56, 104, 152 (two blocks at jump 8), at every input size.
"""

import json

import pytest
import torch
from torch import nn

from netprobe.analysis.counting.trace import trace
from netprobe.analysis.fields.check import verify
from netprobe.analysis.fields.receptive_field import receptive_field

HAND = {"stem": 4, "blocks.0": 28, "blocks.1": 52, "down": 56, "last.0": 104, "last.1": 152}


class Block(nn.Module):
    """ConvNeXt's block: the MLP runs on channels-last features through nn.Linear."""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, 2 * c)
        self.fc2 = nn.Linear(2 * c, c)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)  # (N, H, W, C)
        y = self.fc2(nn.functional.gelu(self.fc1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class TinyConvNeXt(nn.Module):
    def __init__(self, c=2):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, 4)
        self.blocks = nn.Sequential(Block(c), Block(c))
        self.down = nn.Conv2d(c, c, 2, 2)
        self.last = nn.Sequential(Block(c), Block(c))

    def forward(self, x):
        return self.last(self.down(self.blocks(self.stem(x))))


def test_the_linear_runs_as_addmm():
    ops = {str(op.op) for op in trace(Block(2), (1, 2, 5, 1)).ops}
    assert "aten.addmm.default" in ops


@pytest.mark.parametrize("size", [(1, 3, 64, 64), (1, 3, 64, 8), (1, 3, 8, 64), (1, 3, 8, 8)])
def test_the_field_does_not_depend_on_the_input_size(size):
    # (64, 8) and (8, 64): one axis is 1 wide in the last stage; (8, 8): the last stage's map is 1x1
    table = receptive_field(TinyConvNeXt(), size, depth=2).set_index("name")
    assert table.attrs["warnings"] == []
    for name, r in HAND.items():
        assert (table.loc[name, "rf_h"], table.loc[name, "rf_w"]) == (r, r), name


def test_real_windows_equal_the_gradient_support_at_width_one():
    table = verify(TinyConvNeXt(), (1, 3, 192, 8), depth=2)  # the last stage's map is 24x1
    assert len(table) == 8 and table["match"].all()
    last = table[(table["name"] == "last.1") & (table["axis"] == "h")].iloc[0]
    # unit 12 at jump 8 is centred on pixel 3.5 + 12 * 8 = 99.5 (stem unit 0 at 1.5, the downsample's at 3.5)
    assert (last["unit"], last["lo"], last["hi"]) == (12, 99.5 - 75.5, 99.5 + 75.5)


def _cli(*args):
    from click.testing import CliRunner

    from netprobe.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def test_rf_takes_kwargs():
    result = _cli("rf", f"{__file__}:TinyConvNeXt", "--kwargs", "c=3", "--input-size", "3x8x8", "--depth", "1",
                  "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row["rf_h"] for row in json.loads(result.stdout)}
    assert rows["last"] == HAND["last.1"] and rows["down"] == HAND["down"]


def test_compare_takes_kwargs():
    # c=3: stem 3*3*16+3, four blocks of dw 3*49+3, norm 6, fc1 3*6+6, fc2 6*3+3, down 3*3*4+3
    hand = 147 + 4 * (150 + 6 + 24 + 21) + 39
    assert hand == sum(p.numel() for p in TinyConvNeXt(3).parameters())
    result = _cli("compare", f"{__file__}:TinyConvNeXt", "--kwargs", "c=3", "--input-size", "3x8x8", "--format",
                  "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"][0]["params"] == hand
