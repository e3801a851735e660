"""Hutch++ (Meyer, Musco, Musco and Woodruff, "Hutch++: Optimal Stochastic Trace Estimation", SOSA 2021):
the trace of a symmetric operator from m products, with error O(1/m) where Hutchinson's is O(1/sqrt(m)) when a
few eigenvalues dominate, as in a network's Hessian.

m // 3 products with Rademacher vectors S sketch the top of the spectrum, Q = orth(A S); tr(Q'AQ) is taken
exactly (m // 3 products) and Hutchinson's estimator runs on the rest, (I - QQ')A(I - QQ'), with the remaining
products. Unbiased; the standard error is the residual part's.
"""

from __future__ import annotations

import torch

from netprobe.analysis.hessian.hessian import (Trace, _estimate, _like, hvp_operator, parameters, rademacher,
                                               taylor_form)
from netprobe.analysis.hessian.operators import products
from netprobe.errors import NetprobeError


def hutchpp(product, n: int, matvecs: int, seed: int = 0, batch: int = 1, dtype=torch.float64, device="cpu",
            step=None, quadratic=None) -> Trace:
    """tr(A) by Hutch++ from `matvecs` products of `product` (v -> A v on flat vectors of length `n`, batched
    `batch` at a time as `operators.products`), Rademacher vectors drawn on the CPU from `seed`; `samples`
    holds tr(Q'AQ) plus each residual probe's z'(I - QQ')A(I - QQ')z, taken by `quadratic` (z -> z'Az) if given."""
    if matvecs < 3:
        raise NetprobeError(f"Hutch++ needs at least 3 products (a third each to sketch, project and probe), "
                            f"got {matvecs}")
    gen = torch.Generator().manual_seed(seed)
    sketch = matvecs // 3
    draws = [rademacher(n, gen).to(dtype=dtype, device=device) for _ in range(matvecs - sketch)]

    def apply(vectors):
        out = products(product, vectors, batch)
        if step is not None:
            for _ in out:
                step()
        return out

    q = torch.linalg.qr(torch.stack(apply(draws[:sketch])).T).Q.T.contiguous()  # (sketch, n), orthonormal rows
    low = sum(float(u @ au) for u, au in zip(q, apply(list(q))))
    rest = [z - (q @ z) @ q for z in draws[sketch:]]
    if quadratic is None:
        found = _estimate([low + float(z @ az) for z, az in zip(rest, apply(rest))])
    else:
        values = []
        for z in rest:
            values.append(low + quadratic(z))
            if step is not None:
                step()
        found = _estimate(values)
    found.probes = matvecs
    return found


def hutchpp_trace(model, loss_fn, batches, probes: int = 50, seed: int = 0, step=None, params=None,
                  keep_graph: bool = False, operator: str = "hessian", batch: int = 1) -> Trace:
    """tr(H) (or of the `operator` matrix over `params`: `hessian.hvp_operator`) by `hutchpp` from `probes`
    products; the Hessian's residual probes by Taylor mode where every operator has a rule (`hessian.trace`)."""
    params = parameters(model) if params is None else list(params)
    n, dtype, device = _like(params)
    product = hvp_operator(model, loss_fn, batches, params, keep_graph, operator)
    form = taylor_form(model, loss_fn, batches, params, keep_graph, lambda: product) if operator == "hessian" \
        else None
    return hutchpp(product, n, probes, seed, batch, dtype, device, step,
                   form if getattr(form, "quadratic", False) else None)
