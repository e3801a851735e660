"""z'Hz by Taylor mode against independent values: the second derivative of t -> L(w + t z) by autograd in t
(float64), and the double-backward products' z'(Hz)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import netprobe
from netprobe.analysis.hessian.hessian import hvp_operator, parameters, trace
from netprobe.analysis.hessian.taylor import Unsupported, quadratic_form


class Mixed(nn.Module):
    """Every rule the zoo does not already reach: tanh, sigmoid, exp, sqrt/rsqrt, pow, products and quotients of
    moving values, a parameter added per sample, slicing, padding, concatenation, pooling of each kind."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.gate = nn.Conv2d(4, 4, 1, bias=False)
        self.shift = nn.Parameter(torch.randn(4, 1, 1))
        self.head = nn.Linear(4 * 2 * 2 + 4, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        g = torch.sigmoid(self.gate(h)) * torch.tanh(h) + self.shift
        g = g / (1 + g.pow(2)).sqrt() + torch.exp(-g) * torch.rsqrt(1 + h * h)
        g = F.pad(g[:, :, 1:, :], (0, 0, 1, 0))
        pooled = F.max_pool2d(g, 2) + F.avg_pool2d(g, 2)
        both = torch.cat([F.adaptive_avg_pool2d(pooled, 2).flatten(1), pooled.mean((2, 3))], 1)
        return self.head(both)


def _second_derivative(model, loss_fn, x, y, z, params):
    """d2/dt2 L(w + t z) at t = 0 by autograd in the scalar t (no Hessian-vector product)."""
    names = {id(p): n for n, p in model.named_parameters()}
    pieces = torch.split(z, [p.numel() for p in params])
    t = torch.zeros((), dtype=z.dtype, requires_grad=True)
    moved = {names[id(p)]: p.detach() + t * v.view_as(p) for p, v in zip(params, pieces)}
    loss = loss_fn(torch.func.functional_call(model, moved, (x,)), y)
    (first,) = torch.autograd.grad(loss, t, create_graph=True)
    (second,) = torch.autograd.grad(first, t)
    return float(second)


def _probe(params, seed=0):
    n = sum(p.numel() for p in params)
    return (torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(seed)) * 2 - 1).to(params[0].dtype)


def _mixed():
    torch.manual_seed(0)
    model = Mixed().double().eval()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    model.bn.running_var.uniform_(0.5, 2)
    return model, torch.randn(5, 2, 6, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])


def test_every_rule_equals_the_second_derivative_in_t():
    model, x, y = _mixed()
    params = parameters(model)
    for seed in range(3):
        z = _probe(params, seed)
        expected = _second_derivative(model, F.cross_entropy, x, y, z, params)
        assert quadratic_form(model, F.cross_entropy, [(x, y)], params)(z) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name, kwargs", [("resnet20", {}), ("resnet20", {"plain": True}), ("lenet5", {}),
                                          ("inception_block", {}), ("unet", {"base": 4}), ("densenet121", {})])
def test_zoo_models_equal_the_products(name, kwargs):
    torch.manual_seed(0)
    model = netprobe.load(name, **kwargs).double().eval()
    spec = netprobe.model_spec(name)
    size = (3, 64, 64) if name == "densenet121" else spec.input_size
    x = torch.randn(2, *size, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    y = torch.randint(0, out.shape[1], (2, *out.shape[2:]))
    params = parameters(model)
    z = _probe(params)
    expected = float(z @ hvp_operator(model, F.cross_entropy, [(x, y)], params)(z))
    assert quadratic_form(model, F.cross_entropy, [(x, y)], params)(z) == pytest.approx(expected, rel=1e-9)


class InPlace(nn.Module):
    """torchvision's residual block style: in-place ReLUs and an in-place shortcut addition."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(inplace=True)
        self.head = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        out = self.relu(self.conv(x))
        out = self.bn(self.conv(out))
        out += x
        return self.head(self.relu(out).flatten(1))


class SharedWrite(nn.Module):
    """An in-place ReLU on a value whose view is used afterwards: refused (the graph would miss the write)."""

    def __init__(self):
        super().__init__()
        self.fc, self.head = nn.Linear(4, 4), nn.Linear(8, 3)

    def forward(self, x):
        h = self.fc(x)
        seen = h.view(-1, 4)
        return self.head(torch.cat([F.relu(h, inplace=True), seen], 1))


def test_in_place_operators_are_recorded_as_functional_ones():
    torch.manual_seed(0)
    model = InPlace().double().eval()
    x, y = torch.randn(5, 2, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    params = parameters(model)
    z = _probe(params, 2)
    expected = _second_derivative(model, F.cross_entropy, x, y, z, params)
    assert quadratic_form(model, F.cross_entropy, [(x, y)], params)(z) == pytest.approx(expected, rel=1e-10)


def test_batches_are_weighted_by_their_samples_and_kept_graphs_agree():
    model, x, y = _mixed()
    params = [p for n, p in model.named_parameters() if n.startswith(("bn", "head"))]  # a diagonal block
    z = _probe(params, 3)
    whole = quadratic_form(model, F.cross_entropy, [(x, y)], params)(z)
    split = [(x[:2], y[:2]), (x[2:], y[2:])]
    assert quadratic_form(model, F.cross_entropy, split, params)(z) == pytest.approx(whole, rel=1e-12)
    assert quadratic_form(model, F.cross_entropy, split, params, keep_graph=True)(z) == pytest.approx(whole, rel=1e-12)
    block = float(z @ hvp_operator(model, F.cross_entropy, [(x, y)], params)(z))
    assert whole == pytest.approx(block, rel=1e-10)


class _Softplus(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.out(F.softplus(self.fc(x)))


class Activations(nn.Module):
    """The activations of modern models: GELU, SiLU, leaky ReLU, ReLU6."""

    def __init__(self):
        super().__init__()
        self.fc, self.mid, self.out = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = F.gelu(self.fc(x)) + F.silu(self.fc(x))
        return self.out(F.leaky_relu(self.mid(h), 0.2) + F.relu6(3 * h))


def test_activation_rules_equal_the_second_derivative_in_t():
    torch.manual_seed(0)
    model = Activations().double().eval()
    x, y = torch.randn(7, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    params = parameters(model)
    for seed in range(3):
        z = _probe(params, seed)
        expected = _second_derivative(model, F.cross_entropy, x, y, z, params)
        assert quadratic_form(model, F.cross_entropy, [(x, y)], params)(z) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("model", [_Softplus(), SharedWrite(), nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False),
                                                             nn.Flatten(), nn.Linear(8, 3))])
def test_operators_without_a_rule_fall_back_to_products(model):
    torch.manual_seed(0)
    model = model.double().eval()
    x = torch.randn(4, 4, dtype=torch.float64) if isinstance(model, (_Softplus, SharedWrite)) else torch.randn(4, 1, 4, 4).double()
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(Unsupported):
        quadratic_form(model, F.cross_entropy, [(x, y)], parameters(model))(_probe(parameters(model)))
    assert trace(model, F.cross_entropy, [(x, y)], probes=3).samples == \
        trace(model, F.cross_entropy, [(x, y)], probes=3, taylor=False).samples


def test_trace_by_taylor_mode_matches_the_products_in_float32():
    torch.manual_seed(0)
    model = netprobe.load("resnet20").eval()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    fast = trace(model, F.cross_entropy, [(x, y)], probes=3, seed=1)
    slow = trace(model, F.cross_entropy, [(x, y)], probes=3, seed=1, taylor=False)
    assert fast.samples == pytest.approx(slow.samples, rel=1e-4)
