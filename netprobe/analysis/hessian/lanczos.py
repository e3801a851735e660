"""The Lanczos iteration on a symmetric operator, with full reorthogonalisation, and its Ritz pairs: the extreme
eigenvalues with a residual norm each (Golub and Van Loan, "Matrix Computations", 4th ed., section 10.1).

After m steps from a unit start, Q'AQ = T (tridiagonal) and A Q = Q T + beta_m q_{m+1} e_m'; a Ritz pair
(theta, y = Q s) of T's eigenpair (theta, s) has residual ||A y - theta y|| = beta_m |s_m|, read off T without
another product. Several runs advance in lockstep so that their products can share one batched call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from netprobe.analysis.hessian.hessian import Eigen, _like, hvp_operator, parameters, rademacher
from netprobe.analysis.hessian.operators import products

WHICH = ("magnitude", "largest", "smallest")


@dataclass
class Krylov:
    """One Lanczos run: the diagonal (alphas) and off-diagonal (betas) of T, the orthonormal basis, and the
    norm of the next vector (beta_m: zero at an invariant subspace)."""

    alphas: list[float]
    betas: list[float]
    basis: list[torch.Tensor]
    last: float

    def tridiagonal(self) -> torch.Tensor:
        """T in float64."""
        T = torch.diag(torch.tensor(self.alphas, dtype=torch.float64))
        if self.betas:
            off = torch.tensor(self.betas, dtype=torch.float64)
            T += torch.diag(off, 1) + torch.diag(off, -1)
        return T


def _krylov(v: torch.Tensor, steps: int):
    """`steps` Lanczos steps from `v` as a coroutine: yields each basis vector, is sent its product, returns a
    `Krylov`. Stops early at an invariant subspace (the next vector's norm below 1e-10 of the largest
    coefficient so far)."""
    basis, alphas, betas, beta = [v / v.norm()], [], [], 0.0
    last = min(steps, v.numel()) - 1
    for i in range(last + 1):
        w = yield basis[-1]
        alphas.append(float(w @ basis[-1]))
        # Full reorthogonalisation (twice is enough): without it rounding makes Ritz values repeat (ghosts).
        for _ in range(2):
            for u in basis:
                w = w - (u @ w) * u
        beta = float(w.norm())
        scale = max(abs(a) for a in alphas) + (betas[0] if betas else 0.0)
        if i == last or beta <= 1e-10 * scale:
            break
        betas.append(beta)
        basis.append(w / beta)
    return Krylov(alphas, betas, basis, beta)


def krylov_runs(product, starts: list[torch.Tensor], steps: int, batch: int = 1, step=None) -> list[Krylov]:
    """Lanczos runs of `steps` products of `product` from each of `starts`, advanced together: each round's
    products go `batch` at a time through `operators.products`; `step()` after each product."""
    runs = [_krylov(v, steps) for v in starts]
    pending, done = {i: next(run) for i, run in enumerate(runs)}, {}
    while pending:
        keys = list(pending)
        for key, w in zip(keys, products(product, [pending[k] for k in keys], batch)):
            if step is not None:
                step()
            try:
                pending[key] = runs[key].send(w)
            except StopIteration as stop:
                done[key] = stop.value
                del pending[key]
    return [done[i] for i in range(len(runs))]


def ritz_pairs(run: Krylov, k: int, which: str = "magnitude", tol: float = 1e-3) -> Eigen:
    """The `k` Ritz values of `run` first by `which` (`WHICH`: largest magnitude, largest or smallest
    algebraic), their Ritz vectors, residual norms beta_m |s_m|, and converged flags (residual at most `tol`
    times the largest |Ritz value|); `iterations` is the run's products for each."""
    theta, s = torch.linalg.eigh(run.tridiagonal())
    key = {"magnitude": -theta.abs(), "largest": -theta, "smallest": theta}[which]
    order = torch.argsort(key, stable=True)[:k]
    residuals = (run.last * s[-1, order]).abs()
    scale = float(theta.abs().max())
    basis = torch.stack(run.basis)
    vectors = [s[:, j].to(dtype=basis.dtype, device=basis.device) @ basis for j in order.tolist()]
    return Eigen(values=theta[order].tolist(), vectors=[v / v.norm() for v in vectors],
                 iterations=[len(run.alphas)] * len(order), converged=[r <= tol * scale for r in residuals.tolist()],
                 residuals=residuals.tolist())


def lanczos_eigen(model, loss_fn, batches, k: int = 1, steps: int = 100, which: str = "magnitude",
                  tol: float = 1e-3, seed: int = 0, step=None, params=None, keep_graph: bool = False,
                  operator: str = "hessian") -> Eigen:
    """The `k` eigenvalues first by `which` of H (or the `operator` matrix, over `params`: `hvp_operator`) from
    one Lanczos run of `steps` products from a Rademacher start drawn from `seed`, with residuals and converged
    flags (`ritz_pairs`)."""
    params = parameters(model) if params is None else list(params)
    product = hvp_operator(model, loss_fn, batches, params, keep_graph, operator)
    n, dtype, device = _like(params)
    start = rademacher(n, torch.Generator().manual_seed(seed)).to(dtype=dtype, device=device)
    return ritz_pairs(krylov_runs(product, [start], steps, step=step)[0], k, which, tol)
