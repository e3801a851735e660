"""Fast eval-mode forward passes for the analyses that evaluate one model many times (loss surfaces, lesions,
Hessian loss probes): every convolution followed by an eval-mode BatchNorm is folded into one convolution
(Ioffe and Szegedy 2015, section 3.2: at inference BN is the affine map y = s (x - mean) + beta, with
s = gamma / sqrt(var + eps), so conv then BN is the conv with weights W s and bias (b - mean) s + beta),
ReLUs on fresh conv outputs run in place, convolutions run channels-last, and the result is optionally
compiled with `torch.compile` (inductor), falling back to eager with a note when compilation fails.

The folded graph comes from `torch.fx.symbolic_trace` of the model; a model that does not trace runs as it is
(`mode` says so). The user's model is never modified: folded convolutions hold their own weight tensors, and
every other module and parameter is the model's own, so in-place weight updates reach the evaluator. Call
`refresh()` after updating the model's weights or BatchNorm statistics to recompute the folded weights (a
per-channel scaling, cheap). Folding changes float32 rounding only: logits agree with the eager eval forward
within about 1e-5 relative to their magnitude (see tests/test_fast_eval.py).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

_RELUS = (F.relu, torch.relu)


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
        is_relu = (node.op == "call_function" and node.target in _RELUS) or \
            (node.op == "call_module" and isinstance(modules[node.target], nn.ReLU))
        if is_relu and node.args and isinstance(node.args[0], torch.fx.Node) and fresh(node.args[0]) \
                and len(node.args[0].users) == 1:
            node.op, node.target, node.args, node.kwargs = "call_function", F.relu, node.args[:1], {"inplace": True}


class FastEval:
    """`model`'s eval-mode forward, folded (`fold`), channels-last and compiled (`compile`) where possible.

    Call inside `torch.inference_mode()` or `torch.no_grad()` with the model in eval mode. `mode` names the
    path taken ("eager", "folded", "folded+compiled", "eager+compiled"); `notes` says why a step was skipped.
    """

    def __init__(self, model: nn.Module, *, fold: bool = True, compile: bool = True, channels_last: bool = True):
        self.model = model
        self.notes: list[str] = []
        self.channels_last = channels_last
        self._folded: list[FoldedConv] = []
        self._forward: nn.Module = model
        self.mode = "eager"
        if fold:
            try:
                self._forward, self._folded = fold_batchnorm(model, channels_last=channels_last)
                self.mode = "folded"
            except Exception as exc:  # a model fx cannot trace (data-dependent control flow) runs as it is
                self.notes.append(f"not folded: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
        self._eager = self._forward
        self.compiled = False
        if compile:
            self._forward = torch.compile(self._forward, dynamic=False)
            self.compiled = True
            self.mode += "+compiled"
        self._checked = not compile

    def refresh(self) -> None:
        """Recompute the folded weights after the model's weights or BatchNorm statistics changed."""
        for conv in self._folded:
            conv.refresh()

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """`x` in the layout the evaluator runs fastest on (channels-last for images)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The model's eval output for `x`; compilation happens (or falls back) on the first call."""
        if self._checked:
            return self._forward(x)
        self._checked = True
        try:
            return self._forward(x)
        except Exception as exc:  # no C++ compiler, an operator inductor cannot lower, ...
            note = str(exc).strip().splitlines()
            self.notes.append(f"not compiled ({type(exc).__name__}: {note[0][:160] if note else ''}); eager")
            self._forward, self.compiled = self._eager, False
            self.mode = self.mode.replace("+compiled", "")
            return self._forward(x)

    @property
    def note(self) -> str:
        """One line: the path taken and why any step was skipped."""
        return "; ".join([f"evaluation: {self.mode}", *self.notes])



def evaluate(model: nn.Module, split, batch_size: int = 256) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode over a split, BatchNorm folded (not compiled)."""
    from netprobe.train import evaluate as evaluate_with

    def folded(model):
        # Built per call: cheap (a trace and a per-channel scaling), and it sees modules swapped in since.
        evaluator = FastEval(model, compile=False)
        return lambda x: evaluator(evaluator.layout(x))

    with torch.inference_mode():
        return evaluate_with(model, split, batch_size, forward=folded)
