"""Every --weights reader builds the model a checkpoint was trained for: the depth study's width-4 nets load."""

import pytest
import torch

from netprobe.train import save_checkpoint
from netprobe.zoo import load
from helpers import FIXTURE_DIR as FIXTURE, run

DATA = ("--data", f"cifar10:{FIXTURE}")


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    """A plain resnet20 at width 4 (stages 4, 8, 16), saved with the meta `netprobe depth` writes."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "plain20_w4.pt"
    save_checkpoint(path, load("resnet20", plain=True, width=4),
                    {"model": "resnet20", "options": {"plain": True, "width": 4}, "data": "synthetic", "epoch": 1})
    return path


@pytest.mark.parametrize("command", [
    ("gradients", "resnet20", "--plain", *DATA, "--batch-size", "4", "--batches", "1"),
    ("landscape", "resnet20", "--plain", *DATA, "--dim", "1", "--steps", "3", "--samples", "8", "--no-progress"),
    ("rf", "resnet20", "--plain", "--effective", "--samples", "2"),
])
def test_width_4_checkpoint_loads(narrow, tmp_path, command):
    # The zoo default is width 16: building that and loading width-4 weights would exit 2 on a shape mismatch.
    out = ("-o", tmp_path / "out") if command[0] == "landscape" else ()
    result = run(*command, "--weights", narrow, *out)
    assert result.exit_code == 0, result.output


def test_checkpoint_of_another_model_is_refused_by_name(narrow):
    result = run("gradients", "resnet56", "--plain", *DATA, "--batch-size", "4", "--batches", "1", "--weights", narrow)
    assert result.exit_code == 2
    assert "holds weights of resnet20" in result.output
