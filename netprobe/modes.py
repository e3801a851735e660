"""Train/eval mode for a block of code, every module's own mode restored after (mixed modes included)."""

from __future__ import annotations

import contextlib

from torch import nn


@contextlib.contextmanager
def model_mode(model: nn.Module, train: bool):
    """`model` in train (True) or eval (False) mode for the block; each module's mode as it was afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    if any(mode != train for _, mode in modes):  # train() walks every module in Python: skipped when all are set
        model.train(train)
    try:
        yield model
    finally:
        for module, mode in modes:
            if module.training != mode:  # Module.__setattr__ is slow Python: only the modules that changed
                module.training = mode
