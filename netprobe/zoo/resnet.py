"""ImageNet ResNets: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.

Layout, parameter names and initialisation follow torchvision's `models/resnet.py` (v1.5: the stride of a
bottleneck sits on its 3x3 conv), so a torchvision state dict loads with strict=True. Two variants are
arguments of the blocks, not copies:
- `plain=True`: the shortcut additions removed (He et al. 2016's plain baselines), no downsample modules.
- `preact=True`: He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016: BN > ReLU > conv inside
  each block, a projection shortcut taken from the pre-activation, and a final BN + ReLU before pooling.
"""

from __future__ import annotations

from torch import Tensor, nn

from netprobe.zoo.registry import register_model


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BN follows or precedes it)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); post-activation by default, BN > ReLU > conv with `preact`."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 *, plain: bool = False, preact: bool = False):
        super().__init__()
        self.plain, self.preact = plain, preact
        # Pre-activation normalises the block's input; post-activation normalises each conv's output.
        self.bn1 = nn.BatchNorm2d(inplanes if preact else planes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        if self.preact:
            pre = self.relu(self.bn1(x))
            # Identity shortcuts carry the raw input; a projection sees the pre-activation (He et al. 2016b).
            identity = x if self.downsample is None else self.downsample(pre)
            out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
            return out if self.plain else out + identity
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out if self.plain else out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce > 3x3 (carries the stride, torchvision v1.5) > 1x1 expand by `expansion` (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 *, plain: bool = False, preact: bool = False):
        super().__init__()
        self.plain, self.preact = plain, preact
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(inplanes if preact else width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(width if preact else planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        if self.preact:
            pre = self.relu(self.bn1(x))
            identity = x if self.downsample is None else self.downsample(pre)
            out = self.relu(self.bn2(self.conv1(pre)))
            out = self.conv3(self.relu(self.bn3(self.conv2(out))))
            return out if self.plain else out + identity
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out if self.plain else out + identity)


class ResNet(nn.Module):
    """Stem, four stages of `layers[i]` blocks at 64-128-256-512 planes, global average pooling, linear."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], *, num_classes: int = 1000,
                 in_channels: int = 3, plain: bool = False, preact: bool = False):
        super().__init__()
        self.plain, self.preact = plain, preact
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        # Pre-activation: the stem's BN + ReLU becomes layer1.0's pre-activation, so no unit sees two in a row.
        self.bn1 = nn.Identity() if preact else nn.BatchNorm2d(64)
        self.relu = nn.Identity() if preact else nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        # Pre-activation blocks end on a conv, so the head needs its own BN + ReLU (He et al. 2016b).
        self.final_bn = nn.BatchNorm2d(512 * block.expansion) if preact else nn.Identity()
        self.final_relu = nn.ReLU(inplace=True) if preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if not self.plain and (stride != 1 or self.inplanes != planes * block.expansion):
            # Projection shortcut (option B); pre-activation feeds it an already normalised tensor.
            proj = conv1x1(self.inplanes, planes * block.expansion, stride)
            downsample = nn.Sequential(proj) if self.preact else nn.Sequential(
                proj, nn.BatchNorm2d(planes * block.expansion))
        opts = dict(plain=self.plain, preact=self.preact)
        layers = [block(self.inplanes, planes, stride, downsample, **opts)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, **opts) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, 56, 56) at 224x224
        x = self.layer1(x)  # (N, 64 * expansion, 56, 56)
        x = self.layer2(x)  # (N, 128 * expansion, 28, 28)
        x = self.layer3(x)  # (N, 256 * expansion, 14, 14)
        x = self.layer4(x)  # (N, 512 * expansion, 7, 7)
        x = self.avgpool(self.final_relu(self.final_bn(x))).flatten(1)  # (N, 512 * expansion)
        return self.fc(x)


def _resnet(block, layers: list[int], **options) -> ResNet:
    return ResNet(block, layers, **options)


_SPEC = dict(family="resnet", input_size=(3, 224, 224), num_classes=1000)


@register_model(**_SPEC, description="ResNet-18, basic blocks [2, 2, 2, 2] (He et al. 2016)")
def resnet18(*, num_classes=1000, in_channels=3, plain=False, preact=False):
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels,
                   plain=plain, preact=preact)


@register_model(**_SPEC, description="ResNet-34, basic blocks [3, 4, 6, 3] (He et al. 2016)")
def resnet34(*, num_classes=1000, in_channels=3, plain=False, preact=False):
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels,
                   plain=plain, preact=preact)


@register_model(**_SPEC, description="ResNet-50, bottlenecks [3, 4, 6, 3] (He et al. 2016)")
def resnet50(*, num_classes=1000, in_channels=3, plain=False, preact=False):
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels,
                   plain=plain, preact=preact)


@register_model(**_SPEC, description="ResNet-101, bottlenecks [3, 4, 23, 3] (He et al. 2016)")
def resnet101(*, num_classes=1000, in_channels=3, plain=False, preact=False):
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, in_channels=in_channels,
                   plain=plain, preact=preact)


@register_model(**_SPEC, description="ResNet-152, bottlenecks [3, 8, 36, 3] (He et al. 2016)")
def resnet152(*, num_classes=1000, in_channels=3, plain=False, preact=False):
    return _resnet(Bottleneck, [3, 8, 36, 3], num_classes=num_classes, in_channels=in_channels,
                   plain=plain, preact=preact)
