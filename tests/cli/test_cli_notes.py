"""Two small promises of the CLI: --responses at initialisation says why every std is ~1, and a landscape run
that created its folder and failed before computing anything leaves no folder behind."""

import pandas as pd
import pytest
import torch

from netprobe.train import save_checkpoint
from netprobe.zoo import load
from helpers import FIXTURE_DIR as FIXTURE, run

DATA = ("--data", f"cifar10:{FIXTURE}")  # 40 training images: nothing to generate
NOTE = "warning: at initialisation BatchNorm normalises each batch by its own statistics"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_responses_at_initialisation_say_why_they_are_one(tmp_path):
    result = run("gradients", "resnet20", "--responses", "--batch-size", "8", "--batches", "1", *DATA, "-o", tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    assert NOTE in result.stderr
    # Batch statistics, scale 1, shift 0: each channel's output variance is var / (var + eps) < 1, and var >> eps.
    stds = pd.read_csv(tmp_path / "r.csv")["response_std"]
    assert len(stds) == 19 and ((stds <= 1) & (stds > 0.999)).all()  # resnet20: 19 BatchNorms (option A)


def test_no_note_at_weights_or_without_batchnorm(tmp_path):
    ckpt = tmp_path / "r20.pt"
    save_checkpoint(ckpt, load("resnet20"), {"model": "resnet20"})
    result = run("gradients", "resnet20", "--responses", "--weights", ckpt, "--batch-size", "8", "--batches", "1", *DATA)
    assert result.exit_code == 0, result.output
    assert NOTE not in result.stderr
    result = run("gradients", "lenet5", "--responses", "--batch-size", "8", "--batches", "1", *DATA)
    assert result.exit_code == 0 and NOTE not in result.stderr  # no BatchNorm: the conv responses, not ~1


@pytest.mark.parametrize("existed", [False, True])
def test_failed_landscape_after_its_settings_leaves_no_new_folder(tmp_path, existed):
    other = tmp_path / "other.pt"
    save_checkpoint(other, torch.nn.Linear(2, 2), {"model": "lenet5"})
    out = tmp_path / "ls"
    if existed:
        out.mkdir()
    result = run("landscape", "resnet20", "--weights", other, "--dim", "1", "--steps", "3", "--samples", "8", *DATA,
                 "--no-progress", "-o", out)
    assert result.exit_code == 2 and "holds weights of lenet5, not of resnet20" in result.output
    assert out.exists() == existed  # a folder the user made is theirs to keep


def test_interrupt_before_any_point_says_nothing_was_kept(tmp_path, monkeypatch):
    from netprobe.analysis.surfaces import study

    out = tmp_path / "land"

    def interrupted(*args, **kwargs):
        out.mkdir()
        (out / study.SETTINGS).write_text("{}")  # the study records its settings first
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "study", interrupted)
    result = run("landscape", "resnet20", "--no-progress", "-o", out)
    assert result.exit_code == 1 and "interrupted before any point was computed; nothing was kept" in result.output
    assert not out.exists()
