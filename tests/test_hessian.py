"""The Hessian tools against the exact Hessian of a tiny MLP, formed with torch.autograd.functional.hessian."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from netprobe.analysis.hessian.hessian import hvp, parameters, top_eigenvalues, trace

LOSS = nn.functional.cross_entropy


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()  # 43 parameters
    x = torch.randn(12, 4, dtype=torch.float64)
    y = torch.arange(12) % 3
    batches = [(x[:5], y[:5]), (x[5:], y[5:])]  # uneven split: the weighting must still give the mean loss
    return model, x, y, batches


def _exact(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in parameters(model)]
    sizes = [p.numel() for p in parameters(model)]
    flat = torch.cat([p.detach().reshape(-1) for p in parameters(model)])

    def loss(w):
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(w, sizes), shapes)}
        return LOSS(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat)


def test_hvp_is_the_exact_hessian_times_v():
    model, x, y, batches = _setup()
    H = _exact(model, x, y)
    assert H.shape == (43, 43)
    v = torch.randn(43, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(hvp(model, LOSS, batches, v), H @ v, atol=1e-10)


def test_power_iteration_finds_the_largest_magnitude_eigenvalues():
    model, x, y, batches = _setup()
    exact = torch.linalg.eigvalsh(_exact(model, x, y))
    top = sorted(exact.tolist(), key=abs, reverse=True)[:3]
    found = top_eigenvalues(model, LOSS, batches, k=3, iters=2000, tol=1e-9, seed=0)
    assert all(found.converged)
    assert found.values == pytest.approx(top, rel=1e-2)
    # the eigenvectors are orthonormal and satisfy Hv = lambda v
    V = torch.stack(found.vectors)
    assert torch.allclose(V @ V.T, torch.eye(3, dtype=V.dtype), atol=1e-6)
    H = _exact(model, x, y)
    assert torch.allclose(V @ H, torch.tensor(found.values, dtype=V.dtype)[:, None] * V, atol=1e-3)


def test_hutchinson_trace_within_four_standard_errors():
    model, x, y, batches = _setup()
    H = _exact(model, x, y)
    est = trace(model, LOSS, batches, probes=400, seed=0)
    # Rademacher probes: Var(z'Hz) = 2 * sum of squared off-diagonal entries; the estimate is near it
    var = 2 * float((H ** 2).sum() - (H.diagonal() ** 2).sum())
    assert est.stderr == pytest.approx((var / 400) ** 0.5, rel=0.25)
    assert abs(est.value - float(H.trace())) < 4 * est.stderr


def test_same_seed_same_numbers_other_seed_others():
    model, _, _, batches = _setup()
    a = top_eigenvalues(model, LOSS, batches, k=2, iters=20, seed=3)
    b = top_eigenvalues(model, LOSS, batches, k=2, iters=20, seed=3)
    assert a.values == b.values and a.iterations == b.iterations
    assert trace(model, LOSS, batches, probes=5, seed=3).samples == trace(model, LOSS, batches, probes=5, seed=3).samples
    assert trace(model, LOSS, batches, probes=5, seed=3).samples != trace(model, LOSS, batches, probes=5, seed=4).samples
