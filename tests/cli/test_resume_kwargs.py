"""landscape and hessian --resume of a model from a file: the --kwargs bound into its builder are part of the
recorded settings, so a resume with other ones is refused in one line and the kept state is left as it was."""

import textwrap

import pytest
import torch

from helpers import run

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py
SOURCE = """
    import torch.nn as nn


    def make(width=4, pool=(1, 1)):
        return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(width * pool[0] * pool[1], 10))
"""
SIZE = ("--input-size", "3x8x8")
# A tuple reads back from the landscape's JSON settings as a list: the same kwargs must still match.
SAME = ("--kwargs", "width=3", "--kwargs", "pool=(2, 1)")
OTHER = ("--kwargs", "width=5", "--kwargs", "pool=(2, 1)")
LANDSCAPE = (*SIZE, "--data", "synthetic", "--train-epochs", "0", "--samples", "8", "--steps", "3",
             "--no-progress")
HESSIAN = (*SIZE, "--data", "synthetic", "--samples", "8", "--top", "1", "--iters", "3", "--probes", "2",
           "--no-progress")


@pytest.fixture
def model(tmp_path):
    """MODEL naming the factory of a tiny Conv+BN+ReLU+pool+Linear net in a file under tmp_path."""
    path = tmp_path / "nets.py"
    path.write_text(textwrap.dedent(SOURCE))
    return f"{path}:make"


def snapshot(directory):
    """{name: bytes} of every file in `directory`."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_landscape_resume_refuses_other_kwargs_and_resumes_with_the_same(model, tmp_path, monkeypatch):
    from netprobe.analysis.surfaces import landscape as ls

    fresh = run("landscape", model, *SAME, *LANDSCAPE, "-o", tmp_path / "fresh")
    assert fresh.exit_code == 0, fresh.output
    killed, calls, real = tmp_path / "killed", [], ls._point

    def dies_after_4(*args):
        if len(calls) == 4:
            raise RuntimeError("killed")
        calls.append(1)
        return real(*args)

    with monkeypatch.context() as m:
        m.setattr(ls, "_point", dies_after_4)
        assert run("landscape", model, *SAME, *LANDSCAPE, "-o", killed).exit_code != 0
    kept = snapshot(killed)
    other = run("landscape", model, *OTHER, *LANDSCAPE, "--resume", "-o", killed)
    assert other.exit_code == 2 and "Traceback" not in other.output
    assert "'width': 3" in other.output and "'width': 5" in other.output
    assert len(other.output.strip().splitlines()) == 1
    assert snapshot(killed) == kept  # the settings and the four logged points are left as they were
    without = run("landscape", model, *LANDSCAPE, "--resume", "-o", killed)
    assert without.exit_code == 2 and "this one has no options" in without.output
    resumed = run("landscape", model, *SAME, *LANDSCAPE, "--resume", "-o", killed)
    assert resumed.exit_code == 0, resumed.output
    assert "5 points computed, 4 resumed" in resumed.output  # 3 x 3 grid, 4 logged before the kill
    assert (killed / "surface.csv").read_bytes() == (tmp_path / "fresh" / "surface.csv").read_bytes()


def test_landscape_resume_of_a_zoo_model_refuses_other_kwargs(tmp_path, monkeypatch):
    from netprobe.analysis.surfaces import landscape as ls

    calls, real = [], ls._point

    def killed(*args):  # after one point, so the folder holds a logged point and is kept
        if calls:
            raise RuntimeError("killed")
        calls.append(1)
        return real(*args)

    args = ("--data", "synthetic", "--train-epochs", "0", "--samples", "4", "--steps", "2", "--dim", "1",
            "--no-progress", "-o", tmp_path / "run")
    with monkeypatch.context() as m:
        m.setattr(ls, "_point", killed)
        assert run("landscape", "lenet5", "--kwargs", "num_classes=10", *args).exit_code != 0
    kept = snapshot(tmp_path / "run")
    other = run("landscape", "lenet5", *args, "--resume")
    assert other.exit_code == 2 and "options={'num_classes': 10}" in other.output, other.output
    assert snapshot(tmp_path / "run") == kept


def test_hessian_resume_refuses_other_kwargs_and_resumes_with_the_same(model, tmp_path, monkeypatch):
    import netprobe.analysis.hessian.measure as measure_module
    import netprobe.analysis.hessian.study as study_module
    from netprobe.analysis.hessian.study import STATE

    fresh = run("hessian", model, *SAME, *HESSIAN, "-o", tmp_path / "fresh")
    assert fresh.exit_code == 0, fresh.output
    out = tmp_path / "run"

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(measure_module, "trace", killed)  # killed once the eigenvalue is found and checkpointed
        assert run("hessian", model, *SAME, *HESSIAN, "-o", out).exit_code == 1
    kept = (out / STATE).read_bytes()
    assert list(torch.load(out / STATE, weights_only=True)["finished"]) == ["residual/model/eigen"]
    other = run("hessian", model, *OTHER, *HESSIAN, "--resume", "-o", out)
    assert other.exit_code == 2 and "Traceback" not in other.output
    assert "'width': 3" in other.output and "'width': 5" in other.output
    assert (out / STATE).read_bytes() == kept
    resized = run("hessian", model, *SAME, *HESSIAN, "--input-size", "3x6x6", "--resume", "-o", out)
    assert resized.exit_code == 2 and "input_size=[3, 8, 8]" in resized.output
    assert (out / STATE).read_bytes() == kept
    resumed = run("hessian", model, *SAME, *HESSIAN, "--resume", "-o", out)
    assert resumed.exit_code == 0, resumed.output
    assert (out / "hessian.csv").read_bytes() == (tmp_path / "fresh" / "hessian.csv").read_bytes()
