"""netprobe.count: any callable on meta tensors (here a training step), attributed to modules and phases.

Hand counts at batch 2: conv 3->4 3x3 on 8x8: 2 x 64 x 4 x 27 = 13824 MACs forward, the same again for its
weight gradient (the input needs none); fc 256->10: 2 x 256 x 10 = 5120 forward, twice that backward (input and
weight gradients). SGD's first step with momentum adds the gradient to each parameter: 1 FLOP per element.
torch's FlopCounterMode, on real tensors, counts 2 FLOPs per MAC of the same convolutions and matrix products.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import netprobe


class Net(nn.Module):
    def __init__(self, norm=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if norm else nn.Identity()
        self.fc = nn.Linear(64 if norm else 256, 10)
        self.pool = nn.MaxPool2d(2) if norm else nn.Identity()

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1))


def step(model, x, y):
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def _flop_counter(model) -> int:
    with FlopCounterMode(display=False) as counter:
        step(model, torch.randn(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    return counter.get_total_flops()


def test_a_training_step_by_module_and_phase():
    model = Net()
    result = netprobe.count(step, model, (2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    macs = {(r.name, r.phase): r.macs for r in result.layers.itertuples()}
    assert macs[("conv", "forward")] == macs[("conv", "backward")] == 13824
    assert (macs[("fc", "forward")], macs[("fc", "backward")]) == (5120, 10240)
    flops = {(r.name, r.phase): r.flops for r in result.layers.itertuples()}
    assert flops[("conv", "other")] == 4 * 27 + 4 and flops[("fc", "other")] == 2560 + 10
    assert 2 * result.totals["all"]["macs"] == _flop_counter(Net())
    assert result.uncounted_ops == {}
    assert all(p.grad is None and not p.is_meta for p in model.parameters())  # the model itself never ran
    assert not model.conv._forward_hooks and not model.conv._forward_pre_hooks


def test_norms_and_pooling_are_counted_and_match_flop_counter():
    result = netprobe.count(step, Net(norm=True), (2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    assert result.uncounted_ops == {}
    assert 2 * result.totals["all"]["macs"] == _flop_counter(Net(norm=True))
    assert result.totals["backward"]["macs"] == 13824 + 2 * 2 * 64 * 10
