"""Devices: cpu|cuda|auto resolved once, refused in one line without CUDA, files saved on a GPU read on the CPU."""

import pytest
import torch
from click.testing import CliRunner

from netprobe.cli.main import cli
from netprobe.devices import autocast, resolve, to_device
from netprobe.errors import NetprobeError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def test_cpu_and_auto_resolve_to_the_cpu_here():
    assert resolve("cpu") == torch.device("cpu")
    assert resolve(torch.device("cpu")) == torch.device("cpu")
    assert resolve("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))


@no_cuda
def test_cuda_without_cuda_is_one_line_naming_the_parameter():
    with pytest.raises(NetprobeError, match=r"^device 'cuda' asked for, but this torch sees no CUDA device") as err:
        resolve("cuda")
    assert "\n" not in str(err.value) and "--device" not in str(err.value)


def test_unknown_device_is_refused():
    with pytest.raises(NetprobeError, match="unknown device 'tpu'"):
        resolve("tpu")


def test_amp_is_refused_on_the_cpu_and_off_is_no_context():
    with pytest.raises(NetprobeError, match="amp"):
        autocast(torch.device("cpu"), True)
    with autocast(torch.device("cpu"), False):
        assert not torch.is_autocast_enabled()


def test_fit_refuses_amp_on_the_cpu_before_training():
    from netprobe.data import load_data
    from netprobe.train import fit

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(NetprobeError, match="amp"):
        fit(model, load_data("synthetic", input_size=(3, 8, 8)), epochs=1, batch_size=8, lr=0.1, seed=0,
            progress=False, amp=True)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_to_device_on_the_cpu_copies_nothing():
    from netprobe.data import load_data

    data = load_data("synthetic", input_size=(3, 8, 8))
    assert to_device(data, torch.device("cpu")) is data


@no_cuda
def test_landscape_device_cuda_without_cuda_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["landscape", "resnet20", "--kwargs", "width=2", "--device", "cuda",
                                      "--train-epochs", "0", "--steps", "2", "--samples", "8", "--no-progress",
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "CUDA" in result.output
    assert not (tmp_path / "out").exists()  # the run created nothing


def test_device_option_choices():
    from netprobe.cli.options import device_option

    @device_option
    def command(device):
        return device

    param = command.__click_params__[0]
    assert param.name == "device" and list(param.type.choices) == ["cpu", "cuda", "auto"] and param.default == "cpu"


@pytest.fixture
def saved_on_cuda(monkeypatch):
    """torch.save tagging every storage as cuda:0, as a save on a GPU does (the bytes a GPU machine writes)."""
    import torch.serialization as ser

    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")


def test_a_gpu_checkpoint_loads_on_a_cpu_only_machine(tmp_path, saved_on_cuda):
    from netprobe.train import load_weights, save_checkpoint
    from netprobe.zoo import load

    torch.manual_seed(0)
    model = load("resnet20", width=2)
    path = save_checkpoint(tmp_path / "gpu.pt", model, {"model": "resnet20", "options": {"width": 2}})
    if not torch.cuda.is_available():  # the file really asks for a GPU: a plain load is refused
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    fresh = load("resnet20", width=2)
    load_weights(fresh, path)
    assert all(torch.equal(a, b) and b.device.type == "cpu" for a, b in zip(model.state_dict().values(),
                                                                           fresh.state_dict().values()))


def test_gpu_directions_snapshots_and_hessian_state_load_on_the_cpu(tmp_path, saved_on_cuda):
    from netprobe.analysis.depth.pair import _save_snapshots, load_snapshots
    from netprobe.runs import Progress
    from netprobe.analysis.surfaces.directions import directions_bytes, load_directions

    tensor = torch.arange(6.0).reshape(2, 3)
    (tmp_path / "d.pt").write_bytes(directions_bytes([{"w": tensor}], {"model": "m"}))
    assert torch.equal(load_directions(tmp_path / "d.pt")[0][0]["w"], tensor)
    _save_snapshots(tmp_path / "s.pt", ([0], [{"w": tensor}]), {"model": "m"})
    assert torch.equal(load_snapshots(tmp_path / "s.pt")[1][0]["w"], tensor)
    Progress(tmp_path / "h.pt", {"a": 1}).finish("piece", {"v": tensor})
    assert torch.equal(Progress(tmp_path / "h.pt", {"a": 1}, resume=True).get("piece")["v"], tensor)
