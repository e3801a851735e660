"""Fast eval-mode forward passes for the analyses that evaluate one model many times (loss surfaces, lesions, the
depth study's test passes): BatchNorm folded into the convolutions (`folding.py`), convolutions channels-last and,
on the CPU, fused with the add and ReLU after them into oneDNN primitives with prepacked weights (`fusion.py`;
on CUDA the folded channels-last graph runs on cuDNN), or instead
compiled with `torch.compile` (inductor), falling back to eager with a note when compilation fails.

A model that `torch.fx` cannot trace runs as it is (`mode` says so). The user's model is never modified: every
folded convolution holds its own weights and every other module and parameter is the model's own, so in-place
weight updates reach the evaluator after `refresh()`. Folding and fusion change float32 rounding only: logits
agree with the eager eval forward within about 1e-5 relative to their magnitude (tests/analysis/evaluation/test_fast_eval.py). The
fused ReLU would turn NaN into 0, so non-finite weights or batches, and values near overflow, take the folded
graph (tests/analysis/evaluation/test_fusion.py).
"""

from __future__ import annotations

import torch
from torch import nn

import netprobe.analysis.evaluation.fusion as fusion
from netprobe.analysis.evaluation.folding import FoldedConv, fold_batchnorm


# Inputs or outputs at or above this magnitude are evaluated unfused: an overflow that made a NaN inside (which
# the fused ReLU would zero) needs values near float32's 3.4e38, and leaves such values at the output unless the
# network then cancels every one of them exactly (not detected: benchmarks/README.md, "loss surfaces").
OVERFLOW = 1e30


class FastEval:
    """`model`'s eval-mode forward: folded (`fold`), channels-last, fused (`fuse`) or compiled (`compile`).

    Call inside `torch.inference_mode()` or `torch.no_grad()` with the model in eval mode: the fused operators
    have no gradients. `mode` names the path taken ("eager", "folded", "folded+fused", "folded+compiled",
    "eager+compiled"); `notes` says why a step was skipped. Fusion and compilation happen on the first call,
    whose batch gives the shapes; fusion is skipped when compiling (inductor makes its own).
    """

    def __init__(self, model: nn.Module, *, fold: bool = True, fuse: bool = True, compile: bool = False,
                 channels_last: bool = True):
        self.model = model
        self.notes: list[str] = []
        self.channels_last = channels_last
        self._folded: list[FoldedConv] = []
        self._fused: list = []
        self._fused_forward = None
        self._finite = False  # the tensors the fused graph depends on were finite at the last refresh
        self._checked: list[torch.Tensor] | None = None  # those tensors, listed at the first check
        self._forward: nn.Module = model
        self.mode = "eager"
        if fold:
            try:
                self._forward, self._folded = fold_batchnorm(model, channels_last=channels_last)
                self.mode = "folded"
            except Exception as exc:  # a model fx cannot trace (data-dependent control flow) runs as it is
                self.notes.append(f"not folded: {_first_line(exc, 120)}")
        self._eager = self._forward
        self.compiled = False
        if compile:
            self._forward = torch.compile(self._forward, dynamic=False)
            self.compiled = True
            self.mode += "+compiled"
        self._first = self._compile_first if compile else self._fuse_first if fuse and self._folded else None

    def refresh(self) -> None:
        """Recompute the folded (and fused) weights after the model's weights or BatchNorm statistics changed."""
        for conv in self._folded:
            conv.refresh()
        if self._fused:
            for conv in self._fused:
                conv.refresh()
            self._finite = self._all_finite()

    def _all_finite(self) -> bool:
        if self._checked is None:
            # The folded weights stand for their convs and BatchNorms; every other tensor of the model as it is.
            folded = {id(m) for conv in self._folded for m in conv._source if m is not None}
            own = [t for m in self.model.modules() if id(m) not in folded
                   for t in (*m.parameters(recurse=False), *m.buffers(recurse=False)) if t.is_floating_point()]
            self._checked = own + [t for conv in self._folded for t in (conv.weight, conv.bias)]
        # The 2-norm has the fast foreach kernel (5x the max-norm's speed); it overflows only for weights past
        # 1e19, which then take the folded graph too.
        return bool(torch.stack(torch._foreach_norm(self._checked)).isfinite().all())

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """`x` in the layout the evaluator runs fastest on (channels-last for images)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The model's eval output for `x`; fusion or compilation happens (or falls back) on the first call."""
        if self._first is not None:
            first, self._first = self._first, None
            return first(x)
        if self._fused_forward is not None:
            return self._guarded(x)
        return self._forward(x)

    def _guarded(self, x: torch.Tensor) -> torch.Tensor:
        # oneDNN's fused ReLU maps NaN to 0 where torch's keeps it. A NaN needs a non-finite weight or input, or
        # an overflow inside the network: with finite weights, inputs below OVERFLOW and outputs below it, the
        # fused result stands; otherwise the folded graph, whose ReLU keeps NaN, gives this batch.
        if self._finite and _bounded(x):
            out = self._fused_forward(x)
            if _bounded(out):
                return out
        return self._forward(x)

    def _compile_first(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._forward(x)
        except Exception as exc:  # no C++ compiler, an operator inductor cannot lower, ...
            self.notes.append(f"not compiled ({_first_line(exc, 160)}); eager")
            self._forward, self.compiled = self._eager, False
            self.mode = self.mode.replace("+compiled", "")
            return self._forward(x)

    def _fuse_first(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":  # oneDNN fusion is a CPU path: on CUDA the folded channels-last graph runs on cuDNN
            return self._forward(x)
        if not torch.backends.mkldnn.is_available():
            self.notes.append("not fused: this torch has no oneDNN")
            return self._forward(x)
        try:
            # Two samples (one twice if need be) tell a batch-wise sum from a broadcast one; a copy, since the
            # graph runs on it. The graph is fused as a copy: on failure the folded one runs as before.
            example = (x[:2] if len(x) > 1 else x[:1].expand(2, *x.shape[1:])).clone()
            forward, fused = fusion.fuse_pointwise(self._forward, example, len(x))
            if fused:
                self._fused_forward, self._fused = forward, fused
                self._finite = self._all_finite()
                out = self._guarded(x)
        except Exception as exc:  # an operator oneDNN refuses for these shapes, ...
            self.notes.append(f"not fused ({_first_line(exc, 160)})")
            self._fused_forward, self._fused = None, []
            return self._forward(x)
        if not fused:
            return self._forward(x)
        self.mode += "+fused"
        return out

    @property
    def note(self) -> str:
        """One line: the path taken and why any step was skipped."""
        return "; ".join([f"evaluation: {self.mode}", *self.notes])


def _bounded(t: torch.Tensor) -> bool:
    """All of `t` is finite and below OVERFLOW in magnitude (NaN fails both comparisons)."""
    if t.numel() == 0:
        return True
    low, high = torch.aminmax(t)
    return bool((low > -OVERFLOW) & (high < OVERFLOW))


def _first_line(exc: Exception, width: int) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:width] if lines else ''}"


def evaluate_fast(model: nn.Module, split, batch_size: int = 256) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode over a split, folded and fused (not compiled); the
    split must be on the model's device (`devices.to_device`)."""
    from netprobe.train import evaluate as evaluate_with

    def folded(model):
        # Built per call: cheap (traces and per-channel scalings), and it sees modules swapped in since.
        evaluator = FastEval(model, compile=False)
        return lambda x: evaluator(evaluator.layout(x))

    with torch.inference_mode():
        return evaluate_with(model, split, batch_size, forward=folded)
