"""`netprobe memory` and `summary --training` through CliRunner: exit codes, budgets, files, determinism."""

import json

from netprobe.cli.memory import parse_bytes
from helpers import run


def test_budget_exit_codes_and_json():
    # lenet5 at batch 2 with Adam: 61,706 float32 parameters, gradients and two moments are 987,296 bytes
    result = run("memory", "lenet5", "--batch", "2", "--format", "json", "--max-memory", "10MB")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    totals = data["totals"]
    assert totals["param_bytes"] + totals["grad_bytes"] + totals["optimizer_bytes"] == 61_706 * 4 * 4
    assert run("memory", "lenet5", "--batch", "2", "--max-memory", "0.5MB").exit_code == 1


def test_bad_input_is_one_line_exit_2():
    for args in (["--optimizer", "rmsprop"], ["--dtype", "int8"], ["--batch", "0"], ["--max-memory", "12XB"],
                 ["--amp", "fp8"], ["--allocator", "tpu"]):
        result = run("memory", "lenet5", *args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    result = run("memory", "alexnet_original", "--input-size", "3x64x64")  # the forward fails on meta
    assert result.exit_code == 2 and "too small" in result.output and len(result.output.strip().splitlines()) == 1


def test_csv_is_deterministic_and_plot_written(tmp_path):
    first, second, png = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "t.png"
    assert run("memory", "resnet20", "--kwargs", "width=2", "-o", first, "--plot", png).exit_code == 0
    assert run("memory", "resnet20", "--kwargs", "width=2", "-o", second).exit_code == 0
    assert first.read_bytes() == second.read_bytes() and png.read_bytes()[:4] == b"\x89PNG"


def test_cuda_allocator_and_checkpoint_lines():
    result = run("memory", "resnet20", "--kwargs", "width=2", "--allocator", "cuda", "--checkpoint-blocks")
    assert result.exit_code == 0, result.output
    assert "reserved peak" in result.output and "checkpointing saves" in result.output


def test_summary_training_columns_add_up_to_the_step():
    result = run("summary", "resnet20", "--kwargs", "width=2", "--training", "--format", "json")
    assert result.exit_code == 0, result.output
    layers = json.loads(result.output)["layers"]
    step = json.loads(run("memory", "resnet20", "--kwargs", "width=2", "--format", "json").output)
    loss = next(r for r in step["layers"] if r["name"] == "(loss)")
    for column in ("backward_flops", "saved_bytes", "grad_bytes"):
        assert sum(r[column] for r in layers) == step["totals"][column] - loss[column], column


def test_parse_bytes():
    assert parse_bytes("24GB") == 24 * 10**9 and parse_bytes("24GiB") == 24 * 2**30 and parse_bytes("1.5M") == 1_500_000


def test_report_section():
    from netprobe.report.config import ModelEntry, load_config
    from netprobe.report.memory_step import memory_step

    config = load_config()
    config.bottleneck = None
    section = memory_step([ModelEntry("resnet20", {"width": 2}, None, ["memory"])], config)
    row = section.tables[0].frame.iloc[0]
    from netprobe.zoo import load

    params = sum(p.numel() for p in load("resnet20", width=2).parameters())
    assert row["param_bytes"] == 4 * params and row["adam_state_bytes"] == 8 * params and row["batch"] == 32
    assert section.plots[0].images["png"][:4] == b"\x89PNG"
