"""gradients, train and landscape on models from a file or a module (file.py:Name, module:Name) with --kwargs
and --input-size; the classifier check, the refused twin flags and the `:Name` hint."""

import textwrap

import pandas as pd
import pytest
import torch

from helpers import FIXTURE_DIR as FIXTURE, run

DATA = ("--data", f"cifar10:{FIXTURE}")  # 40 training images of 3x32x32, 10 classes
SIZE = ("--input-size", "3x32x32")
SMALL = ("--batch-size", "4", "--batches", "1")
SOURCE = """
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self, depth=1, width=4, classes=10):
            super().__init__()
            self.convs = nn.Sequential(*[nn.Conv2d(3 if i == 0 else width, width, 3, padding=1) for i in range(depth)])
            self.fc = nn.Linear(width, classes)

        def forward(self, x):
            return self.fc(self.convs(x).relu().mean((2, 3)))


    class Seg(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return self.conv(x)
"""


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """tinynets.py in a temporary folder, importable as the module tinynets too; the path to the file."""
    path = tmp_path / "tinynets.py"
    path.write_text(textwrap.dedent(SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return path


@pytest.mark.parametrize("form", ["file", "module"])
def test_gradients_profile_has_the_layers_the_kwargs_build(tiny, tmp_path, form):
    model = f"{tiny}:Net" if form == "file" else "tinynets:Net"
    result = run("gradients", model, "--kwargs", "depth=3", *SIZE, *DATA, *SMALL, "-o", tmp_path / "g.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "g.csv")
    assert table["layer"].tolist() == ["convs.0", "convs.1", "convs.2", "fc"]  # depth=3 convs, then the linear
    assert table["depth"].tolist() == [1, 2, 3, 4] and (table["grad_norm"] > 0).all()


def test_train_checkpoint_of_a_file_model_feeds_gradients_and_landscape(tiny, tmp_path):
    ckpt = tmp_path / "net.pt"
    result = run("train", f"{tiny}:Net", "--kwargs", "width=6", *SIZE, *DATA, "--epochs", "1", "--batch-size", "20",
                 "--no-progress", "-o", ckpt)
    assert result.exit_code == 0, result.output
    saved = torch.load(ckpt, weights_only=True)
    assert saved["meta"]["model"] == f"{tiny}:Net" and saved["meta"]["options"] == {}
    assert tuple(saved["state_dict"]["convs.0.weight"].shape) == (6, 3, 3, 3)  # width=6 reached the class
    common = (f"{tiny}:Net", "--kwargs", "width=6", *SIZE, *DATA, "--weights", ckpt)
    assert run("gradients", *common, *SMALL).exit_code == 0
    result = run("landscape", *common, "--dim", "1", "--steps", "3", "--samples", "8", "--no-progress",
                 "-o", tmp_path / "ls")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "ls" / "surface.csv")["x"].tolist() == [-1.0, 0.0, 1.0]  # -1:1 in 3 steps
    assert pd.read_csv(tmp_path / "ls" / "summary.csv")["model"].tolist() == [f"{tiny}:Net"]
    # The checkpoint belongs to the file model named by its MODEL: another name is refused by name.
    result = run("gradients", "tinynets:Net", "--kwargs", "width=6", *SIZE, *DATA, "--weights", ckpt, *SMALL)
    assert result.exit_code == 2 and f"holds weights of {tiny}:Net" in result.output


def test_landscape_of_a_module_model_at_initialisation(tiny, tmp_path):
    result = run("landscape", "tinynets:Net", *SIZE, *DATA, "--train-epochs", "0", "--dim", "1", "--steps", "3",
                 "--samples", "8", "--no-progress", "-o", tmp_path / "ls")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "ls" / "surface.csv")) == 3


def test_zoo_kwargs_reach_the_builder_and_the_checkpoint(tmp_path):
    ckpt = tmp_path / "r20.pt"
    result = run("train", "resnet20", "--kwargs", "width=4", *DATA, "--epochs", "1", "--batch-size", "20",
                 "--no-progress", "-o", ckpt)
    assert result.exit_code == 0, result.output
    saved = torch.load(ckpt, weights_only=True)
    assert saved["meta"]["options"] == {"width": 4} and tuple(saved["state_dict"]["conv1.weight"].shape) == (4, 3, 3, 3)
    result = run("gradients", "resnet20", "--kwargs", "width=4", *SMALL, "-o", tmp_path / "g.csv")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "g.csv")) == 20  # 6n + 2 weighted layers, n = 3 (option-A shortcuts)


TWIN = "has no shortcuts to remove: {} apply to the zoo's residual families"


@pytest.mark.parametrize("command, extra, message", [
    ("gradients", ("--plain",), TWIN.format("--plain and --compare")),
    ("gradients", ("--compare",), TWIN.format("--plain and --compare")),
    ("train", ("--plain", "-o", "x.pt"), TWIN.format("--plain")),
    ("landscape", ("--plain", "-o", "ls"), TWIN.format("--plain and --compare")),
    ("landscape", ("--compare", "-o", "ls"), TWIN.format("--plain and --compare")),
])
def test_twin_flags_are_refused_for_file_models(tiny, tmp_path, monkeypatch, command, extra, message):
    monkeypatch.chdir(tmp_path)
    result = run(command, f"{tiny}:Net", *SIZE, *extra)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tinynets.py"]  # nothing written


@pytest.mark.parametrize("command, extra", [("gradients", ()), ("train", ("-o", "x.pt")),
                                            ("landscape", ("-o", "ls"))])
def test_classifier_check_names_the_output(tiny, tmp_path, monkeypatch, command, extra):
    monkeypatch.chdir(tmp_path)
    result = run(command, f"{tiny}:Seg", "--input-size", "3x8x8", *extra)
    assert result.exit_code == 2, result.output
    assert f"{tiny}:Seg is not a classifier (its output is (2, 2, 8, 8))" in result.output


@pytest.mark.parametrize("command, extra", [("gradients", ()), ("train", ("-o", "x.pt")),
                                            ("landscape", ("-o", "ls")), ("summary", ())])
def test_a_file_without_name_is_told_the_form(tiny, command, extra):
    result = run(command, tiny, *extra)
    assert result.exit_code == 2
    assert f"{tiny} is a file: name the model in it as {tiny}:Net (it defines: Net, Seg)" in result.output


@pytest.mark.parametrize("args, message", [
    ((":Net",), "is not a zoo model: give its input with --input-size CxHxW"),
    ((":Net", "--kwargs", "classes=7", *SIZE), ":Net has 7 outputs and cannot be built for the 10 classes"),
    ((":Net", "--kwargs", "nosuch=1", *SIZE), "Net(nosuch=1) raised TypeError"),
])
def test_file_model_errors_are_one_line(tiny, args, message):
    result = run("gradients", f"{tiny}{args[0]}", *args[1:], *DATA, *SMALL)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_zoo_kwargs_are_checked_by_name():
    result = run("gradients", "lenet5", "--kwargs", "width=4")
    assert result.exit_code == 2
    assert "lenet5 does not take option 'width' (it takes: num_classes, in_channels)" in result.output
