"""Per-block Hessian quantities and stochastic Lanczos quadrature against exact Hessians of tiny models."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from netprobe.analysis.hessian.density import density_curve, lanczos, slq
from netprobe.analysis.hessian.hessian import parameters, top_eigenvalues, trace
from netprobe.analysis.hessian.scopes import flat_indices, scope_parameters, scopes

LOSS = nn.functional.cross_entropy


def _exact(model, x, y, names=None):
    """The exact Hessian of the mean loss over the parameters `names` (default: all), the others held fixed."""
    named = dict(model.named_parameters())
    names = list(names or named)
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    flat = torch.cat([named[n].detach().reshape(-1) for n in names])

    def loss(w):
        params = {**{n: p.detach() for n, p in named.items()},
                  **{n: t.view(s) for n, t, s in zip(names, torch.split(w, sizes), shapes)}}
        return LOSS(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat)


def _mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()  # 25 + 18 = 43 parameters
    x, y = torch.randn(12, 4, dtype=torch.float64), torch.arange(12) % 3
    return model, x, y, [(x[:7], y[:7]), (x[7:], y[7:])]


@pytest.fixture(scope="module")
def resnet():
    """resnet20 of width 2 (4,492 parameters) on 6 random 8x8 images, float64, BatchNorm statistics not 0/1."""
    from netprobe.zoo import load

    torch.manual_seed(0)
    model = load("resnet20", width=2).double()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.arange(6) % 10
    return model.eval(), x, y


def test_scopes_of_a_cifar_resnet(resnet):
    model, x, _ = resnet
    found = scopes(model, x)
    blocks = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert list(found) == ["stem", *blocks, "head"]
    assert found["stem"] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert found["head"] == ["linear.weight", "linear.bias"]
    # each block: two 3x3 convs and two BatchNorms; width 2 in stage 1: 2 * 36 + 4 * 2 = 80 numbers
    assert len(found["layer1.0"]) == 6 and sum(p.numel() for p in scope_parameters(model, found["layer1.0"])) == 80
    every = [n for names in found.values() for n in names]
    assert sorted(every) == sorted(n for n, _ in model.named_parameters())  # a partition
    index = torch.cat([flat_indices(model, names) for names in found.values()])
    assert sorted(index.tolist()) == list(range(sum(p.numel() for p in parameters(model))))


def test_scopes_refuse_a_model_without_blocks():
    from netprobe.errors import NetprobeError

    with pytest.raises(NetprobeError, match="no residual blocks"):
        scopes(_mlp()[0], torch.zeros(1, 4, dtype=torch.float64))


@pytest.mark.parametrize("scope", ["layer3.2", "head"])
def test_block_top_eigenvalue_is_the_exact_sub_blocks(resnet, scope):
    model, x, y = resnet
    names = scopes(model, x)[scope]
    exact = torch.linalg.eigvalsh(_exact(model, x, y, names))
    largest = max(exact.tolist(), key=abs)
    found = top_eigenvalues(model, LOSS, [(x, y)], k=1, iters=3000, tol=1e-10, seed=0,
                            params=scope_parameters(model, names))
    assert found.converged == [True]
    assert found.values[0] == pytest.approx(largest, rel=1e-2)


def test_block_traces_add_up_to_the_model_trace_and_estimate_the_sub_blocks():
    model, x, y, batches = _mlp()
    H = _exact(model, x, y)
    groups = {"first": torch.arange(0, 25), "second": torch.arange(25, 43)}  # Linear(4, 5), Linear(5, 3)
    est = trace(model, LOSS, batches, probes=400, seed=0, groups=groups)
    # same probes: per probe, the groups' z_i (Hz)_i sum to z'Hz
    for k in range(400):
        assert est.groups["first"].samples[k] + est.groups["second"].samples[k] == pytest.approx(est.samples[k],
                                                                                                 abs=1e-9)
    for name, index in groups.items():
        part = est.groups[name]
        exact = float(H.diagonal()[index].sum())  # the trace of the group's diagonal block
        assert part.probes == 400 and abs(part.value - exact) < 4 * part.stderr


def _start(n, seed):
    """Lanczos's documented start: a Rademacher vector drawn on the CPU from `seed`, normalised."""
    z = (torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(seed)) * 2 - 1).double()
    return z / z.norm()


