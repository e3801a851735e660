"""Inputs that used to crash late or exit silently now get one line and exit 2, before any work."""

import pytest

from helpers import run


def test_gradients_refuses_a_model_without_class_scores():
    # U-Net's output is a 2-channel 388x388 map; the loss used to fail after the data was built (30 s).
    result = run("gradients", "unet")
    assert result.exit_code == 2
    assert "unet is not a classifier (its output is (2, 2, 388, 388))" in result.output


def test_landscape_refuses_a_model_without_class_scores(tmp_path):
    result = run("landscape", "unet", "-o", tmp_path / "ls")
    assert result.exit_code == 2
    assert "unet is not a classifier" in result.output and "a loss surface needs one score" in result.output
    assert not (tmp_path / "ls").exists()


def test_a_model_file_that_exits_is_named(tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(3)\n")
    result = run("summary", f"{path}:Net")
    assert result.exit_code == 2
    assert "its code called sys.exit(3)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["bottleneck", "--out", "9223372036854775807"],
                                  ["bottleneck", "--input", "28x28x9999999999999999"],
                                  ["compare", "--case", "3x3-vs-7x7", "--channels", "999999999999"],
                                  ["compare", "--case", "basic-vs-bottleneck", "--size", "99999999x99999999999"]])
def test_designs_too_large_for_int64_are_one_line(args):
    result = run(*args)
    assert result.exit_code == 2 and "2**60" in result.output and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. "
                                   "DefaultCPUAllocator: can't allocate memory: you tried to allocate 360 bytes. x")])
def test_an_allocation_the_machine_cannot_serve_is_one_line(monkeypatch, error):
    import netprobe.zoo.loading

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(netprobe.zoo.loading, "load_model", refuse)
    result = run("summary", "resnet20")
    assert result.exit_code == 2 and "not enough memory" in result.output and "Traceback" not in result.output
    assert ("one tensor of 360 bytes" in result.output) == isinstance(error, RuntimeError)


def test_other_runtime_errors_are_not_called_memory(monkeypatch):
    import netprobe.zoo.loading

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(netprobe.zoo.loading, "load_model", broken)
    result = run("summary", "resnet20")
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
