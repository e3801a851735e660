"""oneDNN post-op fusion for the folded eval graph: conv (+ add) (+ ReLU) as one primitive, weights prepacked.

After BatchNorm folding a ResNet block is conv, ReLU, conv, add, ReLU: the ReLU and the add each read and write a
whole activation tensor again, which at CIFAR widths costs about as much as a convolution. oneDNN applies them
inside the convolution's output loop as post-ops (eltwise ReLU, binary add): the fusion inductor's CPU freezing
pass makes (`torch._inductor.fx_passes.mkldnn_fusion`), called here eagerly through the same
`mkldnn::_convolution_pointwise` operators, so the weights stay live tensors that `refresh` reorders into
oneDNN's blocked layout once per weight update instead of once per call.

Fusion needs shapes: `fuse_pointwise` first propagates an example input through the graph, then fuses float32
2-D convolutions on the CPU, with the add only where the other operand has exactly the convolution's output
shape and dtype. The sum is written in place into the other operand only when a folded convolution of the graph
made that tensor and no later node reads it; otherwise into a fresh tensor, so the caller's tensors are never
written.
"""

from __future__ import annotations

import copy
import operator

import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from netprobe.analysis.evaluation.folding import RELUS, FoldedConv

_ADDS = (operator.add, torch.add)
_INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.imatmul}