def test_lanczos_quadrature_is_exact_for_low_degree_moments():
    model, x, y, batches = _mlp()
    H = _exact(model, x, y)
    q = lanczos(model, LOSS, batches, steps=6, seed=3)
    assert q.steps == 6 and sum(q.weights) == pytest.approx(1, abs=1e-12)
    v = _start(43, 3)
    nodes, weights = torch.tensor(q.nodes), torch.tensor(q.weights)
    for j in range(12):  # Gauss quadrature with m nodes integrates polynomials of degree <= 2m - 1 exactly
        exact = float(v @ torch.linalg.matrix_power(H, j) @ v)
        assert float((weights * nodes ** j).sum()) == pytest.approx(exact, rel=1e-6, abs=1e-12)


def test_lanczos_extreme_ritz_values_are_the_extreme_eigenvalues():
    model, x, y, batches = _mlp()
    exact = torch.linalg.eigvalsh(_exact(model, x, y))
    full = lanczos(model, LOSS, batches, steps=100, seed=0)  # stops at 43 or at an invariant subspace
    assert full.steps <= 43
    assert max(full.nodes) == pytest.approx(float(exact.max()), rel=1e-8)
    assert min(full.nodes) == pytest.approx(float(exact.min()), rel=1e-6, abs=1e-10)
    short = slq(model, LOSS, batches, steps=15, runs=2, seed=0)
    assert len(short) == 2 and short[0].nodes != short[1].nodes  # each run its own start
    assert max(short[0].nodes) == pytest.approx(float(exact.max()), rel=1e-2)  # the extremes converge first
    assert max(short[0].nodes) <= float(exact.max()) * (1 + 1e-9)  # Ritz values interlace: never beyond


def test_density_curve_is_a_normalised_smoothing_of_the_nodes():
    from netprobe.analysis.hessian.density import Quadrature

    runs = [Quadrature([-1.0, 2.0], [0.25, 0.75], 2), Quadrature([0.0, 2.0], [0.5, 0.5], 2)]
    grid, density = density_curve(runs, bins=20001, overhead=0.1)  # no bump cut by the grid's ends
    step = grid[1] - grid[0]
    assert sum(density) * step == pytest.approx(1, rel=1e-9)
    mean = sum(g * d for g, d in zip(grid, density)) * step
    assert mean == pytest.approx((0.25 * -1 + 0.75 * 2 + 0.5 * 2) / 2, abs=1e-3)  # the runs' average node mean
    assert grid[0] == pytest.approx(-1.1) and grid[-1] == pytest.approx(2.1)  # every node, padded


# --- resuming -----------------------------------------------------------------------------------------------


class Stop(Exception):
    pass


def _interrupted(run, after):
    """Run `run(step, save)` until `after` products, keeping the last saved state; then the state."""
    states, count = [], [0]

    def step():
        count[0] += 1
        if count[0] == after:
            raise Stop

    with pytest.raises(Stop):
        run(step, states.append)
    return states[-1]


@pytest.mark.parametrize("second", [False, True])  # stopped inside the first search, or inside the second
def test_power_iteration_resumes_where_it_stopped(second):
    model, _, _, batches = _mlp()
    whole = top_eigenvalues(model, LOSS, batches, k=2, iters=40, tol=1e-6, seed=1)
    after = whole.iterations[0] + 3 if second else 3
    assert after < sum(whole.iterations)
    state = _interrupted(lambda step, save: top_eigenvalues(model, LOSS, batches, k=2, iters=40, tol=1e-6, seed=1,
                                                            step=step, save=save), after)
    count = []
    again = top_eigenvalues(model, LOSS, batches, k=2, iters=40, tol=1e-6, seed=1, state=state,
                            step=lambda: count.append(1))
    assert again.values == whole.values and again.iterations == whole.iterations
    assert all(torch.equal(a, b) for a, b in zip(again.vectors, whole.vectors))
    assert len(count) == sum(whole.iterations) - (after - 1)  # only the products not done before the stop


def test_trace_resumes_with_the_same_probes():
    model, _, _, batches = _mlp()
    groups = {"first": torch.arange(0, 25)}
    whole = trace(model, LOSS, batches, probes=8, seed=2, groups=groups)
    state = _interrupted(lambda step, save: trace(model, LOSS, batches, probes=8, seed=2, groups=groups, step=step,
                                                  save=save), 5)
    again = trace(model, LOSS, batches, probes=8, seed=2, groups=groups, state=state)
    assert again.samples == whole.samples and again.groups["first"].samples == whole.groups["first"].samples
