"""Checkpoints that load but would mislead: sparse or meta tensors, negative variances, a text mean, integer
weights, and malformed resume blocks are refused in one line."""

import pytest
import torch
from click.testing import CliRunner

from netprobe.cli.main import cli
from netprobe.errors import NetprobeError
from netprobe.train.checkpoint import load_checkpoint, mismatch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.bn = torch.nn.BatchNorm2d(2)


def _save(path, state, meta=None):
    torch.save({"state_dict": state, "meta": meta or {"model": "x"}}, path)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"conv.weight": s["conv.weight"].to_sparse()}), "sparse"),
    (lambda s: s.update({"conv.weight": torch.empty(2, 1, 3, 3, device="meta")}), "meta"),
    (lambda s: s.update({"bn.running_var": -torch.ones(2)}), "negative variance"),
])
def test_odd_tensors_refused(tmp_path, change, message):
    state = Net().state_dict()
    change(state)
    with pytest.raises(NetprobeError, match=message):
        load_checkpoint(_save(tmp_path / "c.pt", state))


@pytest.mark.parametrize("mean", [["a", "b"], [], [float("nan")]])
def test_text_or_empty_mean_refused(tmp_path, mean):
    with pytest.raises(NetprobeError, match="meta.mean"):
        load_checkpoint(_save(tmp_path / "c.pt", Net().state_dict(), {"model": "x", "mean": mean, "std": [1.0]}))


def test_integer_weights_are_a_mismatch():
    state = Net().state_dict()
    state["conv.weight"] = state["conv.weight"].long()
    assert "dtype torch.int64" in mismatch(Net(), state)


@pytest.mark.parametrize("breakage", [
    lambda r: r["optimizer"]["param_groups"].append(dict(r["optimizer"]["param_groups"][0])),
    lambda r: r["optimizer"]["param_groups"][0].update(params=[999]),
    lambda r: r.update(rng=torch.zeros(3, dtype=torch.uint8)),
    lambda r: r.update(shuffle_rng=torch.zeros(3, dtype=torch.uint8)),
])
def test_malformed_resume_block(tmp_path, monkeypatch, breakage):
    monkeypatch.chdir(tmp_path)
    args = ["train", "lenet5", "--kwargs", "in_channels=1", "--data", "digits", "--epochs", "1", "--no-progress",
            "-o", "c.pt"]
    pytest.importorskip("sklearn")
    saved = torch.load(_trained(tmp_path, args), weights_only=True)
    breakage(saved["meta"]["resume"])
    torch.save(saved, tmp_path / "c.pt")
    result = CliRunner().invoke(cli, [*args, "--resume"])
    assert result.exit_code == 2 and "is malformed" in result.output, (result.output, result.exc_info)


def _trained(tmp_path, args):
    """The checkpoint of the run `args`, made once (a finished run's --resume still restores its block)."""
    import shutil

    cache = tmp_path.parent / "one-epoch.pt"
    if not cache.exists():
        assert CliRunner().invoke(cli, args).exit_code == 0
        shutil.copy(tmp_path / "c.pt", cache)
    return cache


@pytest.mark.parametrize("options, message", [({"width": 1, "num_classes": "ten"}, "num_classes='ten'"),
                                              ({"width": 1, "depth_multiplier": 2}, "which resnet20 does not take"),
                                              ({"width": True}, "width=True")])
def test_saved_options_a_builder_would_choke_on_are_one_line(tmp_path, options, message):
    from click.testing import CliRunner

    from netprobe.cli.main import cli
    from netprobe.train import save_checkpoint
    from netprobe.zoo import load

    path = tmp_path / "bad.pt"
    save_checkpoint(path, load("resnet20", width=1), {"model": "resnet20", "options": options})
    for command in (["gradients", "resnet20"], ["rf", "resnet20", "--effective"]):
        result = CliRunner().invoke(cli, [*command, "--weights", str(path)])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
