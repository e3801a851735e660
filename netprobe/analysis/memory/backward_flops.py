"""Counting rules for the operators of a training step that the forward table does not hold.

The backward operators of the zoo (convolution_backward, the activation, pooling, softmax and norm backwards,
the loss) are counted by `netprobe.analysis.counting.flops`, one table for `summary`, `count` and `memory`: its
convention for MACs is `torch.utils.flop_counter`'s, so 2 x backward MACs equals FlopCounterMode's count. Added
here, in FLOPs only: dropout (forward 2, backward 1 per element; bernoulli_ 1), the 3-D and adaptive-max pooling
backwards 1 per gradient element, the optimizers' `_foreach_*` operators 1 per element, and data movement
(select_backward, a scalar read back) as free.
"""

from __future__ import annotations

import math

import torch

from netprobe.analysis.counting.flops import Count, _packets, formula

aten = torch.ops.aten


def _numel(shape) -> int:
    return math.prod(shape)


def _per_input(per_element: int):
    def count(grad, *args, out, **kwargs):
        return Count(0, per_element * _numel(out[0].shape))

    count.__doc__ = f"{per_element} FLOP(s) per gradient element."
    return count


formula(*_packets(("native_dropout_backward", "adaptive_max_pool2d_backward", "max_pool3d_with_indices_backward",
                   "avg_pool3d_backward")))(_per_input(1))
formula(*_packets(("native_dropout",)))(_per_input(2))


@formula(*_packets(("select_backward", "_local_scalar_dense")))
def movement(*args, out, **kwargs):
    """Data movement (a gradient scattered into zeros, a scalar read back): no arithmetic."""
    return Count()


formula(aten.bernoulli_)(_per_input(1))


def _foreach(tensors, *args, out, **kwargs):
    """One per element of every tensor in the list (the optimizers' multi-tensor path)."""
    return Count(0, sum(_numel(t.shape) for t in tensors))


formula(*_packets(f"_foreach_{name}" for name in ("add", "sub", "mul", "div", "addcmul", "addcdiv", "lerp", "sqrt",
                                                  "neg", "maximum", "reciprocal", "pow", "sign", "abs")))(_foreach)
