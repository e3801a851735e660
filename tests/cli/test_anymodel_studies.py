"""hessian and lesion on models from a file or a module (file.py:Name, module:Name) with --kwargs and --input-size:
the Hessian of a zero-initialised linear classifier by hand, the kwargs reaching the model, and the refusals."""

import textwrap

import pandas as pd
import pytest
import torch

from helpers import FIXTURE_DIR, run

DATA = ("--data", f"cifar10:{FIXTURE_DIR}")  # 40 training and 20 test images of 3x32x32, 10 classes
SIZE = ("--input-size", "3x32x32")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py
SOURCE = """
    import torch.nn as nn
    from netprobe.zoo.cifar_resnet import BasicBlock as OurBlock


    class Net(nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.fc = nn.Linear(width, 10)

        def forward(self, x):
            return self.fc(self.conv(x).relu().mean((2, 3)))


    class Linear(nn.Module):
        def __init__(self, *, classes):  # no default: a build without the --kwargs fails
            super().__init__()
            self.fc = nn.Linear(1, classes, bias=False)
            nn.init.zeros_(self.fc.weight)

        def forward(self, x):
            return self.fc(x.mean((1, 2, 3)).unsqueeze(1))


    class Seg(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return self.conv(x)


    class BasicBlock(nn.Module):  # torchvision's layout, but the user's own class
        def __init__(self, planes):
            super().__init__()
            self.conv1 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)

        def forward(self, x):
            return (self.bn2(self.conv2(self.bn1(self.conv1(x)).relu())) + x).relu()


    class ResNet(nn.Module):
        def __init__(self, blocks=2, ours=False, zero=False, classes=10):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.layer1 = nn.Sequential(*[OurBlock(4, 4) if ours else BasicBlock(4) for _ in range(blocks)])
            if zero:  # every residual branch ends in a BatchNorm of scale 0: each block is relu(x)
                for block in self.layer1:
                    nn.init.zeros_(block.bn2.weight)
            self.fc = nn.Linear(4, classes)

        def forward(self, x):
            return self.fc(self.layer1(self.stem(x).relu()).mean((2, 3)))
"""


@pytest.fixture
def nets(tmp_path, monkeypatch):
    """anynets.py in a temporary folder, importable as the module anynets too; the path to the file."""
    path = tmp_path / "anynets.py"
    path.write_text(textwrap.dedent(SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return path


def one_line_error(result, text):
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1 and text in result.output


def test_hessian_of_a_file_model_gets_its_kwargs(nets, tmp_path):
    result = run("hessian", f"{nets}:Net", "--kwargs", "width=3", *SIZE, "--samples", "16", "--probes", "2",
                 "--iters", "20", "--no-progress", "-o", tmp_path / "h")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "h" / "hessian.csv")
    assert table[["scope", "quantity"]].values.tolist() == [["model", "eigenvalue_1"], ["model", "trace"]]
    assert table["samples"].tolist() == [16, 16]
    saved = torch.load(tmp_path / "h" / "eigenvectors-residual.pt", weights_only=True)
    vector = saved["directions"][0]
    assert tuple(vector["conv.weight"].shape) == (3, 3, 3, 3)  # width=3 reached the class
    assert sum(float((t.double() ** 2).sum()) for t in vector.values()) == pytest.approx(1, rel=1e-5)


def test_hessian_of_a_zero_linear_classifier_by_hand(nets, tmp_path):
    """logits = w f, f the image's mean, w = 0: every softmax is uniform (p = 1/K), so the Hessian of the mean
    cross-entropy in w is (I/K - 11'/K^2) m, m = mean f^2: eigenvalues m/K (K-1 times) and 0, trace (K-1)/K m."""
    from netprobe.data import load_data

    result = run("hessian", "anynets:Linear", "--kwargs", "classes=10", *SIZE, *DATA, "--samples", "40",
                 "--probes", "200", "--tol", "1e-6", "--no-progress", "-o", tmp_path / "h")
    assert result.exit_code == 0, result.output
    x = load_data(DATA[1], input_size=(3, 32, 32), seed=0).train.x.double()  # all 40: the subset is the set
    m = float((x.mean((1, 2, 3)) ** 2).mean())
    table = pd.read_csv(tmp_path / "h" / "hessian.csv").set_index("quantity")
    assert table.loc["eigenvalue_1", "value"] == pytest.approx(m / 10, rel=1e-5)
    exact = 9 / 10 * m
    assert abs(table.loc["trace", "value"] - exact) < 3 * table.loc["trace", "stderr"]


@pytest.mark.parametrize("command", ["hessian", "lesion"])
def test_a_non_classifier_is_refused(nets, tmp_path, command):
    result = run(command, f"{nets}:Seg", *SIZE, "-o", tmp_path / "out")
    one_line_error(result, f"{nets}:Seg is not a classifier (its output is (2, 2, 32, 32))")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, flag", [("hessian", "--plain"), ("hessian", "--compare"),
                                           ("lesion", "--plain"), ("lesion", "--compare")])
