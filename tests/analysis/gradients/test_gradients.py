"""Gradient profiles, responses and shattered gradients: exact mechanics against plain autograd, and the
qualitative plain-vs-residual result at initialisation with fixed seeds."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.analysis.gradients.profile import (NonFiniteLossError, compare_profiles, depth_sweep, first_to_last,
                                         gradient_profile, response_std, twins)
from netprobe.analysis.gradients.shattered import _use_batch_statistics, lag_one, shattered_gradients
from netprobe.errors import NetprobeError
from netprobe.zoo.cifar_resnet import cifar_resnet


def batch(n, seed, classes=10, size=(3, 32, 32)):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *size, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def weighted(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def reference_norms(model, x, y):
    """Per-layer gradient norms from a plain loss.backward() on a deep copy (the model under test stays untouched)."""
    import copy

    twin = copy.deepcopy(model).train()
    F.cross_entropy(twin(x), y).backward()
    return [m.weight.grad.norm().item() for _, m in weighted(twin)]


def test_profile_equals_plain_autograd():
    torch.manual_seed(0)
    model = cifar_resnet(20)
    x, y = batch(8, 1)
    table = gradient_profile(model, [(x, y)])
    # CIFAR ResNets register their layers in forward order, so registration order is the reference order.
    assert table["layer"].tolist() == [n for n, _ in weighted(model)]
    assert table["depth"].tolist() == list(range(1, 21))
    assert table["grad_norm"].tolist() == pytest.approx(reference_norms(model, x, y), rel=1e-5)
    weight_norms = [m.weight.norm().item() for _, m in weighted(model)]
    assert table["grad_to_weight"].tolist() == pytest.approx(
        [g / w for g, w in zip(table["grad_norm"], weight_norms)], rel=1e-6)
    assert (table["grad_norm_std"] == 0).all()  # one batch: no spread


def test_mean_and_std_over_batches():
    torch.manual_seed(0)
    model = cifar_resnet(8)
    batches = [batch(4, s) for s in (1, 2, 3)]
    table = gradient_profile(model, batches)
    per_batch = torch.tensor([reference_norms(model, x, y) for x, y in batches], dtype=torch.float64)
    assert table["grad_norm"].tolist() == pytest.approx(per_batch.mean(0).tolist(), rel=1e-5)
    assert table["grad_norm_std"].tolist() == pytest.approx(per_batch.std(0, correction=0).tolist(), rel=1e-4)


def test_model_is_given_back_untouched():
    torch.manual_seed(0)
    model = cifar_resnet(8).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradient_profile(model, [batch(4, 1)])
    response_std(model, batch(4, 2)[0], train=True)
    shattered_gradients(model, *batch(2, 3), points=4, reference=batch(8, 4)[0])
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class Backwards(nn.Module):
    """Registers its layers in the reverse of the order forward uses them."""

    def __init__(self):
        super().__init__()
        self.last = nn.Linear(6, 3)
        self.first = nn.Linear(5, 6)

    def forward(self, x):
        return self.last(torch.relu(self.first(x)))


def test_forward_order_not_registration_order():
    table = gradient_profile(Backwards(), [(torch.randn(4, 5), torch.tensor([0, 1, 2, 0]))])
    assert table["layer"].tolist() == ["first", "last"]


def test_nan_loss_is_a_finding_naming_where_it_started():
    torch.manual_seed(0)
    model = cifar_resnet(20)
    with torch.no_grad():
        model.layer2[1].conv2.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError) as info:
        gradient_profile(model, [batch(4, 1)])
    assert info.value.layer == "layer2.1.conv2"
    assert str(info.value).startswith("finding: the loss is nan on batch 0")
    assert "'layer2.1.conv2' (Conv2d)" in str(info.value)


def test_twins_share_their_weights_and_leave_the_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    (_, residual), (_, plain) = twins(lambda plain: cifar_resnet(14, plain=plain), seed=5)
    assert torch.rand(1) == expected
    a, b = residual.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not residual.layer1[0].plain and plain.layer1[0].plain


def test_compare_has_both_variants_of_equal_length():
    table = compare_profiles(lambda plain: cifar_resnet(8, plain=plain), [batch(4, 1)], seed=0)
    assert table["variant"].tolist() == ["residual"] * 8 + ["plain"] * 8
    assert list(table.columns) == ["variant", "depth", "layer", "grad_norm", "grad_to_weight", "grad_norm_std"]


def test_depth_sweep_summary():
    sweep = depth_sweep([8, 14], [batch(2, 1)], seed=0)
    summary = sweep.summary
    assert summary[["model", "variant", "layers"]].values.tolist() == [
        ["resnet8", "residual", 8], ["resnet8", "plain", 8], ["resnet14", "residual", 14], ["resnet14", "plain", 14]]
    for (model, variant), rows in sweep.layers.groupby(["model", "variant"], sort=False):
        row = summary[(summary.model == model) & (summary.variant == variant)].iloc[0]
        assert row.first_to_last == pytest.approx(rows.grad_norm.iloc[0] / rows.grad_norm.iloc[-1])
    with pytest.raises(NetprobeError, match="6n \\+ 2"):
        depth_sweep([21], [batch(2, 1)])


@pytest.mark.parametrize("seed", [0, 1])
def test_plain56_norm_ratio_is_far_from_one_residual56_is_not(seed):
    # The measured qualitative result (README "Gradients"): with BatchNorm at initialisation, the plain
    # ResNet-56's gradients grow toward the input (first/last ratio ~1e3), the residual one's stay within ~3x.
    x, y = batch(8, seed)
    summary = first_to_last(compare_profiles(lambda plain: cifar_resnet(56, plain=plain), [(x, y)], seed=seed))
    ratio = dict(zip(summary.variant, summary.first_to_last))
    assert abs(math.log10(ratio["plain"])) > 2
    assert abs(math.log10(ratio["residual"])) < 1


def test_response_std_is_the_std_of_each_bn_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.BatchNorm2d(2))
    x = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        model[1].running_var.fill_(4.0)
        model[4].running_mean.fill_(0.5)
        model.eval()
        first = model[1](model[0](x))
        second = model[4](model[3](model[2](first)))
    table = response_std(model, x)
    assert table["layer"].tolist() == ["1", "4"]
    assert table["response_std"].tolist() == pytest.approx([first.std(correction=0).item(),
                                                             second.std(correction=0).item()], rel=1e-6)


def test_batch_statistics_make_eval_equal_train_on_the_reference():
    torch.manual_seed(0)
    model = cifar_resnet(8)
    x = batch(16, 1)[0]
    with torch.no_grad():
        expected = model.train()(x)
        _use_batch_statistics(model, x)
        assert not model.training
        assert torch.allclose(model(x), expected, atol=1e-4)


def test_shattered_equals_point_by_point_gradients():
    torch.manual_seed(0)
    model = cifar_resnet(8).eval()
    x, y = batch(2, 1)
    points, span = 5, 0.5
    table = shattered_gradients(model, x, y, points=points, span=span, seed=3)
    # Independent: the same lines (same generator draw), one point at a time, correlations by torch.corrcoef.
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    lags = {k: [] for k in range(1, points)}
    for i in range(2):
        grads = []
        for t in torch.linspace(-span, span, points):
            p = (x[i] + t * v[i])[None].requires_grad_(True)
            model(p)[0, y[i]].backward()
            grads.append(p.grad.flatten().double())
        corr = torch.corrcoef(torch.stack(grads))
        for k in lags:
            lags[k].append(torch.diagonal(corr, offset=k).mean().item())
    assert table["lag"].tolist() == list(lags)
    assert table["correlation"].tolist() == pytest.approx([sum(v) / 2 for v in lags.values()], abs=1e-6)
    assert table["distance"].tolist() == pytest.approx([k * 2 * span / (points - 1) * math.sqrt(3 * 32 * 32)
                                                        for k in lags])


def test_plain_gradients_shatter_faster_than_residual():
    # Balduzzi et al. 2017: plain nets' input gradients decorrelate with depth. Measured at resnet20, init,
    # BN statistics of a reference batch: lag-1 correlation ~0.12 plain vs ~0.47 residual (README "Gradients").
    x, y = batch(8, 0)
    rows = []
    for variant, model in twins(lambda plain: cifar_resnet(20, plain=plain), seed=0):
        table = shattered_gradients(model, x[:2], y[:2], points=16, reference=x)
        rows.append(table.assign(variant=variant))
    import pandas as pd

    first = dict(zip(*lag_one(pd.concat(rows))[["variant", "correlation"]].T.values))
    assert first["plain"] < first["residual"] - 0.2
