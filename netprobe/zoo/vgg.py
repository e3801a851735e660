"""VGG (Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015), configurations A, B, D and E, with and without batch normalisation, laid out and
initialised as torchvision does it (its state dicts load with strict=True)."""

import torch
from torch import nn

from netprobe.zoo.registry import register_model

# The paper's table 1: numbers are 3x3 convolutions' output channels, "M" a 2x2 max pool.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(cfg: list[int | str], in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    """The convolutional stack for one configuration."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # halves the map
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))  # keeps the map size
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """Convolutional `features`, an adaptive pool to 7x7, and the 4096-4096-num_classes classifier."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        # Fixes the classifier's input at 512x7x7 whatever the input size (>= 32x32).
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 512, 7, 7) at 224x224
        x = self.avgpool(x)  # (N, 512, 7, 7)
        x = torch.flatten(x, 1)  # (N, 25088)
        return self.classifier(x)


def _vgg(cfg: str, batch_norm: bool, num_classes: int, in_channels: int) -> VGG:
    return VGG(make_layers(CONFIGS[cfg], in_channels, batch_norm), num_classes=num_classes)


@register_model(family="vgg", input_size=(3, 224, 224), num_classes=1000,
                description="VGG-11 (configuration A), as in torchvision")
def vgg11(*, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG-11 (configuration A)."""
    return _vgg("A", False, num_classes, in_channels)


@register_model(family="vgg", input_size=(3, 224, 224), num_classes=1000,
                description="VGG-11 (configuration A) with batch norm, as in torchvision")
def vgg11_bn(*, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG-11 (configuration A) with batch normalisation."""
    return _vgg("A", True, num_classes, in_channels)


@register_model(family="vgg", input_size=(3, 224, 224), num_classes=1000,
                description="VGG-13 (configuration B), as in torchvision")
def vgg13(*, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG-13 (configuration B)."""
    return _vgg("B", False, num_classes, in_channels)


@register_model(family="vgg", input_size=(3, 224, 224), num_classes=1000,
                description="VGG-13 (configuration B) with batch norm, as in torchvision")
def vgg13_bn(*, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG-13 (configuration B) with batch normalisation."""
    return _vgg("B", True, num_classes, in_channels)


@register_model(family="vgg", input_size=(3, 224, 224), num_classes=1000,
                description="VGG-16 (configuration D), as in torchvision")
def vgg16(*, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG-16 (configuration D)."""
    return _vgg("D", False, num_classes, in_channels)


@register_model(family="vgg", input_size=(3, 224, 224), num_classes=1000,
                description="VGG-16 (configuration D) with batch norm, as in torchvision")
def vgg16_bn(*, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG-16 (configuration D) with batch normalisation."""
    return _vgg("D", True, num_classes, in_channels)


@register_model(family="vgg", input_size=(3, 224, 224), num_classes=1000,
                description="VGG-19 (configuration E), as in torchvision")
def vgg19(*, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG-19 (configuration E)."""
    return _vgg("E", False, num_classes, in_channels)


@register_model(family="vgg", input_size=(3, 224, 224), num_classes=1000,
                description="VGG-19 (configuration E) with batch norm, as in torchvision")
def vgg19_bn(*, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG-19 (configuration E) with batch normalisation."""
    return _vgg("E", True, num_classes, in_channels)
