"""Malformed checkpoints are refused in one line naming the first bad field; good ones still load."""

import math

import pytest
import torch
from torch import nn

from netprobe.errors import NetprobeError
from netprobe.train.checkpoint import load_checkpoint, load_weights, save_checkpoint

_RESUME = {"optimizer": {"state": {}, "param_groups": []}, "rng": torch.zeros(8, dtype=torch.uint8),
           "shuffle_rng": torch.zeros(8, dtype=torch.uint8)}


def _good():
    return {"state_dict": {"weight": torch.ones(2, 3), "bias": torch.zeros(2)},
            "meta": {"model": "m", "options": {"plain": True}, "epoch": 1, "resume": dict(_RESUME)}}


def _with(path, change):
    obj = _good()
    change(obj)
    torch.save(obj, path)
    return path


CASES = [
    (lambda o: o["meta"].update(model=3), "meta.model is a int"),
    (lambda o: o["meta"].update(options=["plain"]), "meta.options is a list"),
    (lambda o: o["meta"].update(options={1: 2}), "meta.options has a key"),
    (lambda o: o["meta"].update(epoch=-1), "meta.epoch is -1"),
    (lambda o: o["meta"].update(epoch=True), "meta.epoch is a bool"),
    (lambda o: o["meta"].update(epoch=1.5), "meta.epoch is a float"),
    (lambda o: o.update(meta=[1]), "meta is not a dict"),
    (lambda o: o["state_dict"].update(weight="w"), r"state_dict\['weight'\] is a str"),
    (lambda o: o["state_dict"].update(weight=torch.ones(2, 3, dtype=torch.bool)), "dtype torch.bool"),
    (lambda o: o["state_dict"].update(weight=torch.ones(2, 3, dtype=torch.float16)), "dtype torch.float16"),
    (lambda o: o["state_dict"].update(weight=torch.ones(2, 3, dtype=torch.complex64)), "dtype torch.complex64"),
    (lambda o: o["state_dict"]["weight"].__setitem__((0, 0), math.nan), "NaN or infinite"),
    (lambda o: o["state_dict"]["bias"].__setitem__(1, math.inf), "NaN or infinite"),
    (lambda o: o.update(state_dict={}), "state_dict is not a non-empty dict"),
    (lambda o: o["state_dict"].update({3: torch.ones(1)}), "key 3 is not a string"),
    (lambda o: o["meta"]["resume"].update(rng=[1, 2]), "meta.resume.rng is not a uint8 tensor"),
    (lambda o: o["meta"]["resume"].update(shuffle_rng=torch.zeros(3)), "meta.resume.shuffle_rng"),
    (lambda o: o["meta"]["resume"].update(optimizer=[]), "meta.resume.optimizer"),
    (lambda o: o["meta"].pop("epoch"), "neither epoch nor step"),
]


@pytest.mark.parametrize("change, match", CASES)
def test_malformed_checkpoint_names_the_field(tmp_path, change, match):
    path = _with(tmp_path / "c.pt", change)
    with pytest.raises(NetprobeError, match=match) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"hello, this is text\n", b"", b"\x80\x02}q\x00.", b"PK\x03\x04junk"])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(NetprobeError, match="c.pt"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    torch.save(_good(), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        path.write_bytes(data[:cut])
        with pytest.raises(NetprobeError, match="not a loadable checkpoint"):
            load_checkpoint(path)


def test_wrong_shape_names_the_key(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, nn.Linear(3, 4), {"model": "m"})
    with pytest.raises(NetprobeError, match=r"'weight' has shape \(4, 3\) in the checkpoint, \(2, 3\)"):
        load_weights(nn.Linear(3, 2), path)


def test_good_checkpoint_round_trips(tmp_path):
    path = tmp_path / "c.pt"
    layer = nn.Linear(3, 2)
    save_checkpoint(path, layer, {"model": "m", "epoch": 0})
    state, meta = load_checkpoint(path)
    assert torch.equal(state["weight"], layer.weight) and meta == {"model": "m", "epoch": 0}
    torch.save(_good(), path)
    assert load_checkpoint(path)[1]["epoch"] == 1


@pytest.mark.parametrize("command", [["rf", "lenet5", "--effective"], ["gradients", "lenet5"]])
def test_cli_refuses_nan_checkpoint_in_one_line(tmp_path, command):
    from click.testing import CliRunner

    from netprobe.cli.main import cli

    path = _with(tmp_path / "c.pt", lambda o: o["state_dict"]["weight"].fill_(math.nan))
    result = CliRunner().invoke(cli, command + ["--weights", str(path)])
    assert result.exit_code == 2 and "NaN or infinite" in result.output, result.output
    assert "Traceback" not in result.output and result.output.count("Error:") == 1
