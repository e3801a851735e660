"""Bad input that used to do something other than asked: a --kwargs key given again by a dedicated option with
another value (one silently won), and a user model built on the meta device reaching a command that computes."""

import textwrap

import pytest
import torch

from helpers import FIXTURE_DIR as FIXTURE, one_line_error, run

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

DATA = ("--data", f"cifar10:{FIXTURE}")  # 40 training images of 3x32x32, 10 classes
SIZE = ("--input-size", "3x32x32")
SOURCE = """
    import torch
    import torch.nn as nn

    from netprobe.zoo.cifar_resnet import BasicBlock


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))


    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.block = BasicBlock(4, 4)  # a block the lesion study can delete
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.block(self.conv(x)).mean((2, 3)))


    def on_meta():
        with torch.device("meta"):
            return Net()


    def res_on_meta():
        with torch.device("meta"):
            return Res()
"""


@pytest.mark.parametrize("given, flag, parts", [
    (("--kwargs", "width=4"), ("--width", "8"), ("--kwargs width=4", "--width 8")),
    (("--kwargs", "bn=True"), ("--no-bn",), ("--kwargs bn=True", "--no-bn")),
])
def test_lesion_refuses_a_kwarg_its_dedicated_option_contradicts(tmp_path, given, flag, parts):
    one_line_error(run("lesion", "resnet20", *given, *flag, "-o", tmp_path / "out"), *parts)


@pytest.mark.parametrize("given, flag", [(("--kwargs", "width=4"), ("--width", "4")),
                                         (("--kwargs", "bn=False"), ("--no-bn",))])
def test_lesion_accepts_the_same_value_twice(tmp_path, given, flag):
    blocked = tmp_path / "file"
    blocked.write_text("")  # the output check, which comes after the options are merged, stops the run
    result = run("lesion", "resnet20", *given, *flag, "-o", blocked / "out")
    one_line_error(result, "file")
    assert "conflicts" not in result.output


def test_train_refuses_kwargs_plain_false_with_plain(tmp_path):
    result = run("train", "resnet20", "--kwargs", "plain=False", "--plain", "-o", tmp_path / "x.pt")
    one_line_error(result, "--kwargs plain=False", "--plain")
    assert not (tmp_path / "x.pt").exists()


def test_gradients_points_kwargs_plain_to_the_twin_flags():
    one_line_error(run("gradients", "resnet20", "--kwargs", "plain=True"), "--plain", "--compare", "plain=True")


@pytest.fixture
def meta_model(tmp_path):
    """A file whose factory builds its model on the meta device, and a CPU state dict of the same layout."""
    path = tmp_path / "metanet.py"
    path.write_text(textwrap.dedent(SOURCE))
    namespace = {}
    exec(textwrap.dedent(SOURCE), namespace)  # noqa: S102 - the test's own source
    weights = tmp_path / "net.pt"
    torch.save(namespace["Net"]().state_dict(), weights)
    return f"{path}:on_meta", weights


@pytest.mark.parametrize("command", [
    ("gradients", "--batch-size", "4", "--batches", "1"),
    ("landscape", "--dim", "1", "--steps", "3", "--samples", "8", "--no-progress", "-o", "{tmp}/ls"),
    ("hessian", "--samples", "8", "--probes", "1", "--iters", "2", "--no-progress"),
])
@pytest.mark.parametrize("with_weights", [True, False])
def test_a_meta_built_model_is_refused_by_compute_commands(meta_model, tmp_path, command, with_weights):
    model, weights = meta_model
    name, *rest = (part.replace("{tmp}", str(tmp_path)) for part in command)
    extra = ("--weights", weights) if with_weights else ()
    if name == "landscape" and not with_weights:
        extra = ("--train-epochs", "0")
    one_line_error(run(name, model, *SIZE, *DATA, *rest, *extra), "meta device", "build it on the CPU")


def test_lesion_refuses_a_meta_built_model(meta_model, tmp_path):
    model, _ = meta_model
    result = run("lesion", model.replace(":on_meta", ":res_on_meta"), *SIZE, *DATA, "--samples", "8",
                 "--no-progress", "-o", tmp_path / "les")
    one_line_error(result, "meta device", "build it on the CPU")


def test_train_refuses_a_meta_built_model(meta_model, tmp_path):
    model, _ = meta_model
    result = run("train", model, *SIZE, *DATA, "--epochs", "1", "--no-progress", "-o", tmp_path / "m.pt")
    one_line_error(result, "meta device", "build it on the CPU")
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("command", ["summary", "rf"])
def test_summary_and_rf_still_take_a_meta_built_model(meta_model, command):
    model, _ = meta_model
    result = run(command, model, *SIZE)
    assert result.exit_code == 0, result.output
    if command == "summary":
        # conv 4*3*3*3 + 4, BN 4 + 4, linear 4*10 + 10: 170 parameters by hand
        assert "params 170" in result.output
