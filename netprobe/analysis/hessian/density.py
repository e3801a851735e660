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

from netprobe.analysis.hessian.hessian import _like, hvp_operator, parameters


@dataclass
class Quadrature:
    """One Lanczos run: Ritz values (ascending), their quadrature weights (summing to 1), and products used."""

    nodes: list[float]
    weights: list[float]
    steps: int


def lanczos(model, loss_fn, batches, steps: int = 100, seed: int = 0, step=None,
            keep_graph: bool = False) -> Quadrature:
    """`steps` Lanczos iterations on H from a Rademacher start drawn from `seed`; stops early at an invariant
    subspace (the next vector's norm below 1e-10 of the largest coefficient so far); `keep_graph` as
    `hessian.hvp_operator`."""
    product = hvp_operator(model, loss_fn, batches, keep_graph=keep_graph)
    n, dtype, device = _like(parameters(model))
    gen = torch.Generator().manual_seed(seed)
    v = (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).to(dtype=dtype, device=device)
    basis, alphas, betas = [v / v.norm()], [], []
    for i in range(min(steps, n)):
        w = product(basis[-1])
        if step is not None:
            step()
        alphas.append(float(w @ basis[-1]))
        # Full reorthogonalisation (twice is enough): without it rounding makes Ritz values repeat (ghosts).
        for _ in range(2):
            for u in basis:
                w = w - (u @ w) * u
        beta = float(w.norm())
        scale = max(abs(a) for a in alphas) + (betas[0] if betas else 0.0)
        if i == min(steps, n) - 1 or beta <= 1e-10 * scale:
            break
        betas.append(beta)
        basis.append(w / beta)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vectors = torch.linalg.eigh(T)
    return Quadrature(nodes.tolist(), (vectors[0] ** 2).tolist(), len(alphas))


def slq(model, loss_fn, batches, steps: int = 100, runs: int = 1, seed: int = 0, step=None,
        keep_graph: bool = False) -> list[Quadrature]:
    """`runs` Lanczos runs from starts drawn one after another from `seed`."""
    return [lanczos(model, loss_fn, batches, steps=steps, seed=seed + r, step=step, keep_graph=keep_graph)
            for r in range(runs)]


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
