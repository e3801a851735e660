"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998), as the case studies draw it: tanh units, average pooling, and full
C3 connectivity (every one of C3's 16 maps sees all 6 S2 maps) rather than the paper's sparse table."""

import torch
from torch import nn

from netprobe.zoo.registry import register_model


class LeNet5(nn.Module):
    """Two 5x5 convolutions with 2x2 average pooling, then fully connected 120-84-num_classes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),  # C1: (N, 6, 28, 28)
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S2: (N, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5),  # C3: (N, 16, 10, 10)
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S4: (N, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),  # C5: a 5x5 convolution over a 5x5 map is a full connection
            nn.Tanh(),
            nn.Linear(120, 84),  # F6
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )
        # The paper draws weights uniformly in +-2.4 / fan_in (its appendix C); biases start at zero.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                nn.init.uniform_(m.weight, -2.4 / fan_in, 2.4 / fan_in)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 16, 5, 5)
        x = torch.flatten(x, 1)  # (N, 400)
        return self.classifier(x)


@register_model(family="lenet", input_size=(1, 32, 32), num_classes=10,
                description="LeNet-5 (LeCun et al. 1998): tanh, average pooling, 61,706 parameters")
def lenet5(*, num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    """LeNet-5 for 32x32 inputs."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
