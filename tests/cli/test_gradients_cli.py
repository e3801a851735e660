"""`netprobe gradients` through click: files written, byte-identical reruns, one-line exit-2 errors."""

import pandas as pd
import pytest

from helpers import run

SMALL = ("--batch-size", "4", "--batches", "2")
PNG = b"\x89PNG\r\n\x1a\n"


def test_compare_writes_csv_and_plot_byte_identically(tmp_path):
    outputs = []
    for i in range(2):
        csv, png = tmp_path / f"g{i}.csv", tmp_path / f"g{i}.png"
        result = run("gradients", "resnet20", "--compare", *SMALL, "-o", str(csv), "--plot", str(png))
        assert result.exit_code == 0, result.output
        outputs.append((csv.read_bytes(), png.read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][1].startswith(PNG)
    table = pd.read_csv(tmp_path / "g0.csv")
    assert list(table.columns) == ["variant", "depth", "layer", "grad_norm", "grad_to_weight", "grad_norm_std"]
    assert table["variant"].tolist() == ["residual"] * 20 + ["plain"] * 20
    assert table["layer"].iloc[0] == "conv1" and table["layer"].iloc[19] == "linear"
    assert (table["grad_norm_std"] > 0).all()  # two batches: a real spread
    assert "first_to_last" in result.output


def test_plain_profile_to_stdout():
    result = run("gradients", "resnet20", "--plain", "--batch-size", "2", "--batches", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["variant", "depth", "layer", "grad_norm", "grad_to_weight", "grad_norm_std"]
    assert lines[1].split()[:3] == ["plain", "1", "conv1"]


def test_depth_sweep_summary(tmp_path):
    csv = tmp_path / "sweep.csv"
    result = run("gradients", "resnet20", "--depths", "8,14", "--compare", "--batch-size", "2", "--batches", "1",
                 "-o", str(csv))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(csv)
    assert list(table.columns)[:3] == ["model", "variant", "depth"]
    assert table.groupby(["model", "variant"], sort=False).size().to_dict() == {
        ("resnet8", "residual"): 8, ("resnet8", "plain"): 8, ("resnet14", "residual"): 14, ("resnet14", "plain"): 14}
    summary = [line.split() for line in result.output.splitlines() if line.startswith(("resnet", " resnet"))]
    assert [row[:3] for row in summary] == [["resnet8", "residual", "8"], ["resnet8", "plain", "8"],
                                            ["resnet14", "residual", "14"], ["resnet14", "plain", "14"]]


def test_shattered_and_responses(tmp_path):
    csv, png = tmp_path / "s.csv", tmp_path / "s.png"
    result = run("gradients", "resnet20", "--compare", "--shattered", "--batch-size", "8", "--batches", "1",
                 "-o", str(csv), "--plot", str(png))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(csv)
    assert list(table.columns) == ["variant", "lag", "distance", "correlation", "correlation_std"]
    assert table["lag"].tolist() == list(range(1, 32)) * 2
    assert png.read_bytes().startswith(PNG)
    result = run("gradients", "resnet20", "--responses", "--batch-size", "4", "--batches", "1", "-o", str(csv))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(csv)
    assert table["layer"].tolist()[:3] == ["bn1", "layer1.0.bn1", "layer1.0.bn2"] and len(table) == 1 + 3 * 3 * 2  # stem BN + 9 basic blocks x 2


@pytest.mark.parametrize("args, message", [
    (("lenet5", "--plain"), "has no shortcuts to remove"),
    (("vgg11", "--compare"), "has no shortcuts to remove"),
    (("resnet20", "--plain", "--compare"), "exclude each other"),
    (("vgg11", "--depths", "11,13"), "--depths sweeps the CIFAR ResNets"),
    (("resnet20", "--depths", "20,x"), "expected depths like 20,56,110"),
    (("resnet20", "--depths", "21"), "6n + 2"),
    (("nosuch",), "unknown architecture"),
    (("resnet20", "--batch-size", "100000"), "needs 100000 samples"),
])
def test_bad_input_is_one_line_exit_2_and_no_csv(tmp_path, args, message):
    csv = tmp_path / "out.csv"
    result = run("gradients", *args, "--batches", "1", "-o", str(csv))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not csv.exists() and list(tmp_path.iterdir()) == []


def test_missing_output_directory(tmp_path):
    result = run("gradients", "resnet20", "--batches", "1", "-o", str(tmp_path / "no" / "out.csv"))
    assert result.exit_code == 2 and "does not exist" in result.output
