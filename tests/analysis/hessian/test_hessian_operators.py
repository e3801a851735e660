"""The Gauss-Newton and empirical Fisher products and the batched products against the exact matrices of a tiny
MLP, formed with torch.autograd.functional and a per-sample loop."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from netprobe.analysis.hessian.hessian import hvp_operator, parameters, trace
from netprobe.analysis.hessian.density import lanczos, slq
from netprobe.analysis.hessian.lanczos import lanczos_eigen

LOSS = nn.functional.cross_entropy


def _setup(hidden=True):
    torch.manual_seed(0)
    layers = [nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)] if hidden else [nn.Linear(4, 3)]
    model = nn.Sequential(*layers).double()  # 43 parameters (15 without the hidden layer)
    x = torch.randn(12, 4, dtype=torch.float64)
    y = torch.arange(12) % 3
    batches = [(x[:5], y[:5]), (x[5:], y[5:])]  # uneven split: the weighting must still give the mean loss
    return model, x, y, batches


def _call(model):
    """w -> model's outputs on x with flat weights w, and the flat weights now."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in parameters(model)]
    sizes = [p.numel() for p in parameters(model)]
    flat = torch.cat([p.detach().reshape(-1) for p in parameters(model)])
    return (lambda w, x: functional_call(model, {n: t.view(s) for n, t, s in
                                                 zip(names, torch.split(w, sizes), shapes)}, (x,))), flat


def _hessian(model, x, y):
    f, w = _call(model)
    return torch.autograd.functional.hessian(lambda w: LOSS(f(w, x), y), w)


def _ggn(model, x, y):
    """J' H_z J with J the Jacobian of all outputs (N*C) and H_z the Hessian of the mean loss in them."""
    f, w = _call(model)
    z = f(w, x).detach()
    J = torch.autograd.functional.jacobian(lambda w: f(w, x).reshape(-1), w)
    Hz = torch.autograd.functional.hessian(lambda z: LOSS(z.view(len(x), -1), y), z.reshape(-1))
    return J.T @ Hz @ J


def _fisher(model, x, y):
    """(1/N) sum_i g_i g_i', each g_i from its own backward pass on sample i alone."""
    grads = []
    for i in range(len(x)):
        loss = LOSS(model(x[i:i + 1]), y[i:i + 1])
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, parameters(model))]))
    G = torch.stack(grads)
    return G.T @ G / len(x)


