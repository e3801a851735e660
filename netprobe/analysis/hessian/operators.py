"""Curvature matrix-vector products without forming the matrix: the Hessian, the generalised Gauss-Newton matrix
and the empirical Fisher of the mean loss over fixed batches, for one vector or several at once.

With z = f(x; w) the model's outputs and l the loss of z:
- hessian: H v by double backward (Pearlmutter's trick as PyHessian does it).
- ggn: J' H_z J v (Schraudolph 2002): J v by the double-backward trick (a backward pass differentiated with
  respect to its output gradient), H_z (J v) by double backward through the loss alone, then a backward pass.
  Positive semi-definite for a convex loss of z such as cross-entropy; equal to H for a model linear in w.
- fisher: the empirical Fisher (1/N) sum_i g_i g_i' v, g_i the gradient of sample i's loss: (1/N) J_l'(J_l v)
  with J_l the Jacobian of the per-sample losses, by the same trick; `loss_fn` must take `reduction="none"`.
A product takes a flat vector (n,) or a batch of vectors (k, n); a batch shares each data batch's forward and
first backward pass and runs the second with `is_grads_batched=True` (vmap), k vectors held at once.
"""

from __future__ import annotations

import contextlib

import torch

from netprobe.analysis.hessian.second_order import cheap_second_order
from netprobe.devices import convolution_layout

OPERATORS = ("hessian", "ggn", "fisher")


def _flat(parts, batched: bool) -> torch.Tensor:
    return torch.cat([h.reshape(h.shape[0], -1) if batched else h.reshape(-1) for h in parts], -1)


def _split(vectors: torch.Tensor, params) -> list[torch.Tensor]:
    """The pieces of flat vector(s) per parameter, shaped like it (with a leading batch dimension if batched)."""
    lead = vectors.shape[:-1]
    return [v.reshape(*lead, *p.shape) for v, p in zip(torch.split(vectors, [p.numel() for p in params], -1), params)]


def _hessian_term(model, loss_fn, x, y, weight, params):
    grads = torch.autograd.grad(loss_fn(model(x), y) * weight, params, create_graph=True)

    def apply(vectors, retain):
        if vectors.dim() == 1:  # the gradient of g.v: the bits of v passed as grad_outputs (PyHessian's form)
            pieces = list(torch.split(vectors, [p.numel() for p in params]))
            dot = sum((g * v.view_as(g)).sum() for g, v in zip(grads, pieces))
            return torch.autograd.grad(dot, params, retain_graph=retain)
        return torch.autograd.grad(grads, params, _split(vectors, params), retain_graph=retain,
                                   is_grads_batched=True)

    return apply


def _jvp(out, params):
    """v -> J v for outputs `out` of `params` (batched over v's first dimension if 2-D): the backward pass J'u
    with a dummy u, built once, differentiated with respect to u."""
    u = torch.zeros_like(out, requires_grad=True)
    back = torch.autograd.grad(out, params, u, create_graph=True)
    return lambda vectors: torch.autograd.grad(back, u, _split(vectors, params), retain_graph=True,
                                               is_grads_batched=vectors.dim() == 2)[0]


def _ggn_term(model, loss_fn, x, y, weight, params):
    out = model(x)
    dz = torch.autograd.grad(loss_fn(out, y) * weight, out, create_graph=True)[0]
    jvp = _jvp(out, params)

    def apply(vectors, retain):
        batched = vectors.dim() == 2
        jv = jvp(vectors)
        hjv = torch.autograd.grad(dz, out, jv, retain_graph=True, is_grads_batched=batched)[0]
        return torch.autograd.grad(out, params, hjv, retain_graph=retain, is_grads_batched=batched)

    return apply


def _fisher_term(model, loss_fn, x, y, weight, params):
    losses = loss_fn(model(x), y, reduction="none")  # (N,): one per sample
    scale = weight / len(x)  # the batch's share of the samples over its size: 1 / (all samples)
    jvp = _jvp(losses, params)

    def apply(vectors, retain):
        jv = jvp(vectors) * scale
        return torch.autograd.grad(losses, params, jv, retain_graph=retain, is_grads_batched=vectors.dim() == 2)

    return apply


TERMS = {"hessian": _hessian_term, "ggn": _ggn_term, "fisher": _fisher_term}


@contextlib.contextmanager
def _constants_except(model, params):
    """The model's other parameters as constants while a graph over `params` is built: then every backward
    computes only what the product needs (`second_order`'s functions see it in `needs_input_grad`)."""
    wanted = {id(p) for p in params}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in wanted]
    for p in others:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in others:
            p.requires_grad_(True)


def curvature_operator(model, loss_fn, batches, params, kind: str = "hessian", keep_graph: bool = False,
                       shared: bool = True):
    """v -> C v for C the `kind` matrix (`OPERATORS`) of the mean of `loss_fn(model(x), y)` over all `batches`,
    over `params` (a subset: that diagonal block), v flat (n,) or a batch (k, n); model in eval mode.

    Each batch's term is weighted by its share of the samples, so the result does not depend on the split.
    Under torchrun (`shared`) each rank computes its share of the batches' terms (`ranks.share`) and every rank
    adds all of them up in batch order, so each product has the bits of one process's; `shared=False`: this
    rank alone computes every term (for products of its own, such as its share of the trace probes).
    `keep_graph`: each batch's graph is built once and reused by every product (skips the forward and first
    backward of later products, holds every batch's graph in memory at once).
    """
    from netprobe.ranks import gather_tensors, share

    params, kind_term = list(params), TERMS[kind]
    model.eval()  # BatchNorm on running statistics: the loss is a function of the weights alone
    total = sum(len(x) for x, _ in batches)
    mine = share(list(range(len(batches))), "sample batches") if shared else list(range(len(batches)))

    def term(i):
        x, y = batches[i]
        with cheap_second_order(), _constants_except(model, params):
            return kind_term(model, loss_fn, convolution_layout(x), y, len(x) / total, params)

    kept = {i: term(i) for i in mine} if keep_graph else None

    def terms(vectors):
        for i in mine:
            apply = kept[i] if kept else term(i)
            yield _flat(apply(vectors, keep_graph), vectors.dim() == 2)

    def product(vectors):
        out = torch.zeros_like(vectors)
        # One process adds each term as it comes; ranks add everyone's, gathered, in batch order: the same sum.
        for part in terms(vectors) if len(mine) == len(batches) else \
                gather_tensors(list(terms(vectors)), len(batches), vectors):
            out += part
        return out

    return product


def products(product, vectors: list[torch.Tensor], batch: int = 1) -> list[torch.Tensor]:
    """`product` of each of `vectors`: one at a time (`batch` 1), else `batch` at a time as one batched call."""
    if batch == 1:
        return [product(v) for v in vectors]
    return [row for i in range(0, len(vectors), batch) for row in product(torch.stack(vectors[i:i + batch]))]
