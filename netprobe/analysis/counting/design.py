"""Design arithmetic from the case studies, counted by the summary engine rather than by hand formulas.

Each comparison builds the competing designs as small modules on the meta device and counts them with
`netprobe.analysis.counting.summary`, so the figures follow the same convention as `netprobe summary`
(MACs = multiply-accumulates of conv/linear/matmul).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from netprobe.analysis.counting.summary import summary
from netprobe.errors import NetprobeError

_LAYER_COLUMNS = ["variant", "layer", "type", "output_shape", "params", "macs"]
_TOTAL_COLUMNS = ["variant", "input", "params", "macs", "flops", "activation_bytes"]


@dataclass
class Comparison:
    """Competing designs: per-layer rows, one totals row per variant, and ratios to the first variant."""

    title: str
    layers: object  # pandas.DataFrame with _LAYER_COLUMNS
    totals: object  # pandas.DataFrame with _TOTAL_COLUMNS + params_ratio, macs_ratio


def _compare(title: str, variants: list[tuple[str, nn.Module, tuple[int, ...]]]) -> Comparison:
    """Count each (name, module, input (C, H, W)) at batch 1 with the summary engine."""
    import pandas as pd

    layer_rows, total_rows = [], []
    for variant, module, input_size in variants:
        result = summary(module, (1, *input_size), name=variant)
        for row in result.layers.to_dict(orient="records"):
            if row["params"] or row["macs"]:
                layer_rows.append({"variant": variant, "layer": row["name"],
                                   **{k: row[k] for k in _LAYER_COLUMNS[2:]}})
        totals = result.totals.as_dict()
        total_rows.append({"variant": variant, "input": "x".join(map(str, input_size)),
                           **{k: totals[k] for k in _TOTAL_COLUMNS[2:]}})
    totals = pd.DataFrame(total_rows, columns=_TOTAL_COLUMNS)
    # How many times the first variant's cost each design is (the textbook's "about 9.7x fewer" inverted).
    for key in ("params", "macs"):
        base = totals[key].iloc[0]
        totals[f"{key}_ratio"] = (totals[key] / base).round(4) if base else float("nan")
    return Comparison(title, pd.DataFrame(layer_rows, columns=_LAYER_COLUMNS), totals)


def _positive(**values) -> None:
    for key, value in values.items():
        if int(value) < 1:
            raise NetprobeError(f"{key} must be a positive integer, got {value}")


def _meta(build):
    with torch.device("meta"):
        return build()


def bottleneck(input_size=(192, 28, 28), kernel: int = 5, out: int = 32, reduce: int = 16) -> Comparison:
    """A direct kxk conv vs a 1x1 reduction to `reduce` channels followed by the same kxk conv."""
    c, h, w = input_size
    _positive(channels=c, height=h, width=w, kernel=kernel, out=out, reduce=reduce)
    if kernel % 2 == 0:
        raise NetprobeError(f"kernel must be odd so 'same' padding keeps {h}x{w}, got {kernel}")
    pad = kernel // 2
    k = f"conv{kernel}x{kernel}"
    direct = _meta(lambda: nn.Sequential(OrderedDict([(k, nn.Conv2d(c, out, kernel, padding=pad))])))
    reduced = _meta(lambda: nn.Sequential(OrderedDict([("reduce1x1", nn.Conv2d(c, reduce, 1)),
                                                       (k, nn.Conv2d(reduce, out, kernel, padding=pad))])))
    title = f"{h}x{w}x{c} -> {h}x{w}x{out} by a {kernel}x{kernel} conv, direct vs through a {reduce}-channel 1x1"
    return _compare(title, [("direct", direct, (c, h, w)), (f"1x1 reduce to {reduce}", reduced, (c, h, w))])


def stacked_convs(channels: int = 64, size=(56, 56)) -> Comparison:
    """Three stacked 3x3 convs vs one 7x7 at `channels` channels (no bias): 27C^2 vs 49C^2 weights."""
    _positive(channels=channels, height=size[0], width=size[1])
    three = _meta(lambda: nn.Sequential(OrderedDict(
        (f"conv3x3_{i}", nn.Conv2d(channels, channels, 3, padding=1, bias=False)) for i in (1, 2, 3))))
    one = _meta(lambda: nn.Sequential(OrderedDict([("conv7x7", nn.Conv2d(channels, channels, 7, padding=3,
                                                                          bias=False))])))
    title = f"three 3x3 convs vs one 7x7 at {channels} channels, {size[0]}x{size[1]} (same 7x7 receptive field)"
    return _compare(title, [("3 x conv3x3", three, (channels, *size)), ("1 x conv7x7", one, (channels, *size))])


def residual_blocks(channels: int = 256, size=(56, 56)) -> Comparison:
    """He et al.'s basic block vs bottleneck block (1x1 to channels/4, 3x3, 1x1 back) at `channels` channels."""
    from netprobe.zoo.resnet import BasicBlock, Bottleneck

    _positive(channels=channels, height=size[0], width=size[1])
    if channels % Bottleneck.expansion:
        raise NetprobeError(f"channels must be a multiple of {Bottleneck.expansion}, got {channels}")
    basic = _meta(lambda: BasicBlock(channels, channels))
    neck = _meta(lambda: Bottleneck(channels, channels // Bottleneck.expansion))
    title = f"residual blocks at {channels} channels, {size[0]}x{size[1]}: basic (3x3, 3x3) vs bottleneck (1x1, 3x3, 1x1)"
    return _compare(title, [("basic", basic, (channels, *size)), ("bottleneck", neck, (channels, *size))])


def models(names, *, input_size=None, kwargs: dict | None = None) -> Comparison:
    """Side-by-side totals of several models (each built with `kwargs`), at their default inputs unless
    `input_size` is given."""
    from netprobe.zoo.loading import load_model

    names = list(names)
    if not names:
        raise NetprobeError("give at least one model to compare")
    loaded = [load_model(name, kwargs) for name in names]
    for m in loaded:
        if input_size is None and m.input_size is None:
            raise NetprobeError(f"{m.name} is not a zoo model: give the input with input_size CxHxW",
                                    said={"input with input_size": "input with --input-size"})
    title = "models at " + ("x".join(map(str, input_size)) if input_size else "their default inputs")
    return _compare(title, [(m.name, m.model, tuple(input_size or m.input_size)) for m in loaded])


def twins(name: str, *, input_size=None, kwargs: dict | None = None) -> Comparison:
    """A zoo model's residual and plain twins side by side (the same network with and without shortcuts)."""
    from netprobe.zoo.loading import load_model
    from netprobe.zoo import model_spec

    if not model_spec(name).plain:
        raise NetprobeError(f"{name} has no plain twin (plain applies to residual families only)",
                            said={"(plain applies": "(--plain applies"})
    residual, plain = load_model(name, kwargs), load_model(name, kwargs, plain=True)
    size = tuple(input_size or residual.input_size)
    return _compare(f"{name}: residual vs plain twin at {'x'.join(map(str, size))}",
                    [(name, residual.model, size), (f"{name} plain", plain.model, size)])
