"""CIFAR-10 ResNets: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2.

A 3x3 conv with 16 filters, three stages of n basic blocks at 16-32-64 channels (depth 6n + 2), global
average pooling and a linear classifier. Shortcuts are option A: parameter-free identities, subsampled and
zero-padded in channels where the shape changes, so `plain=True` (additions removed) keeps the parameter
count. Names and initialisation follow the widely used checkpoints of akamaster/pytorch_resnet_cifar10
(conv1, bn1, layer1.0.conv1, ..., linear); `load_state_dict_compat` loads their DataParallel-saved files.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from netprobe.errors import NetprobeError
from netprobe.zoo.registry import register_model


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BN follows it)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def norm(planes: int, bn: bool) -> nn.Module:
    """BatchNorm, or the identity for the `bn=False` variants."""
    return nn.BatchNorm2d(planes) if bn else nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convs with an option-A shortcut (or none with `plain`); `bn=False` drops the BatchNorms."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, plain: bool = False, bn: bool = True):
        super().__init__()
        self.plain = plain
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = norm(planes, bn)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm(planes, bn)
        # Decided from the shapes at construction, so forward has no data-dependent branches. The new
        # channels are split around the old ones (planes // 4 each side when the width doubles).
        extra = planes - in_planes
        self.pad = (extra // 2, extra - extra // 2) if stride != 1 or in_planes != planes else None

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.plain:
            return F.relu(out)
        shortcut = x
        if self.pad is not None:
            # Option A: take every other pixel and zero-pad the new channels (no parameters).
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, *self.pad))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """conv 16 > n blocks at 16 > n at 32 (stride 2) > n at 64 (stride 2) > global average pool > linear.

    `width` replaces the 16 (stages at width, 2 width, 4 width); `bn=False` replaces every BatchNorm by the
    identity and keeps the same Kaiming-normal initialisation (no Fixup rescaling), so at initialisation
    the residual stream's variance grows block after block."""

    def __init__(self, n: int, *, num_classes: int = 10, in_channels: int = 3, plain: bool = False,
                 width: int = 16, bn: bool = True):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise NetprobeError(f"CIFAR ResNet width must be a positive integer, got {width!r}")
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = norm(width, bn)
        self.layer1 = self._make_layer(width, width, n, 1, plain, bn)
        self.layer2 = self._make_layer(width, 2 * width, n, 2, plain, bn)
        self.layer3 = self._make_layer(2 * width, 4 * width, n, 2, plain, bn)
        self.linear = nn.Linear(4 * width, num_classes)
        # As akamaster's _weights_init: Kaiming normal (fan_in, ReLU gain) on convs and the linear layer.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @staticmethod
    def _make_layer(in_planes: int, planes: int, n: int, stride: int, plain: bool, bn: bool) -> nn.Sequential:
        blocks = [BasicBlock(in_planes, planes, stride, plain=plain, bn=bn)]
        blocks += [BasicBlock(planes, planes, plain=plain, bn=bn) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (N, 16, 32, 32) at the default width
        x = self.layer1(x)  # (N, 16, 32, 32)
        x = self.layer2(x)  # (N, 32, 16, 16)
        x = self.layer3(x)  # (N, 64, 8, 8)
        # Adaptive pooling (rather than a fixed 8x8 window) so other input sizes work too.
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, 64)
        return self.linear(x)


def load_state_dict_compat(model: nn.Module, state_dict: dict) -> None:
    """Load `state_dict` strictly into `model`, first stripping a `module.` prefix left by DataParallel."""
    prefix = "module."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True)


def _cifar_resnet(n: int, **options) -> CifarResNet:
    return CifarResNet(n, **options)


def cifar_resnet(depth: int, **options) -> CifarResNet:
    """A CIFAR ResNet of any depth 6n + 2 (n >= 1); other depths raise NetprobeError."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise NetprobeError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), got {depth!r}")
    return _cifar_resnet((depth - 2) // 6, **options)


_SPEC = dict(family="cifar_resnet", input_size=(3, 32, 32), num_classes=10)


@register_model(**_SPEC, description="ResNet-20 for CIFAR-10, n=3, option-A shortcuts (He et al. 2016)")
def resnet20(*, num_classes=10, in_channels=3, plain=False, width=16, bn=True):
    return _cifar_resnet(3, num_classes=num_classes, in_channels=in_channels, plain=plain, width=width, bn=bn)


@register_model(**_SPEC, description="ResNet-32 for CIFAR-10, n=5, option-A shortcuts (He et al. 2016)")
def resnet32(*, num_classes=10, in_channels=3, plain=False, width=16, bn=True):
    return _cifar_resnet(5, num_classes=num_classes, in_channels=in_channels, plain=plain, width=width, bn=bn)


@register_model(**_SPEC, description="ResNet-44 for CIFAR-10, n=7, option-A shortcuts (He et al. 2016)")
def resnet44(*, num_classes=10, in_channels=3, plain=False, width=16, bn=True):
    return _cifar_resnet(7, num_classes=num_classes, in_channels=in_channels, plain=plain, width=width, bn=bn)


@register_model(**_SPEC, description="ResNet-56 for CIFAR-10, n=9, option-A shortcuts (He et al. 2016)")
def resnet56(*, num_classes=10, in_channels=3, plain=False, width=16, bn=True):
    return _cifar_resnet(9, num_classes=num_classes, in_channels=in_channels, plain=plain, width=width, bn=bn)


@register_model(**_SPEC, description="ResNet-110 for CIFAR-10, n=18, option-A shortcuts (He et al. 2016)")
def resnet110(*, num_classes=10, in_channels=3, plain=False, width=16, bn=True):
    return _cifar_resnet(18, num_classes=num_classes, in_channels=in_channels, plain=plain, width=width, bn=bn)


@register_model(**_SPEC, description="ResNet-1202 for CIFAR-10, n=200, option-A shortcuts (He et al. 2016)")
def resnet1202(*, num_classes=10, in_channels=3, plain=False, width=16, bn=True):
    return _cifar_resnet(200, num_classes=num_classes, in_channels=in_channels, plain=plain, width=width, bn=bn)
