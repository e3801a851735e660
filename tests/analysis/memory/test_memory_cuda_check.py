"""benchmarks/memory_cuda_check.py on a machine without CUDA: one line and exit 0; --predict gives the table."""

import importlib.util

import pytest
import torch

from helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "memory_cuda_check.py"


@pytest.fixture
def check():
    spec = importlib.util.spec_from_file_location("memory_cuda_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-CUDA path")
def test_without_cuda_one_line_and_exit_0(check, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["memory_cuda_check.py"])
    assert check.main() == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_predictions_need_no_gpu(check, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["memory_cuda_check.py", "--predict", "--only", "lenet5"])
    assert check.main() == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| lenet5 |")]
    assert [row.split(" | ")[2] for row in rows] == ["momentum", "adam"]
    monkeypatch.setattr("sys.argv", ["memory_cuda_check.py", "--only", "lenet6"])
    assert check.main() == 2