class FusedConv(nn.Module):
    """A folded 2-D convolution run by oneDNN with an added operand and a ReLU as optional post-ops."""

    def __init__(self, folded: FoldedConv, input_size: list[int], *, relu: bool, add: str | None):
        super().__init__()
        conv = folded._source[0]
        self._folded = (folded,)  # a tuple, so it is no submodule: only `refresh` and `forward` read its tensors
        self._args = (padding(conv), list(conv.stride), list(conv.dilation), conv.groups)
        self._input_size = list(input_size)
        self.relu, self.add = relu, add  # add: None, "inplace" (into the other operand) or "fresh"
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Reorder the folded convolution's current weight into oneDNN's layout for the input size."""
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(self._folded[0].weight, *self._args,
                                                                   self._input_size)

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        bias = self._folded[0].bias
        if self.add is None:
            return torch.ops.mkldnn._convolution_pointwise(x, self.weight, bias, *self._args,
                                                           "relu" if self.relu else "none", [], "")
        unary = "relu" if self.relu else None
        if self.add == "inplace":
            return torch.ops.mkldnn._convolution_pointwise_.binary(other, x, self.weight, bias, *self._args,
                                                                   "add", 1.0, unary, [], "")
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, self.weight, bias, *self._args,
                                                              "add", 1.0, unary, [], "")


def padding(conv: nn.Conv2d) -> list[int] | None:
    """The conv's padding per side as oneDNN takes it, or None for a "same" padding that is not symmetric."""
    if conv.padding == "valid":
        return [0, 0]
    if conv.padding == "same":
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        return None if any(t % 2 for t in total) else [t // 2 for t in total]
    return list(conv.padding)


def _meta(node):
    meta = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    return meta if isinstance(meta, TensorMetadata) else None


def _only_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


class _Rewriter:
    """The fusion of one graph: which nodes are convolutions, where each node runs."""

    def __init__(self, gm: torch.fx.GraphModule, batch: int):
        self.gm, self.batch = gm, batch
        self.modules = dict(gm.named_modules())
        self.order = {node: i for i, node in enumerate(gm.graph.nodes)}

    def conv(self, node) -> bool:
        """A node running a folded or fused convolution (whose output never aliases its input)."""
        return node.op == "call_module" and isinstance(self.modules.get(node.target), (FoldedConv, FusedConv))

    def relu(self, node, of) -> bool:
        """`node` is a ReLU of `of`."""
        return node is not None and node.args[:1] == (of,) and (
            (node.op == "call_function" and node.target in RELUS)
            or (node.op == "call_module" and isinstance(self.modules[node.target], nn.ReLU)))

    def addend(self, conv, add):
        """The other operand of `add` if it is the plain sum of `conv`'s output and a tensor of its shape."""
        if add is None or add.op != "call_function" or add.target not in _ADDS or add.kwargs or len(add.args) != 2:
            return None
        other = add.args[1] if add.args[0] is conv else add.args[0]
        want, got = _meta(conv), _meta(other)
        if other is conv or got is None or (got.shape, got.dtype) != (want.shape, want.dtype):
            return None
        return other

    def still(self, conv, add) -> bool:
        """No node between `conv` and `add` writes in place: the fused node runs at the add and reads the conv's
        input then, so a tensor changed in between (an in-place ReLU of it, say) would give another result."""
        between = [n for n in self.gm.graph.nodes if self.order[conv] < self.order[n] < self.order[add]]
        return not any(self.writes(n) for n in between)

    def writes(self, node) -> bool:
        """Whether `node` may write into a tensor it is given (conservatively: `inplace` flags and names)."""
        if node.op == "call_module":
            module = self.modules[node.target]
            return getattr(module, "inplace", False) is True or getattr(module, "add", None) == "inplace"
        if node.kwargs.get("inplace") or node.target in _INPLACE_OPERATORS \
                or (node.target in RELUS and len(node.args) > 1 and node.args[1]):
            return True
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        return isinstance(name, str) and name.endswith("_") and not name.endswith("__")

    def writable(self, other, add, conv) -> bool:
        """The sum may overwrite `other`: a convolution made it, and every other reader is a convolution that
        runs before the add and is not `conv` itself."""
        readers = [u for u in other.users if u is not add]
        return self.conv(other) and conv.args[0] is not other and all(
            self.conv(u) and self.order[u] < self.order[add] for u in readers)

    def fuse(self, node) -> FusedConv | None:
        """Replace the convolution `node` (and the add and ReLU after it) by one fused node."""
        folded, meta, given = self.modules[node.target], _meta(node), _meta(node.args[0])
        if folded.weight.dim() != 4 or folded.weight.device.type != "cpu" or meta is None or given is None \
                or meta.dtype != torch.float32 or given.dtype != torch.float32 or padding(folded._source[0]) is None:
            return None
        chain, args, add = [node], (node.args[0],), None
        other = self.addend(node, _only_user(node))
        if other is not None and self.still(node, _only_user(node)):
            add = "inplace" if self.writable(other, _only_user(node), node) else "fresh"
            chain.append(_only_user(node))
            args += (other,)
        relu = self.relu(_only_user(chain[-1]), chain[-1])
        if relu:
            chain.append(_only_user(chain[-1]))
        fused = FusedConv(folded, [self.batch, *given.shape[1:]], relu=relu, add=add)
        name = f"{node.target}_fused"
        self.gm.add_submodule(name, fused)
        self.modules[name] = fused
        with self.gm.graph.inserting_after(chain[-1]):
            new = self.gm.graph.call_module(name, args)
        new.meta = dict(chain[-1].meta)  # its shape, for the fusions of the nodes that read it
        self.order[new] = self.order[chain[-1]]
        chain[-1].replace_all_uses_with(new)
        for dead in reversed(chain):
            self.gm.graph.erase_node(dead)
        return fused


def fuse_pointwise(folded: torch.fx.GraphModule, example: torch.Tensor,
                   batch: int) -> tuple[torch.fx.GraphModule, list[FusedConv]]:
    """(a copy of the folded graph with its float32 2-D CPU convolutions fused with the add and ReLU after each,
    the fused convolutions); `example` (a sample of the input) gives the shapes, `batch` the batch size the
    weights are packed for. The copy shares the folded convolutions, so their `refresh` reaches it."""
    gm = torch.fx.GraphModule(folded, copy.deepcopy(folded.graph))
    ShapeProp(gm).propagate(example)
    rewriter = _Rewriter(gm, batch)
    fused = [rewriter.fuse(node) for node in list(gm.graph.nodes) if node.op == "call_module"
             and isinstance(rewriter.modules[node.target], FoldedConv)]
    gm.graph.lint()
    gm.recompile()
    return gm, [f for f in fused if f is not None]
