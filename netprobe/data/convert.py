"""Conversion of raw images to a model's input: channel count, spatial size, normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from netprobe.errors import NetprobeError

# ITU-R BT.601 luma weights, the ones PIL's convert("L") uses.
_LUMA = (0.299, 0.587, 0.114)


def convert(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Float images (N, C', H', W') in [0, 1] to (N, C, H, W): grey<->RGB by luma/repeat, bilinear antialiased resize."""
    channels, height, width = size
    have = x.shape[1]
    if have != channels:
        if have == 1:
            x = x.expand(-1, channels, -1, -1)
        elif have == 3 and channels == 1:
            x = torch.tensordot(x, torch.tensor(_LUMA, dtype=x.dtype), dims=([1], [0])).unsqueeze(1)
        else:
            raise NetprobeError(f"cannot convert {have}-channel images to the model's {channels} channels")
    if tuple(x.shape[2:]) != (height, width) and len(x):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


def normalise(train: torch.Tensor, test: torch.Tensor, *, mean=None, std=None):
    """Subtract the per-channel mean and divide by the std of `train` (population std), or of the given values."""
    channels = train.shape[1]
    if mean is None or std is None:
        var, avg = torch.var_mean(train, dim=(0, 2, 3), correction=0)  # Welford: accurate in float32
        mean = avg if mean is None else mean
        std = torch.where(var > 0, var.sqrt(), torch.ones_like(var)) if std is None else std  # constant channel: 1
    mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
    std = torch.as_tensor(std, dtype=torch.float64).flatten()
    if len(mean) != channels or len(std) != channels or not bool((std > 0).all()):
        raise NetprobeError(f"normalisation needs {channels} means and {channels} positive stds, "
                            f"got {mean.tolist()} and {std.tolist()}")
    m, s = mean.float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)
    out = tuple(((x - m) / s).contiguous() for x in (train, test))
    return out, (tuple(mean.tolist()), tuple(std.tolist()))
