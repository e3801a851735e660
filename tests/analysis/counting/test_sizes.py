"""Size columns: parameter and buffer bytes by dtype, frozen vs trainable per layer, the saved state_dict size.

Hand counts: a 3->4 3x3 conv (frozen) has 4 x 27 + 4 = 112 float32 parameters, 448 bytes; BatchNorm2d(4) has 8
parameters and 3 buffers (two float32 vectors of 4 and an int64 counter: 40 bytes); a float16 Linear(4, 2) has 10
parameters, 20 bytes. The saved size is checked against torch.save of the real state_dict.
"""

import io
import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from netprobe import load
from netprobe.analysis.counting.sizes import sizes
from netprobe.cli.main import cli


def _model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2).half())
    model[0].requires_grad_(False)
    return model


def _saved(model) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(buffer.getvalue())


def test_per_layer_bytes_buffers_and_frozen():
    s = sizes(_model())
    rows = s.layers.set_index("name")
    assert list(rows.index) == ["0", "1", "3"]
    assert tuple(rows.loc["0", ["params", "trainable", "frozen", "param_bytes"]]) == (112, 0, 112, 448)
    assert tuple(rows.loc["1", ["params", "param_bytes", "buffers", "buffer_bytes"]]) == (8, 32, 3, 40)
    assert tuple(rows.loc["3", ["params", "trainable", "param_bytes"]]) == (10, 10, 20)
    by = {(r.kind, r.dtype): (r.tensors, r.elements, r.bytes) for r in s.by_dtype.itertuples()}
    assert by == {("parameter", "float32"): (4, 120, 480), ("parameter", "float16"): (2, 10, 20),
                  ("buffer", "float32"): (2, 8, 32), ("buffer", "int64"): (1, 1, 8)}


@pytest.mark.parametrize("name", ["resnet20", "lenet5"])
def test_saved_size_is_within_64_bytes_a_tensor(name):
    meta = load(name)  # the zoo builds on meta: no data to save
    estimate = sizes(meta).state_dict_bytes
    cpu = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in meta.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(cpu, buffer)
    assert abs(estimate - len(buffer.getvalue())) <= 64 * len(cpu)
    assert abs(sizes(_model()).state_dict_bytes - _saved(_model())) <= 64 * len(_model().state_dict())


def test_summary_sizes_in_json_and_csv():
    data = json.loads(CliRunner().invoke(cli, ["summary", "lenet5", "--sizes", "--format", "json"]).stdout)
    assert data["totals"]["params"] == sum(r["params"] for r in data["sizes"]["layers"])
    assert data["sizes"]["by_dtype"][0]["bytes"] == 4 * data["totals"]["params"]
    csv = CliRunner().invoke(cli, ["summary", "lenet5", "--sizes", "--format", "csv"]).stdout
    assert csv.splitlines()[0] == "name,type,params,trainable,frozen,param_bytes,buffers,buffer_bytes"
