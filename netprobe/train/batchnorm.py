"""Re-estimating BatchNorm running statistics, e.g. after moving weights along a loss-surface direction."""

from __future__ import annotations

import torch
from torch import nn
from netprobe.modes import model_mode


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Reset every BatchNorm's running mean/var and re-estimate them over `x` as a cumulative average."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return model
    momenta = [(m, m.momentum) for m in norms]
    with model_mode(model, False):  # dropout and the like stay off: only the statistics should see the data
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative moving average: every batch weighs the same
                m.train()
            for start in range(0, len(x), batch_size):
                model(x[start:start + batch_size])
        finally:
            for m, momentum in momenta:
                m.momentum = momentum
    return model
