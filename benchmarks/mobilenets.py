"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3-small (Howard et al. 2019) in torchvision's layouts, for the
summary benchmark (torchvision does not import here): inverted residuals, depthwise convs, squeeze-excitation,
hardswish. Built on the meta device; only their shapes matter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin, cout, k=1, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, c, squeezed):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, squeezed, 1), nn.Conv2d(squeezed, c, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, expanded, cout, k, stride, se=False, act=nn.ReLU6):
        super().__init__()
        layers = [_conv(cin, expanded, act=act)] if expanded != cin else []
        layers.append(_conv(expanded, expanded, k, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcite(expanded, max(8, (expanded // 4 + 4) // 8 * 8)))
        layers.append(_conv(expanded, cout, act=None))
        self.block, self.residual = nn.Sequential(*layers), stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def on_meta(builder):
    """Build on the meta device: no weights are allocated or initialised."""
    def build(**options):
        with torch.device("meta"):
            return builder(**options)
    build.__name__ = builder.__name__
    return build


@on_meta
def mobilenet_v2(num_classes=1000) -> nn.Module:
    """torchvision's mobilenet_v2 layout (3,504,872 parameters, 300.8M MACs at 224)."""
    layers, cin = [_conv(3, 32, 3, 2)], 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for i in range(n):
            layers.append(InvertedResidual(cin, cin * t, c, 3, s if i == 0 else 1))
            cin = c
    layers.append(_conv(cin, 1280))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, num_classes))


@on_meta
def mobilenet_v3_small(num_classes=1000) -> nn.Module:
    """torchvision's mobilenet_v3_small layout (2,542,856 parameters, 56.5M MACs at 224)."""
    hs, re = nn.Hardswish, nn.ReLU
    layers, cin = [_conv(3, 16, 3, 2, act=hs)], 16
    for k, exp, c, se, act, s in ((3, 16, 16, True, re, 2), (3, 72, 24, False, re, 2), (3, 88, 24, False, re, 1),
                                  (5, 96, 40, True, hs, 2), (5, 240, 40, True, hs, 1), (5, 240, 40, True, hs, 1),
                                  (5, 120, 48, True, hs, 1), (5, 144, 48, True, hs, 1), (5, 288, 96, True, hs, 2),
                                  (5, 576, 96, True, hs, 1), (5, 576, 96, True, hs, 1)):
        layers.append(InvertedResidual(cin, exp, c, k, s, se, act))
        cin = c
    layers.append(_conv(cin, 576, act=hs))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(576, 1024), hs(),
                         nn.Dropout(0.2), nn.Linear(1024, num_classes))
