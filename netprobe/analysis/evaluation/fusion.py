"""oneDNN post-op fusion for the folded eval graph: conv (+ add) (+ ReLU) as one primitive, weights prepacked.

After BatchNorm folding a ResNet block is conv, ReLU, conv, add, ReLU: the ReLU and the add each read and write a
whole activation tensor again, which at CIFAR widths costs about as much as a convolution. oneDNN applies them
inside the convolution's output loop as post-ops (eltwise ReLU, binary add): the fusion inductor's CPU freezing
pass makes (`torch._inductor.fx_passes.mkldnn_fusion`), called here eagerly through the same
`mkldnn::_convolution_pointwise` operators, so the weights stay live tensors that `refresh` reorders into
oneDNN's blocked layout once per weight update instead of once per call.

Fusion needs shapes: `fuse_pointwise` first propagates an example of two samples through the graph, then fuses
float32 2-D convolutions on the CPU, with the add only where the other operand has exactly the convolution's
output shape (batch included, so no broadcast) and dtype. A fused node runs where its last member (the add or
the ReLU) ran, so only passive nodes (convolutions, the option-A shortcut's slice and pad) may lie between; the
sum is written in place into the other operand only when a convolution of the graph made that tensor and no
later node reads it, otherwise into a fresh tensor, so the caller's tensors are never written.

oneDNN's ReLU post-op maps NaN to 0 where torch's ReLU keeps it: `FastEval` runs the fused graph only on finite
weights and on inputs and outputs below an overflow bound, and the folded graph otherwise.
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from netprobe.analysis.evaluation.folding import RELUS, FoldedConv

_ADDS = (operator.add, torch.add)
_PASSIVE = (operator.getitem, F.pad)  # may run between a conv and the node it is fused up to (option-A shortcut)


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

    def __init__(self, gm: torch.fx.GraphModule, batch: int, example_batch: int):
        self.gm, self.batch, self.example_batch = gm, batch, example_batch
        self.modules = dict(gm.named_modules())
        self.order = {node: i for i, node in enumerate(gm.graph.nodes)}

    def conv(self, node) -> bool:
        """A node running a folded or fused convolution (whose output never aliases its input)."""
        return node.op == "call_module" and isinstance(self.modules.get(node.target), (FoldedConv, FusedConv))

    def passive(self, node) -> bool:
        """`node` writes into no tensor it is given: a convolution that adds into a fresh tensor, or the option-A
        shortcut's slice and pad. Anything else may (in-place ops, `out=`, `setitem`, a module of the user's)."""
        if node.op == "get_attr":
            return True
        if self.conv(node):
            return getattr(self.modules[node.target], "add", None) != "inplace"
        return node.op == "call_function" and node.target in _PASSIVE and "out" not in node.kwargs

    def still(self, chain, tail) -> bool:
        """Every node between `chain`'s conv and `tail`, bar the chain's, is passive: the fused node runs at `tail`
        and reads the conv's input (and the added operand) then, so nothing in between may have changed them."""
        start, end = self.order[chain[0]], self.order[tail]
        return all(self.passive(n) for n in self.gm.graph.nodes if start < self.order[n] < end and n not in chain)

    def relu(self, node, of) -> bool:
        """`node` is a ReLU of `of`."""
        return node is not None and node.args[:1] == (of,) and (
            (node.op == "call_function" and node.target in RELUS)
            or (node.op == "call_module" and type(self.modules[node.target]) is nn.ReLU))

    def addend(self, conv, add):
        """The other operand of `add` if it is the plain sum of `conv`'s output and a tensor of its shape, both
        with the example's batch (so the shapes match at every batch size, not by broadcasting at one)."""
        if add is None or add.op != "call_function" or add.target not in _ADDS or add.kwargs or len(add.args) != 2:
            return None
        other = add.args[1] if add.args[0] is conv else add.args[0]
        want, got = _meta(conv), _meta(other)
        if other is conv or got is None or (got.shape, got.dtype) != (want.shape, want.dtype) \
                or want.shape[0] != self.example_batch:
            return None
        return other

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
        if other is not None and self.still(chain, _only_user(node)):
            add = "inplace" if self.writable(other, _only_user(node), node) else "fresh"
            chain.append(_only_user(node))
            args += (other,)
        relu = self.relu(_only_user(chain[-1]), chain[-1]) and self.still(chain, _only_user(chain[-1]))
        if relu:
            chain.append(_only_user(chain[-1]))
        fused = FusedConv(folded, [self.batch, *given.shape[1:]], relu=relu, add=add)
        name = f"_fused_{node.name}"  # one per call: a conv module called twice gets two fused nodes
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
    the fused convolutions); `example` (two samples or more, not the caller's tensor: the graph runs on it)
    gives the shapes, `batch` the batch size the weights are packed for. The copy shares the folded
    convolutions, so their `refresh` reaches it."""
    gm = torch.fx.GraphModule(folded, copy.deepcopy(folded.graph))
    if not isinstance(ShapeProp(gm).propagate(example), torch.Tensor):
        return gm, []  # FastEval checks a tensor output for non-finite values
    rewriter = _Rewriter(gm, batch, len(example))
    fused = [rewriter.fuse(node) for node in list(gm.graph.nodes) if node.op == "call_module"
             and isinstance(rewriter.modules[node.target], FoldedConv)]
    gm.graph.lint()
    gm.recompile()
    return gm, [f for f in fused if f is not None]
