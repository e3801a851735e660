"""netprobe diff: added, removed and changed layers and total deltas, between models or saved summaries.

Independent figures: He et al.'s CIFAR ResNets have n = 3 (resnet20) and n = 5 (resnet32) blocks per stage, so
resnet32 adds blocks 3 and 4 to each of the 3 stages; parameter totals are sum(p.numel()) of the built models.
Widening a 3x3 conv from 4 to 8 outputs on 3 input channels adds 4 x 27 weights + 4 biases and, on an 8x8 map,
64 x 4 x 27 MACs; the Linear behind it grows from 4 to 8 inputs.
"""

import json

import pytest
from click.testing import CliRunner
from torch import nn

from netprobe import load, summary
from netprobe.analysis.counting.diff import diff
from netprobe.cli.main import cli


def _params(name) -> int:
    return sum(p.numel() for p in load(name).parameters())


def test_deeper_resnet_adds_two_blocks_per_stage():
    d = diff(summary(load("resnet20"), (1, 3, 32, 32), depth=2), summary(load("resnet32"), (1, 3, 32, 32), depth=2))
    assert list(d.layers["name"]) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in (3, 4)]
    assert set(d.layers["change"]) == {"added"}
    params = d.totals.set_index("total").loc["params"]
    assert (params["a"], params["b"], params["delta"]) == (_params("resnet20"), _params("resnet32"),
                                                           _params("resnet32") - _params("resnet20"))
    assert d.layers["params_delta"].sum() == params["delta"]


class Net(nn.Module):
    def __init__(self, width=4, extra=False):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.extra = nn.Linear(width, width) if extra else None
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = self.pool(self.conv(x)).flatten(1)
        return self.fc(self.extra(x) if self.extra is not None else x)


def _save(tmp_path, name, *kwargs):
    path = tmp_path / f"{name}.json"
    args = ["summary", f"{__file__}:Net", *kwargs, "--input-size", "3x8x8", "--format", "json", "-o", path]
    assert CliRunner().invoke(cli, [str(a) for a in args]).exit_code == 0
    return path


def test_saved_summaries_show_changed_and_removed_layers(tmp_path):
    a = _save(tmp_path, "a", "--kwargs", "extra=True")
    b = _save(tmp_path, "b", "--kwargs", "width=8")
    result = CliRunner().invoke(cli, ["diff", str(a), str(b), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["extra"]["change"] == "removed" and rows["extra"]["params_delta"] == -(4 * 4 + 4)
    assert rows["conv"]["change"] == "changed" and rows["conv"]["params_delta"] == 4 * 27 + 4
    assert rows["conv"]["macs_delta"] == 64 * 4 * 27 and rows["conv"]["output_shape_b"] == [1, 8, 8, 8]
    assert rows["fc"]["params_delta"] == 4 * 10
    totals = {row["total"]: row for row in data["totals"]}
    assert totals["params"]["delta"] == 4 * 27 + 4 - 20 + 40


def test_models_and_markdown(tmp_path):
    result = CliRunner().invoke(cli, ["diff", "resnet20", "resnet32", "--depth", "2", "--format", "markdown"])
    assert result.exit_code == 0
    assert result.stdout.startswith("**resnet20 -> resnet32**: 6 added, 0 removed, 0 changed layers")
    assert "| layer1.3 | added | BasicBlock | 1x16x32x32 |" in result.stdout


@pytest.mark.parametrize("content, message", [("{", "cannot read"), ('{"model": "x"}', "not a summary JSON")])
def test_a_file_that_is_not_a_summary_is_refused(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = CliRunner().invoke(cli, ["diff", str(bad), "resnet20"])
    assert result.exit_code == 2 and message in result.output
