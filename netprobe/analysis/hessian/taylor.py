"""z'Hz without Hessian-vector products: Taylor-mode (jet) propagation of the loss along w + t z.

Hutchinson's trace needs the number z'Hz, not the vector Hz. Written as a polynomial in t, the loss along the
line w + t z is L0 + L1 t + L2 t^2 + ..., and L2 = z'Hz / 2. The loss of a batch is traced once into aten
operators (`recorder.record`, on meta tensors), its primal values are computed once, and each probe pushes
the first and second coefficients forward through `taylor_rules`, stacked along the batch dimension: a
convolution costs conv([v1; v2], W) + conv(v0, Z) + conv(v1, Z) (Z: the probe's piece of W), about four times
its forward, against about six for a product by double backward; nothing is differentiated or kept for a
backward pass. On the CPU the values are held channels-last, where oneDNN's convolutions are fastest.

A loss that cannot be recorded, or a graph with an operator (or a case of one) that has no rule, raises
`Unsupported` when the form is built or on its first probe; callers fall back to products. The figures equal the products' to float rounding (tests/analysis/hessian).
"""

from __future__ import annotations

import torch
from torch.fx.node import map_arg

from netprobe.analysis.hessian.recorder import record
from netprobe.analysis.hessian.taylor_rules import RULES, Context, Unsupported
from netprobe.devices import convolution_layout

__all__ = ["Unsupported", "quadratic_form"]


# Views recorded on contiguous values: a channels-last value may need a copy.
_RELAYOUT = {torch.ops.aten.view.default: torch.ops.aten.reshape.default,
             torch.ops.aten._unsafe_view.default: torch.ops.aten.reshape.default}


class Expansion:
    """One batch's loss ready for probes: its graph, every node's primal value and the rules' constants."""

    def __init__(self, graph, inputs: list, moving: list[int], batch: int, layout):
        self.batch, self.layout = batch, layout
        nodes = list(graph.nodes)
        holders = [n for n in nodes if n.op == "placeholder"]
        self.moving = [holders[i] for i in moving]
        self.output = nodes[-1].args[0]
        self.val, self.memo = {}, {}
        with torch.no_grad():
            for node, value in zip(holders, inputs):
                self.val[node] = layout(value)
            for node in nodes:
                if node.op == "call_function":
                    target = _RELAYOUT.get(node.target, node.target)
                    self.val[node] = target(*map_arg(node.args, self.val.__getitem__),
                                            **map_arg(node.kwargs, self.val.__getitem__))
        self.steps = [n for n in nodes if n.op == "call_function"]

    def second(self, pieces: list[torch.Tensor]) -> torch.Tensor:
        """The loss's second Taylor coefficient along `pieces` (one per moving parameter): z'Hz / 2."""
        ctx = Context(self.val, self.batch, self.layout)
        ctx.memo = self.memo
        with torch.no_grad():
            for node, piece in zip(self.moving, pieces):
                ctx.params[node] = self.layout(piece)
            for node in self.steps:
                if not any(ctx.has(n) for n in node.all_input_nodes):
                    continue
                apply = RULES.get(node.target)
                if apply is None:
                    raise Unsupported(f"no Taylor rule for {node.target}")
                apply(ctx, node)
        found = ctx.reduced.get(self.output)
        if found is None:
            raise Unsupported("the loss is not a scalar the rules reach")
        return found[1]


def _inputs(model, x, y) -> list:
    return [*(p.detach() for p in model.parameters()), *model.buffers(), x, y]


def quadratic_form(model, loss_fn, batches, params, keep_graph: bool = False):
    """z -> z'Hz (a float) for H the Hessian over `params` of the mean of `loss_fn(model(x), y)` over `batches`
    (each weighted by its share of the samples), z flat; model in eval mode. Raises `Unsupported` when the loss
    cannot be recorded, or on its first call when an operator has no rule (later calls take the same path).
    `keep_graph`: every batch's primal values are kept for all probes (memory: about a forward's activations
    per batch), else recomputed per probe."""
    model.eval()
    ids = {id(p): i for i, p in enumerate(model.parameters())}
    moving = [ids[id(p)] for p in params]
    sizes, shapes = [p.numel() for p in params], [p.shape for p in params]
    graphs = {}
    for x, y in batches:
        key = (tuple(x.shape), x.dtype, tuple(y.shape), y.dtype)
        if key not in graphs:
            graphs[key] = record(model, loss_fn, x, y)
    layout, total = convolution_layout, sum(len(x) for x, _ in batches)

    def expand(x, y):
        graph = graphs[(tuple(x.shape), x.dtype, tuple(y.shape), y.dtype)]
        return Expansion(graph, _inputs(model, x, y), moving, len(x), layout)

    kept = [expand(x, y) for x, y in batches] if keep_graph else None
    calls = []

    def value(z: torch.Tensor) -> float:
        pieces = [v.view(s) for v, s in zip(torch.split(z, sizes), shapes)]
        total_value = 0.0
        for i, (x, y) in enumerate(batches):
            expansion = kept[i] if kept else expand(x, y)
            total_value += 2 * float(expansion.second(pieces)) * len(x) / total
        return total_value

    def form(z: torch.Tensor) -> float:
        if calls:
            return value(z)
        try:
            found = value(z)
        except Unsupported:
            raise
        except Exception as exc:  # a rule meeting a case it does not expect
            raise Unsupported(f"{type(exc).__name__}: {exc}") from None
        calls.append(1)
        return found

    return form
