"""Counting rules for the operators of a backward pass and an optimizer step, added to the forward table.

Convention (the forward one of `netprobe.analysis.counting.flops`, extended):
- MACs: `convolution_backward` does the forward convolution's multiply-accumulates once for the input
  gradient and once for the weight gradient, each only where autograd asks for it (its output_mask: the first
  convolution's input gradient is skipped); a linear layer's backward reaches `mm`, counted as in forward.
  This is `torch.utils.flop_counter`'s convention, so 2 x MACs equals FlopCounterMode's count.
- The extras (elementwise work, in FLOPs only; dropout's bernoulli_ 1; the optimizers' `_foreach_*` operators 1 per element): the bias gradient is a sum, one per grad_output element;
  ReLU's threshold_backward 1 per element; other activation derivatives 2 (derivative and product);
  batch norm backward 7 (two reductions and the affine combination); pooling backward one per input element;
  log-softmax backward 3; dropout backward 1; the loss 1 per input element.
"""

from __future__ import annotations

import math

import torch

from netprobe.analysis.counting.flops import Count, _packets, conv, formula

aten = torch.ops.aten


def _numel(shape) -> int:
    return math.prod(shape)


@formula(aten.convolution_backward)
def conv_backward(grad_out, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
                  output_mask, *rest, out, **kwargs):
    """The forward MACs once per gradient asked for (input, weight); the bias gradient sums grad_output."""
    forward = conv(x, w, None, stride, padding, dilation, transposed, output_padding, groups, out=(grad_out,)).macs
    macs = forward * (int(output_mask[0]) + int(output_mask[1]))
    return Count(macs, 2 * macs + (_numel(grad_out.shape) if output_mask[2] else 0))


def _per_input(per_element: int):
    def count(grad, *args, out, **kwargs):
        return Count(0, per_element * _numel(out[0].shape))

    count.__doc__ = f"{per_element} FLOP(s) per gradient element."
    return count


formula(*_packets(("threshold_backward", "native_dropout_backward", "hardtanh_backward", "leaky_relu_backward",
                   "max_pool2d_with_indices_backward", "avg_pool2d_backward", "_adaptive_avg_pool2d_backward",
                   "adaptive_max_pool2d_backward", "max_pool3d_with_indices_backward", "avg_pool3d_backward",
                   "nll_loss_backward", "nll_loss2d_backward")))(_per_input(1))
formula(*_packets(("tanh_backward", "sigmoid_backward", "gelu_backward", "silu_backward", "hardswish_backward",
                   "hardsigmoid_backward", "elu_backward", "native_dropout")))(_per_input(2))
formula(*_packets(("_log_softmax_backward_data", "_softmax_backward_data")))(_per_input(3))
formula(aten.native_batch_norm_backward, aten.native_layer_norm_backward,
        aten.native_group_norm_backward)(_per_input(7))


@formula(aten.nll_loss_forward, aten.nll_loss2d_forward)
def nll_loss(x, *args, out, **kwargs):
    """One per input element (a gather and the mean)."""
    return Count(0, _numel(x.shape))


@formula(*_packets(("slice_backward", "select_backward", "_local_scalar_dense")))
def movement(*args, out, **kwargs):
    """Data movement (a gradient scattered into zeros, a scalar read back): no arithmetic."""
    return Count()


formula(aten.bernoulli_)(_per_input(1))


def _foreach(tensors, *args, out, **kwargs):
    """One per element of every tensor in the list (the optimizers' multi-tensor path)."""
    return Count(0, sum(_numel(t.shape) for t in tensors))


formula(*_packets(f"_foreach_{name}" for name in ("add", "sub", "mul", "div", "addcmul", "addcdiv", "lerp", "sqrt",
                                                  "neg", "maximum", "reciprocal", "pow", "sign", "abs")))(_foreach)