def test_twin_flags_are_refused_for_a_user_model(nets, tmp_path, command, flag):
    result = run(command, "anynets:Net", *SIZE, flag, "-o", tmp_path / "out")
    one_line_error(result, "anynets:Net (a model from a file or module) has no shortcuts to remove: --plain and "
                           "--compare apply to the zoo's residual families")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("model", ["Net", "ResNet"])
def test_lesion_refuses_a_model_without_netprobes_blocks(nets, tmp_path, model):
    """Blocks are found by class (netprobe's BasicBlock and Bottleneck): a user's own residual block is not one."""
    result = run("lesion", f"{nets}:{model}", *SIZE, *DATA, "-o", tmp_path / "out")
    one_line_error(result, f"{model} has no deletable blocks")
    assert not (tmp_path / "out").exists()


def test_lesion_of_a_user_model_built_of_netprobes_blocks(nets, tmp_path):
    """Each block's branch ends in a BatchNorm of scale 0 (eval mode at init: running mean 0, variance 1, bias 0),
    so the block is relu(0 + x) and its deletion relu(x): nothing changes, exactly."""
    result = run("lesion", f"{nets}:ResNet", "--kwargs", "ours=True", "--kwargs", "blocks=3", "--kwargs",
                 "zero=True", *SIZE, *DATA, "--no-progress", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    single = pd.read_csv(tmp_path / "out" / "single.csv")
    assert single["block"].tolist() == ["layer1.0", "layer1.1", "layer1.2"]  # blocks=3 reached the class
    assert (single["loss_increase"] == 0).all() and (single["accuracy_drop"] == 0).all()
    assert pd.read_csv(tmp_path / "out" / "summary.csv")["chance"].tolist() == [0.1]


@pytest.mark.parametrize("command", ["hessian", "lesion", "landscape"])
def test_a_class_count_the_data_lacks_is_refused(nets, tmp_path, command):
    result = run(command, "anynets:ResNet", "--kwargs", "ours=True", "--kwargs", "classes=5", *SIZE, "--samples", "8",
                 "--no-progress", "-o", tmp_path / "out")
    one_line_error(result, "anynets:ResNet has 5 outputs and cannot be built for the 10 classes of synthetic")


def test_zoo_kwargs_reach_hessian_and_lesion(tmp_path):
    result = run("hessian", "resnet20", "--kwargs", "width=2", "--samples", "8", "--iters", "2", "--probes", "0",
                 "--no-progress", "-o", tmp_path / "h")
    assert result.exit_code == 0, result.output
    vector = torch.load(tmp_path / "h" / "eigenvectors-residual.pt", weights_only=True)["directions"][0]
    assert tuple(vector["conv1.weight"].shape) == (2, 3, 3, 3) and tuple(vector["linear.weight"].shape) == (10, 8)  # 4W
    result = run("lesion", "resnet20", "--kwargs", "width=2", "--samples", "8", "--no-progress", "-o", tmp_path / "l")
    assert result.exit_code == 0, result.output
    single = pd.read_csv(tmp_path / "l" / "single.csv")  # 3 stages of n = 3 blocks; stages 2 and 3 open by halving
    assert len(single) == 9 and single[single["downsampling"]]["block"].tolist() == ["layer2.0", "layer3.0"]


def test_a_file_models_checkpoint_feeds_the_hessian(nets, tmp_path):
    ckpt = tmp_path / "net.pt"
    common = (f"{nets}:Net", "--kwargs", "width=6", *SIZE, *DATA)
    result = run("train", *common, "--epochs", "1", "--batch-size", "20", "--no-progress", "-o", ckpt)
    assert result.exit_code == 0, result.output
    result = run("hessian", *common, "--weights", ckpt, "--samples", "8", "--iters", "2", "--probes", "0",
                 "--no-progress", "-o", tmp_path / "h")
    assert result.exit_code == 0, result.output
    saved = torch.load(tmp_path / "h" / "eigenvectors-residual.pt", weights_only=True)
    assert saved["meta"]["state"] == f"at {ckpt}" and tuple(saved["directions"][0]["conv.weight"].shape) == (6, 3, 3, 3)
    result = run("hessian", *common[:2], "width=5", *SIZE, *DATA, "--weights", ckpt, "--samples", "8")
    one_line_error(result, "has shape (6, 3, 3, 3) in the checkpoint, (5, 3, 3, 3) in the model")
