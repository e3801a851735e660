"""Inputs of any form: keyword-only arguments, masks, None, nested tuples and dicts, in the library and the CLI.

Hand counts: a 3->4 3x3 conv on an 8x8 map makes 64 x 4 x 27 = 6912 MACs; a 4->5 Linear on 64 rows 64 x 4 x 5 =
1280. torch's FlopCounterMode, run on real tensors, counts 2 FLOPs per MAC of both.
"""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netprobe import summary
from netprobe.errors import NetprobeError
from helpers import run as _run

MACS = {"conv": 64 * 4 * 27, "fc": 64 * 4 * 5}


class Masked(nn.Module):
    """forward(x, scale=None, *, mask, extra=None): a positional None, a keyword-only bool mask, a nested dict."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x, scale=None, *, mask, extra=None):
        y = self.conv(x).flatten(2).transpose(1, 2)  # (N, 64, 4)
        y = y.masked_fill(~mask[..., None], 0.0)
        if scale is not None:
            y = y * scale
        if extra is not None:
            y = y + extra["shift"][0]
        return self.fc(y)


def _flop_counter(model, *args, **kwargs) -> int:
    with FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops()


@pytest.mark.parametrize("extra", [None, {"shift": ((4,),)}])
def test_keyword_only_mask_none_and_nested_dicts(extra):
    model = Masked()
    result = summary(model, args=((1, 3, 8, 8), None), kwargs={"mask": torch.ones(1, 64, dtype=torch.bool),
                                                               "extra": extra})
    macs = dict(zip(result.layers["name"], result.layers["macs"]))
    assert (macs["conv"], macs["fc"]) == (MACS["conv"], MACS["fc"]) and result.totals.macs == sum(MACS.values())
    assert result.totals.params == sum(p.numel() for p in model.parameters())
    shift = None if extra is None else {"shift": (torch.ones(4),)}
    real = {"mask": torch.ones(1, 64, dtype=torch.bool), "extra": shift}
    assert 2 * result.totals.macs == _flop_counter(model, torch.ones(1, 3, 8, 8), **real)
    shapes = ((1, 3, 8, 8), (1, 64)) + (((4,),) if extra else ())
    assert result.input_shape == shapes


def test_tensors_are_built_on_meta_and_the_model_is_untouched():
    model = Masked()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 8, 8)
    result = summary(model, args=(x,), kwargs={"mask": torch.zeros(2, 64, dtype=torch.bool), "scale": 2.0})
    assert result.totals.macs == 2 * sum(MACS.values())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_missing_keyword_and_a_double_input_are_refused():
    with pytest.raises(NetprobeError, match="forward failed|mask"):
        summary(Masked(), args=((1, 3, 8, 8),))
    with pytest.raises(NetprobeError, match="not both"):
        summary(Masked(), (1, 3, 8, 8), kwargs={"mask": (1, 64)})
    with pytest.raises(NetprobeError, match="no tensor"):
        summary(Masked(), args=(None,))


def test_cli_inputs_bind_by_name(tmp_path):
    result = _run("summary", f"{__file__}:Masked", "--input", "x=3x8x8", "--input", "mask=64:bool", "--batch", "2",
                  "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = {line.split(",")[0]: line.split(",") for line in result.stdout.splitlines()[1:]}
    assert rows[""][3] == "2x3x8x8;2x64" and int(rows["conv"][7]) == 2 * MACS["conv"]


@pytest.mark.parametrize("args, message", [
    (("--input", "x=3x8x8"), "missing a required argument: 'mask'"),
    (("--input", "x=3x8x8", "--input", "mask=64:boolean"), "unknown dtype 'boolean'"),
    (("--input", "x=3x8x8", "--input-size", "3x8x8"), "give --input-size or --input, not both"),
    (("--input", "1x=3x8x8"), "expected NAME=SHAPE[:DTYPE]"),
])
def test_cli_input_errors_are_one_line(args, message):
    result = _run("summary", f"{__file__}:Masked", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
