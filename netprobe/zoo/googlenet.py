"""GoogLeNet (Inception v1): Szegedy et al., "Going deeper with convolutions", CVPR 2015 (arXiv 2014).

Two layouts of one network, chosen by `layout`:
- "torchvision" (default): torchvision's `models/googlenet.py`, names and initialisation included, so its
  state dicts load with strict=True: every conv is bias-free and followed by BatchNorm (eps 0.001), and the
  "5x5" branch of each Inception module uses a 3x3 conv (a known quirk of the ported weights).
- "paper": the paper's table 1: convs with bias + ReLU, true 5x5 convs in the reduced branch, local
  response normalisation after the first pool and after conv3 (Caffe's bvlc_googlenet: size 5,
  alpha 1e-4, beta 0.75), dropout 0.4 before the classifier.
Both use torchvision's ceil-mode pools and adaptive average pools (equal to the paper's 7x7 and 5x5/3
pools at 224x224), so other input sizes work. `inception_block` is the single Inception (3a) module.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netprobe.errors import NetprobeError
from netprobe.zoo.registry import register_model

LAYOUTS = ("torchvision", "paper")


class BasicConv2d(nn.Module):
    """Conv > BatchNorm (eps 0.001) > ReLU as torchvision's, or with `batch_norm=False` conv with bias > ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, batch_norm: bool = True, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=not batch_norm, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001) if batch_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches (1x1; 1x1 > 3x3; 1x1 > `kernel5`; 3x3 max pool > 1x1) concatenated on channels."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, *, batch_norm: bool = True, kernel5: int = 3) -> None:
        super().__init__()
        opts = dict(batch_norm=batch_norm)
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1, **opts)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1, **opts),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1, **opts))
        # The 1x1 reductions make the wide convs affordable (the paper's section 4).
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1, **opts),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=kernel5, padding=kernel5 // 2, **opts))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1, **opts))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)  # (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class InceptionAux(nn.Module):
    """Side classifier: pool to 4x4 > 1x1 conv 128 > FC 1024 > dropout 0.7 > FC num_classes."""

    def __init__(self, in_channels: int, num_classes: int, *, batch_norm: bool = True, dropout: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(x, (4, 4))  # (N, C, 4, 4): the paper's 5x5/3 average pool at 14x14
        x = torch.flatten(self.conv(x), 1)  # (N, 2048)
        x = self.dropout(F.relu(self.fc1(x), inplace=True))  # (N, 1024)
        return self.fc2(x)


class GoogLeNetOutputs(NamedTuple):
    """What a training-mode forward with side classifiers returns (as torchvision's)."""

    logits: Tensor
    aux_logits2: Tensor
    aux_logits1: Tensor


# Paper table 1, per module: in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_CONFIGS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """Stem, nine Inception modules in three groups separated by max pools, global average pool, linear."""

    def __init__(self, *, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
                 layout: str = "torchvision") -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise NetprobeError(f"unknown GoogLeNet layout {layout!r} (choose from {', '.join(LAYOUTS)})")
        paper = layout == "paper"
        opts = dict(batch_norm=not paper)
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, **opts)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # The paper normalises responses where torchvision's port has BatchNorm instead.
        self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75) if paper else None
        self.conv2 = BasicConv2d(64, 64, kernel_size=1, **opts)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1, **opts)
        self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75) if paper else None
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        blocks = {name: Inception(*cfg, **opts, kernel5=5 if paper else 3) for name, cfg in INCEPTION_CONFIGS.items()}
        self.inception3a, self.inception3b = blocks["inception3a"], blocks["inception3b"]
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a, self.inception4b = blocks["inception4a"], blocks["inception4b"]
        self.inception4c, self.inception4d = blocks["inception4c"], blocks["inception4d"]
        self.inception4e = blocks["inception4e"]
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a, self.inception5b = blocks["inception5a"], blocks["inception5b"]
        # The side classifiers only help training (the paper's section 5); off by default.
        self.aux1 = InceptionAux(512, num_classes, **opts) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, **opts) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.4 if paper else 0.2)
        self.fc = nn.Linear(1024, num_classes)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # torchvision's initialisation (its weights replace it when loaded).
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        x = self.maxpool1(self.conv1(x))  # (N, 64, 56, 56) at 224x224
        if self.lrn1 is not None:
            x = self.lrn1(x)
        x = self.conv3(self.conv2(x))  # (N, 192, 56, 56)
        if self.lrn2 is not None:
            x = self.lrn2(x)
        x = self.maxpool2(x)  # (N, 192, 28, 28)
        x = self.inception3b(self.inception3a(x))  # (N, 480, 28, 28)
        x = self.inception4a(self.maxpool3(x))  # (N, 512, 14, 14)
        side = self.aux_logits and self.training
        aux1 = self.aux1(x) if side else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (N, 528, 14, 14)
        aux2 = self.aux2(x) if side else None
        x = self.maxpool4(self.inception4e(x))  # (N, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))  # (N, 1024, 7, 7)
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # (N, 1024)
        x = self.fc(x)
        return GoogLeNetOutputs(x, aux2, aux1) if side else x


@register_model(family="googlenet", input_size=(192, 28, 28), num_classes=None,
                description="one Inception (3a) module, 28x28x192 -> 28x28x256, bias convs (Szegedy et al. 2014)")
def inception_block(*, in_channels: int = 192) -> Inception:
    """The paper's Inception (3a) module: 1x1 64; 1x1 96 > 3x3 128; 1x1 16 > 5x5 32; 3x3 max pool > 1x1 32."""
    return Inception(in_channels, 64, 96, 128, 16, 32, 32, batch_norm=False, kernel5=5)


@register_model(family="googlenet", input_size=(3, 224, 224), num_classes=1000,
                description="GoogLeNet / Inception v1 (Szegedy et al. 2014), torchvision layout or layout='paper'")
def googlenet(*, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
              layout: str = "torchvision") -> GoogLeNet:
    """GoogLeNet; `aux_logits=True` adds the two side classifiers, `layout='paper'` the paper's convs and LRN."""
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels, aux_logits=aux_logits, layout=layout)