@pytest.mark.parametrize("kind, exact", [("hessian", _hessian), ("ggn", _ggn), ("fisher", _fisher)])
@pytest.mark.parametrize("keep_graph", [False, True])
def test_products_are_the_exact_matrix_times_v_one_or_several_at_once(kind, exact, keep_graph):
    model, x, y, batches = _setup()
    C = exact(model, x, y)
    product = hvp_operator(model, LOSS, batches, keep_graph=keep_graph, operator=kind)
    V = torch.randn(3, 43, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for _ in range(2):  # a kept graph is reused: the second call must not find it freed
        assert torch.allclose(product(V[0]), C @ V[0], atol=1e-10)
        assert torch.allclose(product(V), V @ C, atol=1e-10)  # C is symmetric


def test_gauss_newton_is_psd_and_differs_from_the_hessian_only_by_the_model_curvature():
    model, x, y, _ = _setup()
    assert torch.linalg.eigvalsh(_ggn(model, x, y)).min() > -1e-12
    assert torch.linalg.eigvalsh(_hessian(model, x, y)).min() < -1e-4  # tanh layer: H itself is indefinite
    linear, x, y, batches = _setup(hidden=False)  # a model linear in its weights: GGN = H exactly
    v = torch.randn(15, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(hvp_operator(linear, LOSS, batches, operator="ggn")(v), _hessian(linear, x, y) @ v,
                          atol=1e-12)


def test_fisher_trace_is_the_mean_squared_per_sample_gradient_norm():
    model, x, y, batches = _setup()
    norms = [sum(float((g ** 2).sum()) for g in torch.autograd.grad(LOSS(model(x[i:i + 1]), y[i:i + 1]),
                                                                  parameters(model))) for i in range(12)]
    est = trace(model, LOSS, batches, probes=40, seed=0, operator="fisher", batch=20)
    assert abs(est.value - sum(norms) / 12) < 4 * est.stderr


def test_batched_trace_and_density_equal_the_one_at_a_time_ones():
    model, x, y, batches = _setup()
    one = trace(model, LOSS, batches, probes=5, seed=3)
    many = trace(model, LOSS, batches, probes=5, seed=3, batch=2)  # 2 + 2 + 1: the same probes
    assert many.samples == pytest.approx(one.samples, rel=1e-12)
    alone = [lanczos(model, LOSS, batches, steps=10, seed=4 + r) for r in range(3)]
    together = slq(model, LOSS, batches, steps=10, runs=3, seed=4, batch=3)
    for a, b in zip(alone, together):
        assert b.nodes == pytest.approx(a.nodes, rel=1e-9, abs=1e-12)
        assert b.weights == pytest.approx(a.weights, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kind, exact", [("hessian", _hessian), ("ggn", _ggn)])
def test_lanczos_eigen_of_the_network_matrix(kind, exact):
    model, x, y, batches = _setup()
    values = torch.linalg.eigvalsh(exact(model, x, y)).flip(0)
    found = lanczos_eigen(model, LOSS, batches, k=43, steps=43, which="largest", tol=1e-8, operator=kind)
    assert found.values[:2] == pytest.approx(values[:2].tolist(), rel=1e-8)
    assert found.values[-1] == pytest.approx(float(values[-1]), abs=1e-9)  # the smallest, from the same run
    assert all(found.converged)


class _Layers(nn.Module):
    """Every case `second_order.cheap_second_order` rewrites: 2-D convolutions (bias, stride, dilation, groups),
    a 1-D one with padding "valid", batch norms with and without affine parameters (2-D and 1-D), F.relu and
    torch.relu."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=(2, 2), dilation=2, groups=2, bias=False)
        self.c3 = nn.Conv1d(4, 3, 3, padding="valid")
        self.b1, self.b2, self.b3 = nn.BatchNorm2d(4), nn.BatchNorm2d(4, affine=False), nn.BatchNorm1d(21)
        self.fc = nn.Linear(21, 3)

    def forward(self, x):
        x = nn.functional.relu(self.b1(self.c1(x)))
        x = torch.relu(self.b2(self.c2(x))) + x
        return self.fc(torch.tanh(self.b3(self.c3(x.flatten(2)).flatten(1))))


def _layers():
    torch.manual_seed(0)
    model = _Layers().double().eval()
    for bn in (model.b1, model.b2, model.b3):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return model, torch.randn(6, 2, 6, 6, dtype=torch.float64), torch.arange(6) % 3


@pytest.mark.parametrize("kind, exact", [("hessian", _hessian), ("ggn", _ggn), ("fisher", _fisher)])
@pytest.mark.parametrize("keep_graph", [False, True])
def test_products_through_the_rewritten_layers_are_the_exact_matrix_times_v(kind, exact, keep_graph):
    model, x, y = _layers()
    C = exact(model, x, y)  # through torch's own convolution, batch norm and ReLU
    product = hvp_operator(model, LOSS, [(x[:4], y[:4]), (x[4:], y[4:])], keep_graph=keep_graph, operator=kind)
    V = torch.randn(2, C.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(product(V[0]), C @ V[0], rtol=1e-10, atol=1e-12)
    assert torch.allclose(product(V), V @ C, rtol=1e-10, atol=1e-12)
    # A diagonal block: c2's weights and b3's, the other parameters constants while its graph is built.
    names = [name for name, _ in model.named_parameters()]
    sizes = [p.numel() for p in model.parameters()]
    start = [sum(sizes[:i]) for i in range(len(sizes))]
    scope = [i for i, name in enumerate(names) if name.startswith(("c2.", "b3."))]
    index = torch.cat([torch.arange(start[i], start[i] + sizes[i]) for i in scope])
    block = hvp_operator(model, LOSS, [(x, y)], [list(model.parameters())[i] for i in scope], keep_graph, kind)
    v = V[0, :len(index)]
    assert torch.allclose(block(v), C[index][:, index] @ v, rtol=1e-10, atol=1e-12)
    assert all(p.requires_grad for p in model.parameters())  # the others' requires_grad given back


def _backward_nodes(out) -> set[str]:
    seen, todo = set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo.extend(next_node for next_node, _ in node.next_functions)
    return {node.name() for node in seen}


def test_the_rewrites_apply_where_they_can_and_leave_the_rest_to_torch():
    from netprobe.analysis.hessian.second_order import cheap_second_order

    model, x, _ = _layers()
    with cheap_second_order():
        nodes = _backward_nodes(model(x))
    assert {"_ConvolutionBackward", "_AffineBackward", "_ReluBackward"} <= nodes
    assert not nodes & {"ConvolutionBackward0", "NativeBatchNormBackward0", "ReluBackward0"}
    same, bn = nn.Conv2d(2, 2, 3, padding="same").double(), nn.BatchNorm2d(2).double()
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    with cheap_second_order():  # padding "same", batch statistics, an in-place ReLU, an unbatched input
        nodes = _backward_nodes(nn.functional.relu(bn(same(x[:, :2])), inplace=True).sum()
                                + nn.functional.conv2d(x[0, :2], w).sum())
    assert {"ConvolutionBackward0", "NativeBatchNormBackward0", "ReluBackward0"} <= nodes
    assert not nodes & {"_ConvolutionBackward", "_AffineBackward", "_ReluBackward"}
