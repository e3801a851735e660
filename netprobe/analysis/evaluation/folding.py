"""BatchNorm folding for eval-mode forwards (Ioffe and Szegedy 2015, section 3.2): at inference BN is the affine
map y = s (x - mean) + beta, with s = gamma / sqrt(var + eps), so conv then BN is the conv with weights W s and
bias (b - mean) s + beta. ReLUs on fresh conv outputs run in place.

The folded graph comes from `torch.fx.symbolic_trace` of the model. The user's model is never modified: folded
convolutions hold their own weight tensors and `refresh` recomputes them from the model's current values (a
per-channel scaling, cheap).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

RELUS = (F.relu, torch.relu)


class FoldedConv(nn.Module):
    """A convolution with its own weight and bias, recomputed from a source conv and an optional eval BN."""

    def __init__(self, conv: nn.modules.conv._ConvNd, bn: nn.modules.batchnorm._BatchNorm | None,
                 channels_last: bool):
        super().__init__()
        # A tuple, so the sources are not submodules: the folded graph never runs them, only `refresh` reads them.
        self._source = (conv, bn)
        self._forward = conv._conv_forward
        layout = torch.channels_last if channels_last and conv.weight.dim() == 4 else torch.contiguous_format
        with torch.no_grad():
            self.register_buffer("weight", torch.empty_like(conv.weight, memory_format=layout))
            self.register_buffer("bias", torch.empty(conv.out_channels, dtype=conv.weight.dtype,
                                                     device=conv.weight.device))
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute the folded weight and bias from the source modules' current values."""
        conv, bn = self._source
        bias = conv.bias if conv.bias is not None else torch.zeros_like(self.bias)
        if bn is None:
            self.weight.copy_(conv.weight)
            self.bias.copy_(bias)
            return
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = (bias - bn.running_mean) * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        self.weight.copy_(conv.weight * scale.reshape(-1, *[1] * (conv.weight.dim() - 1)))
        self.bias.copy_(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self.weight, self.bias)


def _foldable(conv, bn) -> bool:
    return (isinstance(conv, nn.modules.conv._ConvNd) and not conv.transposed and conv.padding_mode == "zeros"
            and (bn is None or (isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.running_mean is not None
                                and bn.num_features == conv.out_channels)))


def fold_batchnorm(model: nn.Module, *, channels_last: bool = True) -> tuple[torch.fx.GraphModule, list[FoldedConv]]:
    """(eval graph of `model` with conv+BN folded and in-place ReLUs, its folded convs); raises if untraceable."""
    gm = torch.fx.symbolic_trace(model)
    modules = dict(gm.named_modules())
    folded: dict[tuple[str, str | None], str] = {}
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not _foldable(modules[node.target], None):
            continue
        users = list(node.users)
        bn_node = users[0] if len(users) == 1 and users[0].op == "call_module" else None
        if bn_node is not None and not _foldable(modules[node.target], modules[bn_node.target]):
            bn_node = None
        key = (node.target, None if bn_node is None else bn_node.target)
        if key not in folded:
            folded[key] = f"_folded_{len(folded)}"
            bn = None if bn_node is None else modules[bn_node.target]
            gm.add_submodule(folded[key], FoldedConv(modules[node.target], bn, channels_last))
        node.target = folded[key]
        if bn_node is not None:
            bn_node.replace_all_uses_with(node)
            gm.graph.erase_node(bn_node)
    _inplace_relus(gm)
    gm.graph.lint()
    gm.recompile()
    return gm.eval(), [m for m in gm.modules() if isinstance(m, FoldedConv)]


def _inplace_relus(gm: torch.fx.GraphModule) -> None:
    """ReLU in place where its input is a folded conv's (or a sum's) fresh output used by nothing else."""
    modules = dict(gm.named_modules())

    def fresh(node) -> bool:
        if node.op == "call_module":
            return isinstance(modules[node.target], FoldedConv)
        return node.op == "call_function" and node.target in (operator.add, torch.add) and \
            any(isinstance(a, torch.fx.Node) for a in node.args[:2])

    for node in gm.graph.nodes:
        is_relu = (node.op == "call_function" and node.target in RELUS) or \
            (node.op == "call_module" and isinstance(modules[node.target], nn.ReLU))
        if is_relu and node.args and isinstance(node.args[0], torch.fx.Node) and fresh(node.args[0]) \
                and len(node.args[0].users) == 1:
            node.op, node.target, node.args, node.kwargs = "call_function", F.relu, node.args[:1], {"inplace": True}
