"""U-Net: Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015.

A contracting path of two 3x3 convs + ReLU per level and 2x2 max pools (64 > 128 > 256 > 512 > 1024
channels), an expanding path of 2x2 up-convolutions that halve the channels, each followed by the
concatenation of the contracting path's map (centre-cropped, since unpadded convs lose a border) and two
3x3 convs, and a final 1x1 conv to `num_classes` maps. As in the paper the convs are unpadded by default,
so a 572x572 tile gives a 388x388 segmentation; `padding="same"` pads them and, where a pool dropped an odd
row or column, zero-pads the up-convolution's output to the skip's size, so the output keeps the input's
size (572x572 > 572x572). No batch norm (the paper has none); weights are drawn from a
Gaussian with standard deviation sqrt(2 / fan_in), as the paper prescribes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netprobe.errors import NetprobeError
from netprobe.zoo.registry import register_model

PADDINGS = {"valid": 0, "same": 1}


def center_crop(x: Tensor, size: tuple[int, int]) -> Tensor:
    """The central `size` (H, W) window of `x` (N, C, H', W'): plain slicing, so traces see only views."""
    top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
    return x[..., top:top + size[0], left:left + size[1]]


def pad_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """`x` (N, C, H, W) zero-padded around its centre to `size` (H', W') >= (H, W)."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class DoubleConv(nn.Sequential):
    """Two 3x3 convs with bias, each followed by ReLU; unpadded ones shrink the map by 4 pixels."""

    def __init__(self, in_channels: int, out_channels: int, padding: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=padding), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=padding), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Four down levels, a bottom level, four up levels with skip concatenations, and a 1x1 head."""

    def __init__(self, *, num_classes: int = 2, in_channels: int = 1, base: int = 64, padding: str = "valid"):
        super().__init__()
        if padding not in PADDINGS:
            raise NetprobeError(f"unknown U-Net padding {padding!r} (choose from {', '.join(PADDINGS)})")
        pad = PADDINGS[padding]
        self.same = padding == "same"
        widths = [base * 2 ** i for i in range(5)]  # 64, 128, 256, 512, 1024
        # encoder[4] is the bottom of the U; the others feed the skips.
        self.encoder = nn.ModuleList(DoubleConv(cin, cout, pad) for cin, cout in zip([in_channels] + widths, widths))
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        # Up level i takes widths[i + 1] channels, halves them, and after the concatenation is back at 2 * widths[i].
        self.upconvs = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2)
                                     for i in reversed(range(4)))
        self.decoder = nn.ModuleList(DoubleConv(2 * widths[i], widths[i], pad) for i in reversed(range(4)))
        self.head = nn.Conv2d(base, num_classes, kernel_size=1)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                # The paper's sqrt(2 / N), N = inputs of one neuron; a transposed conv's fan-in sits in dim 0.
                mode = "fan_out" if isinstance(m, nn.ConvTranspose2d) else "fan_in"
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for level, block in enumerate(self.encoder):
            if level:
                x = self.pool(x)
            x = block(x)  # valid, 572 input: 568, 280, 136, 64 (skips), then (N, 1024, 28, 28) at the bottom
            skips.append(x)
        skips.pop()  # the bottom's output is not a skip
        for upconv, block in zip(self.upconvs, self.decoder):
            x = upconv(x)  # doubles the map, halves the channels: (N, 512, 56, 56) first
            skip = skips.pop()
            # Unpadded convs leave the skip larger: crop it; padded ones leave x a pixel short after an odd pool.
            if self.same:
                x = pad_to(x, skip.shape[-2:])
            else:
                skip = center_crop(skip, x.shape[-2:])
            x = torch.cat([skip, x], 1)  # (N, 1024, 56, 56) first
            x = block(x)  # valid: 52, 100, 196, 388
        return self.head(x)  # (N, num_classes, 388, 388) at 572x572, valid


@register_model(family="unet", input_size=(1, 572, 572), num_classes=2,
                description="U-Net (Ronneberger et al. 2015): 572x572x1 > 388x388x2, valid convs; padding='same'")
def unet(*, num_classes: int = 2, in_channels: int = 1, base: int = 64, padding: str = "valid") -> UNet:
    """U-Net with `base` channels at the top level (64 in the paper) and unpadded ('valid') or 'same' convs."""
    return UNet(num_classes=num_classes, in_channels=in_channels, base=base, padding=padding)
