"""The Hessian's eigenvalue density by stochastic Lanczos quadrature (Ghorbani, Krishnan and Xiao, "An
Investigation into Neural Net Optimization via Hessian Eigenvalue Density", ICML 2019; as PyHessian does).

Each run starts Lanczos from a normalised Rademacher vector v and runs `steps` Hessian-vector products with
full reorthogonalisation. The tridiagonal matrix's eigenvalues (Ritz values) are the quadrature nodes and the
squared first components of its eigenvectors the weights: sum_k w_k f(theta_k) approximates v'f(H)v, exactly
for polynomials f of degree below 2 * steps. The extreme Ritz values converge to H's extreme (algebraic)
eigenvalues first. Averaged over runs and smoothed with a Gaussian, the nodes give the density.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from netprobe.analysis.hessian.hessian import _like, hvp_operator, parameters, rademacher
from netprobe.analysis.hessian.lanczos import Krylov, krylov_runs


@dataclass
class Quadrature:
    """One Lanczos run: Ritz values (ascending), their quadrature weights (summing to 1), and products used."""

    nodes: list[float]
    weights: list[float]
    steps: int


def lanczos(model, loss_fn, batches, steps: int = 100, seed: int = 0, step=None,
            keep_graph: bool = False, params=None, operator: str = "hessian") -> Quadrature:
    """`steps` Lanczos iterations on H from a Rademacher start drawn from `seed`; stops early at an invariant
    subspace; `keep_graph`, `params` and `operator` as `hessian.hvp_operator`."""
    return slq(model, loss_fn, batches, steps, 1, seed, step, keep_graph, params, operator)[0]


def slq(model, loss_fn, batches, steps: int = 100, runs: int = 1, seed: int = 0, step=None,
        keep_graph: bool = False, params=None, operator: str = "hessian", batch: int = 1,
        shared: bool = True) -> list[Quadrature]:
    """`runs` Lanczos runs from starts drawn from `seed`, `seed + 1`, ..., advanced together with `batch`
    products per batched call (`lanczos.krylov_runs`); `shared` as `hessian.hvp_operator`."""
    params = parameters(model) if params is None else list(params)
    product = hvp_operator(model, loss_fn, batches, params, keep_graph, operator, shared)
    n, dtype, device = _like(params)
    starts = [rademacher(n, torch.Generator().manual_seed(seed + r)).to(dtype=dtype, device=device)
              for r in range(runs)]
    return [quadrature(run) for run in krylov_runs(product, starts, steps, batch, step)]


def quadrature(run: Krylov) -> Quadrature:
    """The Ritz values of a Lanczos run and their weights, the squared first components of T's eigenvectors."""
    nodes, vectors = torch.linalg.eigh(run.tridiagonal())
    return Quadrature(nodes.tolist(), (vectors[0] ** 2).tolist(), len(run.alphas))


def density_curve(runs: list[Quadrature], bins: int = 10000, sigma_squared: float = 1e-5,
                  overhead: float = 0.01) -> tuple[list[float], list[float]]:
    """(grid, density): as PyHessian's `density_generate`, a Gaussian of variance sigma_squared * max(1, range)
    at each node, weighted, averaged over runs, normalised to integrate to 1 over the grid. The grid spans the
    smallest to the largest node of all runs, padded by `overhead` (PyHessian spans the runs' mean extremes,
    which cuts off the nodes of a run beyond them)."""
    top = max(max(q.nodes) for q in runs) + overhead
    low = min(min(q.nodes) for q in runs) - overhead
    grid = torch.linspace(low, top, bins, dtype=torch.float64)
    sigma = sigma_squared * max(1.0, top - low)
    density = torch.zeros(bins, dtype=torch.float64)
    for q in runs:
        nodes = torch.tensor(q.nodes, dtype=torch.float64)
        weights = torch.tensor(q.weights, dtype=torch.float64)
        bumps = torch.exp(-(grid[:, None] - nodes) ** 2 / (2 * sigma)) / math.sqrt(2 * math.pi * sigma)
        density += bumps @ weights / len(runs)
    density /= density.sum() * (grid[1] - grid[0])
    return grid.tolist(), density.tolist()
