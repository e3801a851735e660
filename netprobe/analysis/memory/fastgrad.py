"""Direct output rules (see `netprobe.analysis.counting.fastmeta`) for the operators of a training step.

The meta kernels of batch norm's backward, the activation backwards, the loss and the optimizers' multi-tensor
(`_foreach_*`) updates are Python decompositions, up to a millisecond a call; a traced step calls them
thousands of times. Each rule gives what the kernel gives (shape, stride, dtype, a fresh storage of the same
size; tests/test_memory_fast.py checks every call of zoo steps against the kernel) for contiguous inputs and
declines the rest. `skips(func, args, kwargs)` names the in-place multi-tensor updates that can be skipped:
on meta tensors they write nothing and allocate nothing the trace sees.
"""

from __future__ import annotations

import functools

import torch

from netprobe.analysis.counting.fastmeta import _empty, _plain, inplace, rule

aten = torch.ops.aten


def _dense(*tensors) -> bool:
    """`_plain` tensors with the strides of a fresh tensor (a channels-last tensor whose spatial size is 1x1
    is contiguous too, but kernels keep its strides)."""
    return _plain(*tensors) and all(t.stride() == _strides(t.shape) for t in tensors)


@functools.lru_cache(maxsize=4096)
def _strides(shape) -> tuple:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


# Adam's in-place updates return their first argument, as the forward's in-place rules do.
rule(aten.lerp_.Scalar, aten.addcmul_.default, aten.addcdiv_.default)(inplace)

_ACTIVATION_BACKWARD = ("threshold_backward", "sigmoid_backward", "tanh_backward", "hardtanh_backward",
                        "leaky_relu_backward", "silu_backward", "hardswish_backward", "hardsigmoid_backward",
                        "gelu_backward")


@rule(*(getattr(aten, name).default for name in _ACTIVATION_BACKWARD if hasattr(aten, name)))
def activation_backward(grad, x, *args, **kwargs):
    """The gradient of a pointwise activation: like the incoming gradient."""
    if not _dense(grad, x) or grad.shape != x.shape or any(isinstance(a, torch.Tensor) for a in args):
        return None
    return _empty(grad.shape, grad)


@rule(aten.native_batch_norm_backward.default)
def batch_norm_backward(grad, x, weight, running_mean, running_var, save_mean, save_invstd, train, eps, mask):
    """(input gradient like the input, weight and bias gradients per channel in the weight's dtype); the
    decomposition returns the input gradient whatever the mask says, so a mask without it is declined."""
    stats = [t for t in (weight, running_mean, running_var, save_mean, save_invstd) if t is not None]
    if not (_dense(grad, x) and grad.shape == x.shape and x.dim() >= 2 and mask[0]):
        return None
    if stats and not (_dense(*stats) and all(tuple(t.shape) == (x.shape[1],) for t in stats)):
        return None
    like = x if weight is None else weight
    channels = (x.shape[1],)
    return (_empty(x.shape, x), _empty(channels, like) if mask[1] else None,
            _empty(channels, like) if mask[2] else None)


@rule(aten.convolution_backward.default)
def convolution_backward(grad, x, weight, bias_sizes, stride, padding, dilation, transposed, output_padding,
                         groups, mask):
    """Gradients of the input, weight and bias that the mask asks for, in the gradient's dtype."""
    if not _dense(grad, x, weight) or x.dim() != weight.dim() or bias_sizes is None and mask[2]:
        return None
    return (_empty(x.shape, grad) if mask[0] else None, _empty(weight.shape, grad) if mask[1] else None,
            _empty(bias_sizes, grad) if mask[2] else None)


def _class_targets(x, target) -> bool:
    """Logits (N, K) and int64 class indices (N,), the case the loss rules take."""
    return (_dense(x) and x.dim() == 2 and isinstance(target, torch.Tensor) and target.is_meta
            and target.dtype == torch.int64 and tuple(target.shape) == (x.shape[0],))


@rule(aten.nll_loss_forward.default)
def nll_loss(x, target, weight, reduction, ignore_index):
    """(loss, total weight), both scalars, for a mean or summed loss without class weights."""
    if weight is not None or reduction not in (1, 2) or not _class_targets(x, target):
        return None
    return _empty((), x), _empty((), x)


@rule(aten.nll_loss_backward.default)
def nll_loss_backward(grad, x, target, weight, reduction, ignore_index, total_weight):
    """The logits' gradient, like the logits."""
    if weight is not None or reduction not in (1, 2) or not _class_targets(x, target) or not _dense(grad, x):
        return None
    return _empty(x.shape, x)


@rule(aten._log_softmax_backward_data.default)
def log_softmax_backward(grad, output, dim, input_dtype):
    """Like the incoming gradient, in the forward input's dtype."""
    if not _dense(grad, output) or grad.shape != output.shape or input_dtype != grad.dtype:
        return None
    return _empty(grad.shape, grad)


_LIKE_DEFAULTS = ("memory_format", "pin_memory")


@rule(aten.zeros_like.default)
def zeros_like(x, **kwargs):
    """A fresh contiguous tensor like a contiguous input (the optimizers' state)."""
    plain = kwargs.get("memory_format") in (None, torch.preserve_format) and not kwargs.get("pin_memory")
    if not _dense(x) or not plain or any(v is not None for k, v in kwargs.items() if k not in _LIKE_DEFAULTS):
        return None
    return _empty(x.shape, x)


def _same_lists(args, kwargs) -> list | None:
    """The tensor lists among the arguments if all hold meta tensors, agree in length and shape; else None."""
    lists = [a for a in (*args, *kwargs.values()) if isinstance(a, (list, tuple)) and a
             and isinstance(a[0], torch.Tensor)]
    if not lists or any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
        return None
    first = lists[0]
    if any(len(other) != len(first) for other in lists):
        return None
    for group in zip(*lists):
        shape = group[0].shape
        if not all(isinstance(t, torch.Tensor) and t.is_meta and t.shape == shape for t in group):
            return None
    return lists


@rule(aten._foreach_sqrt.default)
def foreach_sqrt(tensors):
    """One fresh tensor like each input."""
    return [_empty(t.shape, t) for t in tensors] if tensors and _dense(*tensors) else None


_FOREACH_INPLACE = {op for name in ("add_", "sub_", "mul_", "div_", "addcmul_", "addcdiv_", "lerp_", "sqrt_",
                                     "maximum_", "neg_")
                    if hasattr(aten, f"_foreach_{name}")
                    for op in (getattr(getattr(aten, f"_foreach_{name}"), o)
                               for o in getattr(aten, f"_foreach_{name}").overloads())
                    if not op._schema.returns}


def skips(func, args, kwargs) -> bool:
    """Whether `func` is an in-place multi-tensor update over meta tensors of matching shapes (nothing to do)."""
    return func in _FOREACH_INPLACE and _same_lists(args, kwargs) is not None
