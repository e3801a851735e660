"""He et al.'s CIFAR augmentation (2016, Sec. 4.2, after Lee et al. 2015): pad 4 pixels on each side, take a
random 32x32 crop, flip horizontally with probability 1/2; applied per sample, per batch, on in-memory tensors.

The padding is the raw image's black (0 before normalisation, so -mean/std after it), as torchvision's
`RandomCrop(32, padding=4)` pads. Draws come from a dedicated generator, so a seed fixes every crop and flip
and a resumed run continues the same sequence.
"""

from __future__ import annotations

import torch

PAD = 4


class PadCropFlip:
    """Random crop of a `pad`-padded image back to its size, then a horizontal flip with probability 1/2."""

    def __init__(self, fill, *, seed: int, pad: int = PAD):
        self.fill = torch.as_tensor(fill, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.pad = pad
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The batch `x` (N, C, H, W), each image cropped and maybe flipped."""
        n, channels, height, width = x.shape
        p = self.pad
        padded = self.fill.to(device=x.device, dtype=x.dtype).expand(n, channels, height + 2 * p, width + 2 * p).clone()
        padded[:, :, p:p + height, p:p + width] = x
        top = torch.randint(0, 2 * p + 1, (n,), generator=self.generator)
        left = torch.randint(0, 2 * p + 1, (n,), generator=self.generator)
        flip = torch.rand(n, generator=self.generator) < 0.5
        rows = top[:, None] + torch.arange(height)  # (N, H)
        cols = left[:, None] + torch.arange(width)  # (N, W)
        cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reads the crop's columns backwards
        batch = torch.arange(n)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
        return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

    def state(self) -> torch.Tensor:
        """The generator's state, for a checkpoint."""
        return self.generator.get_state()

    def restore(self, state: torch.Tensor) -> None:
        """Continue the sequence saved by `state()`."""
        self.generator.set_state(state)


def fill_for(mean, std) -> list[float]:
    """Per-channel value of a raw black pixel after normalising with `mean` and `std`."""
    return [-m / s for m, s in zip(mean, std)]
