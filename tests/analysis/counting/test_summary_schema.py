"""The versioned JSON of `summary --format json`: schema_version, the context block, a status per total, and
--strict refusing partial counts (exit 1)."""

import json
import platform

import torch
from click.testing import CliRunner
from torch import nn

from netprobe import __version__, summary
from netprobe.cli.main import cli


class Cumsum(nn.Module):
    """A conv (counted) and a cumsum (no formula) over its 2x4x4 output: 32 elements uncounted."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, x):
        return self.conv(x).cumsum(-1)


def test_status_names_the_uncounted_operators_and_their_elements():
    s = summary(Cumsum(), (1, 1, 4, 4))
    status = s.status()
    assert status["params"] == status["trainable_params"] == {"status": "complete"}
    for key in ("macs", "flops", "activation_bytes"):
        assert status[key] == {"status": "partial", "uncounted": {"aten.cumsum.default": {"calls": 1, "elements": 32}}}
    assert all(v == {"status": "complete"} for v in summary(nn.Conv2d(1, 2, 1), (1, 1, 4, 4)).status().values())


def test_json_has_a_version_and_a_context():
    d = json.loads(CliRunner().invoke(cli, ["summary", "resnet20", "--format", "json"]).stdout)
    assert d["schema_version"] == 1
    assert d["context"] == {"netprobe": __version__, "torch": torch.__version__, "python": platform.python_version(),
                            "dtype": "float32", "device": "meta", "training": False}
    assert set(d["status"]) == set(d["totals"]) and all(v["status"] == "complete" for v in d["status"].values())


def test_strict_exits_1_on_partial_counts_only():
    model = f"{__file__}:Cumsum"
    loose = CliRunner().invoke(cli, ["summary", model, "--input-size", "1x4x4"])
    strict = CliRunner().invoke(cli, ["summary", model, "--input-size", "1x4x4", "--strict"])
    assert loose.exit_code == 0 and strict.exit_code == 1
    assert "partial counts (macs, flops, activation_bytes): not counted aten.cumsum.default x1" in strict.stderr
    assert CliRunner().invoke(cli, ["summary", "resnet20", "--strict"]).exit_code == 0
