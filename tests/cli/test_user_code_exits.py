"""Outputs never overwrite the run's inputs or each other; sys.exit in a model's code is a failure (exit 2)."""

import textwrap

import pytest

from helpers import run as _run

MODELS = textwrap.dedent("""
    import sys
    import torch

    class Ctor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            sys.exit(0)

    class Fwd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            sys.exit(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x.flatten(1))
""")


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(MODELS)
    return tmp_path / "m.py"


SIZE = ["--input-size", "1x2x2"]
COMMANDS = [["summary"], ["gradients", "--batch-size", "2", "--batches", "1"],
            ["train", "--epochs", "1", "--data", "synthetic", "-o", "t.pt", "--no-progress"],
            ["landscape", "--train-epochs", "0", "--steps", "2", "--samples", "2", "-o", "L", "--no-progress"],
            ["hessian", "--samples", "2", "--iters", "1", "--probes", "0", "-o", "H", "--no-progress"],
            ["rf", "--effective", "--samples", "1"]]


@pytest.mark.parametrize("name", ["Ctor", "Fwd"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_sys_exit_in_model_code_is_exit_2(models, name, command):
    result = _run(command[0], f"m.py:{name}", *SIZE, *command[1:])
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "m.py:" in result.output and "sys.exit(0)" in result.output, result.output


def test_sys_exit_in_a_report_model_is_exit_2(models):
    (models.parent / "r.toml").write_text('[[models]]\nname = "m.py:Fwd"\ninput_size = "1x2x2"\n'
                                          'analyses = ["summary"]\n')
    result = _run("report", "--config", "r.toml", "-o", "rep", "--no-progress")
    assert result.exit_code == 2 and "sys.exit(0)" in result.output, result.output
    assert not (models.parent / "rep").exists()


def test_output_over_the_model_file_refused(models):
    result = _run("summary", "m.py:Net", *SIZE, "-o", "m.py")
    assert result.exit_code == 2 and "input" in result.output, result.output
    assert models.read_text() == MODELS


@pytest.mark.parametrize("command", [["gradients", "m.py:Net", *SIZE], ["rf", "lenet5"]], ids=lambda c: c[0])
def test_table_and_plot_at_one_path_refused(models, command):
    result = _run(*command, "-o", "same.png", "--plot", "same.png")
    assert result.exit_code == 2 and "both name" in result.output, result.output
    assert not (models.parent / "same.png").exists()


def test_train_keeps_an_unrelated_csv_beside_the_checkpoint(models):
    (models.parent / "x.csv").write_text("my,data\n")
    result = _run("train", "m.py:Net", *SIZE, "--epochs", "1", "--data", "synthetic", "-o", "x.pt")
    assert result.exit_code == 2 and "x.csv" in result.output, result.output
    assert (models.parent / "x.csv").read_text() == "my,data\n" and not (models.parent / "x.pt").exists()
