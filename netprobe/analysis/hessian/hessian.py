"""Hessian-vector products, power iteration with deflation and Hutchinson's trace estimator."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from netprobe.analysis.hessian.operators import curvature_operator, products


def parameters(model) -> list[torch.Tensor]:
    """The parameters the Hessian is taken over: every one that requires a gradient."""
    return [p for p in model.parameters() if p.requires_grad]


def hvp(model, loss_fn, batches, vector: torch.Tensor, params=None) -> torch.Tensor:
    """H @ `vector` (flat, over `params`, default `parameters(model)`) for the mean of `loss_fn(model(x), y)`
    over all `batches`; with a subset of the parameters, the product with that diagonal block of H.

    Each batch's loss is weighted by its share of the samples, so the result does not depend on the split.
    """
    return hvp_operator(model, loss_fn, batches, params)(vector)


def hvp_operator(model, loss_fn, batches, params=None, keep_graph: bool = False, operator: str = "hessian",
                 shared: bool = True):
    """v -> C v over `params` for the `operator` matrix C (`operators.OPERATORS`, default H), as
    `operators.curvature_operator`. `keep_graph`: each batch's gradient graph is built once and reused by every
    product, which then skips the forward and first backward (about half the cost of a product on resnet20) but
    holds every batch's double-backward graph in memory at once. `shared`: the batches shared across torchrun's
    ranks (`operators.curvature_operator`)."""
    params = parameters(model) if params is None else list(params)
    return curvature_operator(model, loss_fn, batches, params, operator, keep_graph, shared)


@dataclass
class Eigen:
    """Eigenvalues found by power iteration or Lanczos, their eigenvectors, the products each took, whether it
    converged, and (Lanczos) the residual norms ||Cv - lambda v||."""

    values: list[float] = field(default_factory=list)
    vectors: list[torch.Tensor] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)


def _orthogonalise(v: torch.Tensor, basis) -> torch.Tensor:
    for u in basis:
        v = v - (u @ v) * u
    return v


def _copy(found: Eigen) -> dict:
    """The lists of `found`, copied: a saved state must not change as the search goes on."""
    return {key: list(value) for key, value in vars(found).items()}


def _like(params) -> tuple[int, torch.dtype, torch.device]:
    return sum(p.numel() for p in params), params[0].dtype, params[0].device


def top_eigenvalues(model, loss_fn, batches, k: int = 1, iters: int = 100, tol: float = 1e-3, seed: int = 0,
                    step=None, params=None, keep_graph: bool = False, state: dict | None = None,
                    save=None, operator: str = "hessian") -> Eigen:
    """The `k` eigenvalues of largest magnitude, by power iteration from a seeded Gaussian start, of H or of
    its diagonal block over `params` (default: all of `parameters(model)`).

    Each iterate is orthogonalised against the eigenvectors already found (deflation). A search stops when
    the Rayleigh quotient changes by less than `tol` relative to its size, or after `iters` products.
    `step()` is called after every product (a progress bar); `keep_graph` as `hvp_operator`. `save(state)` gets
    the iteration state (a dict of lists, numbers and tensors) after every product; passing it back as `state`
    continues from there with the same results. `operator`: of that matrix instead of H (`hvp_operator`).
    """
    params = parameters(model) if params is None else list(params)
    product = hvp_operator(model, loss_fn, batches, params, keep_graph, operator)
    n, dtype, device = _like(params)
    gen = torch.Generator().manual_seed(seed)
    state = dict(state or {})
    found = Eigen(*(list(state.get(key, [])) for key in ("values", "vectors", "iterations", "converged")))
    if "generator" in state:
        gen.set_state(state["generator"])
    for _ in range(len(found.values), k):
        if "v" in state:  # a search interrupted after product `i`
            v, value, first = state["v"].to(dtype=dtype, device=device), state["value"], state["i"] + 1
        else:
            v = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
            v = _orthogonalise(v, found.vectors)
            v, value, first = v / v.norm(), None, 1
        state, done, i = {}, False, first - 1
        for i in range(first, iters + 1):
            hv = product(v)
            new = float(v @ hv)
            if step is not None:
                step()
            hv = _orthogonalise(hv, found.vectors)
            norm = hv.norm()
            done = value is not None and abs(new - value) <= tol * (abs(value) + 1e-12)
            value = new
            if done or norm == 0 or i == iters:  # keep the vector whose Rayleigh quotient is reported
                break
            v = hv / norm
            if save is not None:
                save({**_copy(found), "generator": gen.get_state(), "v": v, "value": value, "i": i})
        found.values.append(value)
        found.vectors.append(v)
        found.iterations.append(i)
        found.converged.append(done)
        if save is not None:
            save({**_copy(found), "generator": gen.get_state()})
    return found


@dataclass
class Trace:
    """Hutchinson's estimate of the trace: the mean of z'Hz over Rademacher probes z, and its standard error;
    `groups`: the same for the diagonal blocks of parameter groups, from the same probes."""

    value: float
    stderr: float
    probes: int
    samples: list[float]
    groups: dict[str, "Trace"] = field(default_factory=dict)


def _estimate(values: list[float]) -> Trace:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return Trace(mean, float("nan"), len(values), values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return Trace(mean, math.sqrt(var / len(values)), len(values), values)


def trace(model, loss_fn, batches, probes: int = 50, seed: int = 0, step=None, groups=None,
          keep_graph: bool = False, state: dict | None = None, save=None, params=None, operator: str = "hessian",
          batch: int = 1, taylor: bool = True) -> Trace:
    """tr(H) by Hutchinson's estimator with `probes` Rademacher probes drawn on the CPU from `seed`.

    `groups` ({name: indices into the flat parameter vector}) adds the trace of each group's diagonal block,
    estimated as the sum of z_i (Hz)_i over its indices: unbiased, free (the same products), and groups that
    partition the parameters add up to the whole estimate probe by probe. `keep_graph`, `params` and
    `operator` as `hvp_operator`; `batch` probes per batched product; `save` and `state` as `top_eigenvalues`,
    after every product call. Under torchrun the probes are shared out: each round draws one product call's
    probes per rank, in order, rank r computes the r-th call's alone, and every rank takes all the values
    back in order (the figures of one process). `taylor`: the Hessian's z'Hz without groups by Taylor mode
    (`taylor.quadratic_form`, about 1.5x faster than a product) where every operator has a rule, else products.
    """
    from netprobe.ranks import gather_objects, world

    params = parameters(model) if params is None else list(params)

    def products():
        return hvp_operator(model, loss_fn, batches, params, keep_graph, operator, shared=False)

    product = taylor_form(model, loss_fn, batches, params, keep_graph, products) \
        if taylor and operator == "hessian" and not groups else products()
    n, dtype, device = _like(params)
    rank, size = world()
    gen = torch.Generator().manual_seed(seed)
    state = state or {}
    values = list(state.get("values", []))
    parts = {name: list(state.get("parts", {}).get(name, [])) for name in groups or {}}
    if "generator" in state:
        gen.set_state(state["generator"])
    while len(values) < probes:
        left, calls = probes - len(values), []
        while left and len(calls) < size:
            calls.append([rademacher(n, gen) for _ in range(min(batch, left))])
            left -= len(calls[-1])
        mine = _probe_values(product, calls[rank], batch, groups, dtype, device) if rank < len(calls) else []
        for value, part in [row for rows in gather_objects(mine) for row in rows]:
            values.append(value)
            for name in parts:
                parts[name].append(part[name])
            if step is not None:
                step()
        if save is not None:
            save({"values": list(values), "parts": {k: list(v) for k, v in parts.items()},
                  "generator": gen.get_state()})
    total = _estimate(values)
    total.groups = {name: _estimate(v) for name, v in parts.items()}
    return total


def taylor_form(model, loss_fn, batches, params, keep_graph, products):
    """z -> z'Hz by Taylor mode, marked as a quadratic form; where the loss has an operator without a rule
    (found when it is recorded or on the first probe), by `products()` as without Taylor mode, for every probe."""
    from netprobe.analysis.hessian.taylor import Unsupported, quadratic_form

    try:
        taylor = quadratic_form(model, loss_fn, batches, params, keep_graph)
    except Unsupported:
        return products()
    fallback = []

    def form(z):
        if not fallback:
            try:
                return taylor(z)
            except Unsupported:
                fallback.append(products())
        return float((z * fallback[0](z)).sum())

    form.quadratic = True
    return form


def _probe_values(product, zs, batch, groups, dtype, device) -> list[tuple[float, dict[str, float]]]:
    """(z'Cz, {group: its part}) of each probe z of `zs`, `batch` per product call (a quadratic form: one by one)."""
    zs = [z.to(dtype=dtype, device=device) for z in zs]
    if getattr(product, "quadratic", False):
        return [(product(z), {}) for z in zs]
    out = []
    for z, hz in zip(zs, products(product, zs, batch)):
        zhz = z * hz
        out.append((float(zhz.sum()), {name: float(zhz[index.to(device)].sum()) for name, index in
                                       (groups or {}).items()}))
    return out


def rademacher(n: int, gen: torch.Generator) -> torch.Tensor:
    """n random signs (+-1) drawn from `gen` on the CPU."""
    return torch.randint(0, 2, (n,), generator=gen) * 2 - 1
