"""`netprobe summary` through click's CliRunner: exit codes 0/1/2, output, files written."""

import csv
import io
import json
import textwrap

import pytest

from helpers import run

# He et al. 2016 CIFAR ResNet-20 at 32x32: 40,551,040 multiply-accumulates (conv + linear), 0.27M params.
RESNET20_MACS = 40_551_040
RESNET20_PARAMS = 269_722


@pytest.fixture()
def user_file(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(textwrap.dedent("""
        import torch.nn as nn

        class Net(nn.Sequential):
            def __init__(self, width=4):
                super().__init__(nn.Conv2d(3, width, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(width, 2, 3))

        def broken():
            raise ValueError("width must be even")

        VALUE = 3
    """))
    return path


def test_table_has_layers_totals_and_convention():
    result = run("summary", "resnet20")
    assert result.exit_code == 0, result.output
    assert "40,551,040" in result.output and "269,722" in result.output
    assert "layer1.0.conv1" in result.output and "MACs: multiply-accumulates" in result.output


def test_json_shape_and_exact_totals():
    result = run("summary", "resnet20", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"] == "resnet20" and data["input_shape"] == [1, 3, 32, 32]
    assert data["totals"]["macs"] == RESNET20_MACS and data["totals"]["params"] == RESNET20_PARAMS
    assert set(data["totals"]) == {"params", "trainable_params", "macs", "flops", "activation_bytes"}
    assert {"name", "type", "depth", "input_shape", "output_shape", "params", "macs", "flops"} <= set(data["layers"][0])
    assert sum(layer["macs"] for layer in data["layers"]) == RESNET20_MACS


def test_csv_is_exact_stable_and_deterministic():
    first, second = run("summary", "resnet20", "--format", "csv"), run("summary", "resnet20", "--format", "csv")
    assert first.exit_code == 0 and first.output == second.output
    rows = list(csv.DictReader(io.StringIO(first.output)))
    assert list(rows[0]) == ["name", "type", "depth", "input_shape", "output_shape", "params", "trainable", "macs",
                             "flops", "activation_bytes"]
    assert sum(int(r["macs"]) for r in rows) == RESNET20_MACS
    assert sum(int(r["params"]) for r in rows) == RESNET20_PARAMS
    conv1 = next(r for r in rows if r["name"] == "conv1")
    assert conv1["input_shape"] == "1x3x32x32" and conv1["output_shape"] == "1x16x32x32"


def test_markdown_batch_and_depth():
    result = run("summary", "resnet20", "--format", "markdown", "--batch", "4", "--depth", "1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("**resnet20, input 4x3x32x32**")
    assert f"{4 * RESNET20_MACS:,}" in result.output
    assert "layer1.0" not in result.output and "| `layer1` |" in result.output


def test_output_file_written(tmp_path):
    target = tmp_path / "s.json"
    result = run("summary", "resnet20", "--format", "json", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["totals"]["macs"] == RESNET20_MACS


def test_budgets_exit_1_after_printing():
    result = run("summary", "resnet20", "--depth", "0", "--max-macs", "40M", "--max-params", "1M",
                 "--max-activation-bytes", "1K")
    assert result.exit_code == 1
    assert "40,551,040" in result.output  # the summary came first
    assert "macs 40.55M > budget 40M" in result.output and "activation_bytes" in result.output
    assert "> budget 1M" not in result.output  # params are under their budget
    ok = run("summary", "resnet20", "--depth", "0", "--max-macs", "41M", "--max-params", "0.27M")
    assert ok.exit_code == 0, ok.output


def test_user_model_from_file_with_kwargs(user_file):
    result = run("summary", f"{user_file}:Net", "--kwargs", "width=6", "--input-size", "3x10x10", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # conv 3->6, k3 on 10x10 -> 8x8: 6*64*27 = 10368; pool -> 4x4; conv 6->2, k3 -> 2x2: 2*4*54 = 432
    assert data["totals"]["macs"] == 10368 + 432 and data["model"] == "Net"
    assert data["totals"]["params"] == 6 * 27 + 6 + 2 * 54 + 2


def test_user_model_from_package():
    result = run("summary", "torch.nn:Linear", "--kwargs", "in_features=3", "--kwargs", "out_features=2",
                 "--input-size", "1x1x3", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totals"]["macs"] == 2 * 3


@pytest.mark.parametrize("args, message", [
    (("resnt20",), "unknown architecture 'resnt20' (did you mean 'resnet20'"),
    (("resnet20", "--input-size", "3x32"), "expected CxHxW"),
    (("resnet20", "--input-size", "3xfoo"), "expected sizes like 3x224x224"),
    (("resnet20", "--input-size", "1x32x32"), "wrong channel count at conv1 (Conv2d): it expects 3 input channels, got 1"),
    (("missing.py:Net", "--input-size", "3x8x8"), "no such file: missing.py"),
    (("resnet20", "-o", "/no/such/dir/out.csv"), "directory /no/such/dir does not exist"),
    (("resnet20", "--kwargs", "oops"), "expected --kwargs KEY=VALUE"),
    (("resnet20", "--max-macs", "lots"), "expected a count like 25M or 4G"),
    (("netprobe.nosuchmodule:Net", "--input-size", "3x8x8"), "cannot import netprobe.nosuchmodule"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    result = run("summary", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("spec, extra, message", [
    (":Nope", ("--input-size", "3x8x8"), "has no attribute 'Nope' (it defines: Net, broken)"),
    (":broken", ("--input-size", "3x8x8"), "broken() raised ValueError: width must be even"),
    (":VALUE", ("--input-size", "3x8x8"), "is not a class or a factory"),
    (":Net", (), "give its input with --input-size"),
    (":Net", ("--input-size", "3x8x8", "--plain"), "--plain and --preact apply to zoo models only"),
    # 5x5 -> conv3 -> 3x3 -> pool2 -> 1x1 -> the second conv (3x3) cannot fit
    (":Net", ("--input-size", "3x5x5"), "input 1x3x5x5 is too small: the spatial size reaches zero at 3 (Conv2d)"),
])
def test_user_model_errors(user_file, spec, extra, message):
    result = run("summary", f"{user_file}{spec}", *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_help_states_the_convention():
    result = run("summary", "--help")
    assert result.exit_code == 0
    assert "multiply-accumulates" in result.output and "2 x MACs" in result.output
