"""AlexNet (Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012) in two layouts: torchvision's single-tower variant (Krizhevsky, "One weird trick
for parallelizing convolutional neural networks", 2014), and the 2012 paper's layout with both GPU
towers merged (no grouping), its local response normalisation and its initialisation."""

import torch
from torch import nn

from netprobe.zoo.registry import register_model

# Each convolution as (out_channels, kernel, stride, padding, max-pool after it).
TORCHVISION = [(64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
               (256, 3, 1, 1, False), (256, 3, 1, 1, True)]
PAPER = [(96, 11, 4, 0, True), (256, 5, 1, 2, True), (384, 3, 1, 1, False),
         (384, 3, 1, 1, False), (256, 3, 1, 1, True)]


def make_features(cfg, in_channels: int, lrn: bool) -> nn.Sequential:
    """Conv-ReLU stages from `cfg`; with `lrn`, the paper's response normalisation after the first two."""
    layers: list[nn.Module] = []
    for i, (out_channels, kernel, stride, padding, pool) in enumerate(cfg):
        layers += [nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding),
                   nn.ReLU(inplace=True)]
        if lrn and i < 2:
            # Paper: k=2, n=5, alpha=1e-4, beta=0.75; PyTorch divides alpha by n, so pass n * 1e-4.
            layers.append(nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0))
        if pool:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))  # overlapping pooling
        in_channels = out_channels
    return nn.Sequential(*layers)


def make_classifier(in_features: int, num_classes: int, dropout_first: bool) -> nn.Sequential:
    """FC 4096-4096-num_classes; torchvision drops out the inputs of fc6 and fc7, the paper their outputs."""
    fc6, fc7 = nn.Linear(in_features, 4096), nn.Linear(4096, 4096)
    if dropout_first:
        layers = [nn.Dropout(), fc6, nn.ReLU(inplace=True), nn.Dropout(), fc7, nn.ReLU(inplace=True)]
    else:
        layers = [fc6, nn.ReLU(inplace=True), nn.Dropout(), fc7, nn.ReLU(inplace=True), nn.Dropout()]
    return nn.Sequential(*layers, nn.Linear(4096, num_classes))


class AlexNet(nn.Module):
    """Convolutional `features`, a pool fixing the map at 6x6 (or none), and a fully connected classifier."""

    def __init__(self, features: nn.Sequential, avgpool: nn.Module, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 256, 6, 6) at the default input
        x = self.avgpool(x)  # (N, 256, 6, 6)
        x = torch.flatten(x, 1)  # (N, 9216)
        return self.classifier(x)


def _init_paper(model: AlexNet) -> None:
    # Paper section 5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FC layers
    # (to give the ReLUs positive inputs early on), 0 elsewhere.
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for i, m in enumerate(layers):
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.constant_(m.bias, 1.0 if i in (1, 3, 4, 5, 6) else 0.0)


def _alexnet(original: bool, num_classes: int, in_channels: int) -> AlexNet:
    if not original:
        # torchvision keeps PyTorch's default initialisation; its adaptive pool accepts any input >= 63x63.
        return AlexNet(make_features(TORCHVISION, in_channels, lrn=False), nn.AdaptiveAvgPool2d((6, 6)),
                       make_classifier(256 * 6 * 6, num_classes, dropout_first=True))
    # The paper has no pool before the classifier: its 227x227 input already gives a 6x6 map.
    model = AlexNet(make_features(PAPER, in_channels, lrn=True), nn.Identity(),
                    make_classifier(256 * 6 * 6, num_classes, dropout_first=False))
    _init_paper(model)
    return model


@register_model(family="alexnet", input_size=(3, 224, 224), num_classes=1000,
                description="AlexNet as torchvision lays it out (single tower, 64-192-384-256-256)")
def alexnet(*, num_classes: int = 1000, in_channels: int = 3) -> AlexNet:
    """torchvision's AlexNet; state dicts load with strict=True."""
    return _alexnet(False, num_classes, in_channels)


@register_model(family="alexnet", input_size=(3, 227, 227), num_classes=1000,
                description="AlexNet as in the 2012 paper (96-256-384-384-256, LRN, towers merged)")
def alexnet_original(*, num_classes: int = 1000, in_channels: int = 3) -> AlexNet:
    """The 2012 paper's AlexNet without GPU grouping, for 227x227 inputs."""
    return _alexnet(True, num_classes, in_channels)
