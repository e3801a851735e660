"""The loss of one batch as a `torch.fx.Graph` of aten operators, recorded on meta tensors (nothing computed).

A `TorchDispatchMode` sees each operator once, with its tensors: a tensor is known by the node that made it (or
the input it is), so the graph follows the data. It does what `make_fx` does for this purpose at a tenth of its
cost (make_fx's proxies and functionalisation cost ~1 ms an operator). In-place operators are recorded as their
functional forms when nothing else shares the storage they write; other mutations are refused.
"""

from __future__ import annotations

import operator

import torch
from torch.fx import Graph
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from netprobe.analysis.hessian.taylor_rules import Unsupported

aten = torch.ops.aten

# In-place operators the rules know, as their functional forms.
FUNCTIONAL = {aten.relu_.default: aten.relu.default, aten.add_.Tensor: aten.add.Tensor,
              aten.mul_.Tensor: aten.mul.Tensor, aten.tanh_.default: aten.tanh.default,
              aten.sigmoid_.default: aten.sigmoid.default}


class _Recorder(TorchDispatchMode):
    """Appends every operator to `graph`, its tensor arguments replaced by the nodes that made them."""

    def __init__(self, inputs: list[torch.Tensor]):
        super().__init__()
        self.graph = Graph()
        self.nodes = {}  # id(tensor) -> node, for the tensors kept alive in `self.alive`
        self.alive = []
        self.storages = {}  # storage -> how many recorded tensors share it
        for i, t in enumerate(inputs):
            self._name(t, self.graph.placeholder(f"input_{i}"))

    def _name(self, t, node):
        if id(t) in self.nodes:  # an in-place result: the same tensor, now made by `node`
            self.nodes[id(t)] = node
            return
        self.nodes[id(t)] = node
        self.alive.append(t)
        key = t.untyped_storage()._cdata
        self.storages[key] = self.storages.get(key, 0) + 1

    def _node(self, value):
        if not isinstance(value, torch.Tensor):
            return value
        node = self.nodes.get(id(value))
        if node is None:
            raise Unsupported("a tensor made outside the traced operators (a constant of the model)")
        return node

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func._schema.is_mutable:
            if func not in FUNCTIONAL or self.storages.get(args[0].untyped_storage()._cdata, 0) > 1:
                raise Unsupported(f"the in-place {func} on a shared value")
            func = FUNCTIONAL[func]
        node = self.graph.call_function(func, tree_map(self._node, args), tree_map(self._node, kwargs))
        if isinstance(out, torch.Tensor):
            self._name(out, node)
        elif isinstance(out, (tuple, list)):
            for i, part in enumerate(out):
                if isinstance(part, torch.Tensor):
                    self._name(part, self.graph.call_function(operator.getitem, (node, i)))
        return out


def record(model, loss_fn, x, y) -> Graph:
    """The graph of `loss_fn(model(x), y)` over placeholders (parameters, buffers, x, y) in that order."""
    params = [p.detach().to("meta") for p in model.parameters()]
    buffers = [b.detach().to("meta") for b in model.buffers()]
    inputs = [*params, *buffers, x.to("meta"), y.to("meta")]
    state = {**dict(zip((n for n, _ in model.named_parameters()), params)),
             **dict(zip((n for n, _ in model.named_buffers()), buffers))}
    recorder = _Recorder(inputs)
    try:
        with torch.no_grad(), recorder:
            loss = loss_fn(torch.func.functional_call(model, state, (inputs[-2],)), inputs[-1])
    except Unsupported:
        raise
    except Exception as exc:  # a model the meta trace cannot follow (data-dependent control flow, ...)
        raise Unsupported(f"the loss cannot be traced on meta tensors: {type(exc).__name__}") from None
    leaves, _ = tree_flatten(loss)
    if len(leaves) != 1 or not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise Unsupported("the loss is not one scalar")
    recorder.graph.output(recorder.nodes[id(loss)])
    recorder.graph.eliminate_dead_code()
    return recorder.graph
