"""A checkpoint is measured on the data it was trained on: landscape and gradients take --data from it."""

import pytest
from click.testing import CliRunner

from netprobe.cli.main import cli

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "d.pt"
    result = CliRunner().invoke(cli, ["train", "lenet5", "--data", "digits", "--epochs", "1", "--no-progress",
                                      "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _csv(tmp_path, *args):
    result = CliRunner().invoke(cli, [*map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_landscape_slices_on_the_checkpoint_data(tmp_path, digits_ckpt):
    common = ["landscape", "lenet5", "--weights", digits_ckpt, "--dim", "1", "--steps", "3", "--samples", "64",
              "--no-progress"]
    _csv(tmp_path, *common, "-o", tmp_path / "own")
    _csv(tmp_path, *common, "--data", "digits", "-o", tmp_path / "digits")
    _csv(tmp_path, *common, "--data", "synthetic", "-o", tmp_path / "syn")
    own, digits, syn = ((tmp_path / d / "surface.csv").read_text() for d in ("own", "digits", "syn"))
    assert own == digits != syn


def test_gradients_use_the_checkpoint_data(tmp_path, digits_ckpt):
    common = ["gradients", "lenet5", "--weights", digits_ckpt, "--batch-size", "8", "--batches", "1"]
    _csv(tmp_path, *common, "-o", tmp_path / "own.csv")
    _csv(tmp_path, *common, "--data", "digits", "-o", tmp_path / "digits.csv")
    _csv(tmp_path, *common, "--data", "synthetic", "-o", tmp_path / "syn.csv")
    own, digits, syn = ((tmp_path / f"{d}.csv").read_text() for d in ("own", "digits", "syn"))
    assert own == digits != syn
