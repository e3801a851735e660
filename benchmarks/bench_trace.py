"""Hutch++ against Hutchinson's estimator at equal matrix-vector products, on a matrix whose trace is known.

    python benchmarks/bench_trace.py --size 300 --seeds 100 --products 12 30

The matrix is Q diag(100 / i^2) Q' (i = 1..size, Q a seeded random orthogonal matrix): a few eigenvalues
dominate, as in a network's Hessian. Both estimators use Rademacher vectors; Hutchinson's takes one per product.
Printed: the mean absolute relative error over --seeds seeds, and its ratio.
"""

from __future__ import annotations

import argparse

import torch

from netprobe.analysis.hessian.hessian import rademacher
from netprobe.analysis.hessian.hutchpp import hutchpp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--products", type=int, nargs="+", default=[12, 30])
    args = parser.parse_args()
    n = args.size
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    A = q @ torch.diag(torch.tensor([100.0 / i ** 2 for i in range(1, n + 1)], dtype=torch.float64)) @ q.T
    exact = float(A.trace())
    for m in args.products:
        hutch, plus = 0.0, 0.0
        for seed in range(args.seeds):
            gen = torch.Generator().manual_seed(seed)
            z = torch.stack([rademacher(n, gen).double() for _ in range(m)])
            hutch += abs(float(((z @ A) * z).sum(1).mean()) / exact - 1) / args.seeds
            plus += abs(hutchpp(lambda v: v @ A, n, m, seed=seed, batch=m).value / exact - 1) / args.seeds
        print(f"{m} products: Hutchinson {hutch:.2e}, Hutch++ {plus:.2e} mean relative error, "
              f"{hutch / plus:.1f}x lower")


if __name__ == "__main__":
    main()
