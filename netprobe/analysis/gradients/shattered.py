"""Shattered gradients: Balduzzi et al. 2017, "The Shattered Gradients Problem: If resnets are the answer,
then what is the question?" (ICML).

Balduzzi et al. show that the gradient of a deep plain network with respect to its input, taken at nearby
inputs, decorrelates with depth until it resembles white noise, while for residual networks the
correlation decays far more slowly (Sec. 3, Fig. 1-3). Here the inputs lie on lines x0 + t*v through
data points x0 (v Gaussian with unit variance per element, t evenly spaced in [-span, span]); at every
point we take the gradient with respect to the input of the logit of x0's label (or of the cross-entropy
loss), and report the Pearson correlation between the gradients (flattened, each centred on its own mean)
at points k steps apart along the line, averaged over the pairs and lines: the autocorrelation at lag k.
All points of all lines go through ONE forward and one backward pass. BatchNorm runs in eval mode so
that the points do not interact. Its running statistics are those of the model (a trained checkpoint's),
or, given a `reference` batch, the batch statistics of a train-mode pass over it: at initialisation the
running statistics (mean 0, var 1) do not centre anything, and the gradient of such a net hardly depends
on its input. The model's own statistics are restored afterwards.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.analysis.gradients.profile import NORMS, in_mode_restoring_buffers
from netprobe.errors import NetprobeError

__all__ = ["TARGETS", "lag_one", "shattered_gradients"]

TARGETS = ("logit", "loss")


def _line_points(x0: torch.Tensor, points: int, span: float, seed: int) -> torch.Tensor:
    """(lines * points, C, H, W): for each x0, `points` inputs x0 + t v with t evenly spaced in [-span, span]."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)  # one direction per line
    t = torch.linspace(-span, span, points, dtype=x0.dtype)
    grid = x0[:, None] + t.view(1, points, *([1] * (x0.dim() - 1))) * v[:, None]  # (lines, points, C, H, W)
    return grid.flatten(0, 1)


def _use_batch_statistics(model: nn.Module, reference: torch.Tensor) -> None:
    """Set each BatchNorm's running statistics to its batch statistics in a train-mode pass over `reference`."""
    stats = {}

    def hook(module, args):
        x = args[0]
        if module not in stats and module.running_mean is not None:
            dims = [0, *range(2, x.dim())]
            stats[module] = (x.mean(dims), x.var(dims, correction=0))  # BN normalises by the biased variance

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, NORMS)]
    try:
        with torch.no_grad():
            model.train()
            model(reference)
            for module, (mean, var) in stats.items():
                module.running_mean.copy_(mean)
                module.running_var.copy_(var)
    finally:
        for handle in handles:
            handle.remove()
        model.eval()


def shattered_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, points: int = 32,
                        span: float = 1.0, max_lag: int | None = None, target: str = "logit",
                        seed: int = 0, reference: torch.Tensor | None = None) -> pd.DataFrame:
    """Autocorrelation, by lag, of input gradients at points along lines through the inputs `x` (one line each)."""
    if target not in TARGETS:
        raise NetprobeError(f"unknown target {target!r} (expected one of {', '.join(TARGETS)})")
    if points < 2:
        raise NetprobeError(f"need at least 2 points per line, got {points}")
    max_lag = points - 1 if max_lag is None else min(max_lag, points - 1)
    lines = x.shape[0]
    grid = _line_points(x, points, span, seed).requires_grad_(True)
    labels = y.repeat_interleave(points)
    with in_mode_restoring_buffers(model, train=False):
        if reference is not None:
            _use_batch_statistics(model, reference)
        out = model(grid)  # (lines * points, classes)
        if target == "logit":
            # Points are independent in eval mode, so the gradient of the sum is each point's own gradient.
            value = out.gather(1, labels[:, None]).sum()
        else:
            value = F.cross_entropy(out, labels, reduction="sum")
        (grad,) = torch.autograd.grad(value, grid)
    g = grad.detach().double().reshape(lines, points, -1)
    g = g - g.mean(-1, keepdim=True)
    u = g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)  # zero gradients give NaN, reported as such
    gram = u @ u.transpose(1, 2)  # (lines, points, points): correlation of every pair of points
    lags = range(1, max_lag + 1)
    per_line = torch.stack([torch.diagonal(gram, offset=k, dim1=1, dim2=2).mean(-1) for k in lags])  # (lags, lines)
    step = (2 * span / (points - 1)) * float(x[0].numel()) ** 0.5  # expected L2 distance between neighbours
    return pd.DataFrame({
        "lag": list(lags),
        "distance": [k * step for k in lags],
        "correlation": per_line.mean(1).numpy(),
        "correlation_std": per_line.std(1, correction=0).numpy(),  # spread over the lines
    })


def lag_one(table: pd.DataFrame, keys: Iterable[str] = ("model", "variant")) -> pd.DataFrame:
    """The lag-1 correlation (neighbouring points) of each model/variant in a stacked shattered table."""
    keys = [k for k in keys if k in table]
    first = table[table["lag"] == 1]
    return first[[*keys, "correlation", "correlation_std"]].reset_index(drop=True)
