"""Helpers the zoo tests share: build a zoo model on the meta device, count its parameters, run it there."""

import torch

from netprobe.zoo import load


def meta_model(name, **options):
    """The zoo model `name` built on the meta device (shapes only, no weights)."""
    with torch.device("meta"):
        return load(name, **options)


def param_count(model) -> int:
    """All parameters of `model`, counted independently of netprobe's summary."""
    return sum(p.numel() for p in model.parameters())


def meta_forward(name, shape, **options):
    """The output of the zoo model `name` in eval mode for an empty meta input of `shape`."""
    with torch.device("meta"):
        return load(name, **options).eval()(torch.empty(shape))
