"""DenseNet-BC: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.

Each layer of a dense block sees the concatenation of all earlier feature maps of the block (not their sum,
as a ResNet would) and adds `growth_rate` new channels; 1x1 bottlenecks (4 x growth_rate wide) and
transitions that halve the channels (compression 0.5) keep it affordable. Layout, parameter names and
initialisation follow torchvision's `models/densenet.py`, so its state dicts load with strict=True.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netprobe.zoo.registry import register_model


class DenseLayer(nn.Module):
    """BN > ReLU > 1x1 conv to bn_size * growth_rate > BN > ReLU > 3x3 conv to growth_rate, on the concatenation."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = torch.cat(features, 1)  # (N, num_input_features, H, W): every earlier map of the block
        x = self.conv1(self.relu1(self.norm1(x)))  # (N, bn_size * growth_rate, H, W)
        return self.conv2(self.relu2(self.norm2(x)))  # (N, growth_rate, H, W)


class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers named denselayer1..; the output concatenates the input and every new map."""

    def __init__(self, num_layers: int, num_input_features: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size))

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)  # (N, in + num_layers * growth_rate, H, W)


class Transition(nn.Sequential):
    """BN > ReLU > 1x1 conv (halves the channels) > 2x2 average pool (halves the map)."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """Stem (7x7 conv, 3x3 max pool), dense blocks of `block_config` layers joined by transitions, BN, linear."""

    def __init__(self, growth_rate: int, block_config: tuple[int, ...], num_init_features: int, *,
                 bn_size: int = 4, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),  # (N, num_init_features, 56, 56) at 224
        ]))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(num_layers, channels, growth_rate, bn_size))
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.features(x), inplace=True)  # (N, channels, 7, 7) at 224x224
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)  # (N, channels)
        return self.classifier(x)


def _densenet(growth_rate: int, block_config: tuple[int, ...], num_init_features: int, **options) -> DenseNet:
    return DenseNet(growth_rate, block_config, num_init_features, **options)


_SPEC = dict(family="densenet", input_size=(3, 224, 224), num_classes=1000)


@register_model(**_SPEC, description="DenseNet-BC-121, growth 32, blocks (6, 12, 24, 16) (Huang et al. 2017)")
def densenet121(*, num_classes: int = 1000, in_channels: int = 3) -> DenseNet:
    return _densenet(32, (6, 12, 24, 16), 64, num_classes=num_classes, in_channels=in_channels)


@register_model(**_SPEC, description="DenseNet-BC-169, growth 32, blocks (6, 12, 32, 32) (Huang et al. 2017)")
def densenet169(*, num_classes: int = 1000, in_channels: int = 3) -> DenseNet:
    return _densenet(32, (6, 12, 32, 32), 64, num_classes=num_classes, in_channels=in_channels)


@register_model(**_SPEC, description="DenseNet-BC-201, growth 32, blocks (6, 12, 48, 32) (Huang et al. 2017)")
def densenet201(*, num_classes: int = 1000, in_channels: int = 3) -> DenseNet:
    return _densenet(32, (6, 12, 48, 32), 64, num_classes=num_classes, in_channels=in_channels)


@register_model(**_SPEC, description="DenseNet-BC-161, growth 48, blocks (6, 12, 36, 24) (Huang et al. 2017)")
def densenet161(*, num_classes: int = 1000, in_channels: int = 3) -> DenseNet:
    return _densenet(48, (6, 12, 36, 24), 96, num_classes=num_classes, in_channels=in_channels)
