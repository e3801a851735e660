"""Per-family recipes: LeNet-5 learns scikit-learn's real digits; a data set smaller than the batch trains."""

import pandas as pd
import pytest
from click.testing import CliRunner

from netprobe.cli.main import cli
from netprobe.train.recipes import HE, recipe


def test_recipes_per_family():
    # He et al. 2016 Sec. 4.2: SGD lr 0.1, momentum 0.9, weight decay 1e-4; Simonyan and Zisserman: 0.01, 5e-4.
    assert (HE.lr, HE.momentum, HE.weight_decay) == (0.1, 0.9, 1e-4) and recipe("cifar_resnet") is HE
    assert (recipe("vgg").lr, recipe("vgg").weight_decay) == (0.01, 5e-4)
    assert recipe("lenet").optimizer == "adam"


def test_lenet5_learns_real_digits(tmp_path):
    pytest.importorskip("sklearn")
    ckpt = tmp_path / "lenet.pt"
    result = CliRunner().invoke(cli, ["train", "lenet5", "--data", "digits", "--epochs", "8", "--no-progress",
                                      "-o", str(ckpt)])
    assert result.exit_code == 0, result.output
    history = pd.read_csv(ckpt.with_suffix(".csv"))
    # Chance is 0.1 (ten balanced classes); the paper's SGD at its init stays at loss ln 10 = 2.303.
    assert history.test_acc.iloc[-1] > 0.85
    assert history.train_loss.iloc[-1] < 1.0


def test_batch_larger_than_data_is_clamped(tmp_path):
    pytest.importorskip("sklearn")
    ckpt = tmp_path / "lenet.pt"
    result = CliRunner().invoke(cli, ["train", "lenet5", "--data", "digits", "--epochs", "1", "--batch-size",
                                      "5000", "--no-progress", "-o", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert "clamped to 1438" in result.output
