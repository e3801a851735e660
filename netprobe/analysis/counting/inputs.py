"""Named inputs for a model's forward: shapes and dtypes bound to its signature, as meta tensors.

The CLI's `--input x=3x224x224 --input mask=1x196:bool` reaches the library as (name, shape, dtype) triples;
`bind` places them by the forward's signature (positional, keyword-only, or in order when unnamed).
"""

from __future__ import annotations

import inspect

import torch

from netprobe.errors import NetprobeError


def dtype_named(name: str) -> torch.dtype:
    """The torch dtype called `name` ('bool', 'int64', 'float16', ...)."""
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise NetprobeError(f"unknown dtype {name!r}: use a torch dtype name such as float32, int64 or bool")
    return value


def bind(model: torch.nn.Module, given) -> tuple[tuple, dict]:
    """(args, kwargs) of meta tensors for model.forward from (name or None, shape, dtype) triples: unnamed
    inputs are positional in the order given, named ones bind by the forward's parameter names."""
    positional = [torch.empty(shape, dtype=dtype, device="meta") for name, shape, dtype in given if name is None]
    named = {name: torch.empty(shape, dtype=dtype, device="meta") for name, shape, dtype in given if name}
    try:
        bound = inspect.signature(model.forward).bind(*positional, **named)
    except TypeError as exc:
        signature = inspect.signature(model.forward)
        raise NetprobeError(f"the inputs do not fit {type(model).__name__}.forward{signature}: {exc}") from None
    return bound.args, bound.kwargs
