"""Ways of running the traced step's forward: activation checkpointing of blocks, and mixed precision.

`checkpointed(model)` wraps each residual, dense or inception block of the (meta copy of the) model in
`torch.utils.checkpoint` (non-reentrant, as PyTorch recommends): the block keeps only its inputs and runs its
forward again in backward. `Autocast` stands in for `torch.autocast`, which has no meta-device backend: it
casts the inputs of convolutions and matrix products to the low-precision dtype, caching the cast of each
weight for the forward as autocast does (those copies are what AMP adds to memory), and runs the softmax and
loss functions in float32. Other operators run in the dtype they are given, as under autocast; the loss is
computed inside the mode, as under autocast.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.checkpoint import checkpoint

from netprobe.analysis.memory.step import loss_of
from netprobe.errors import NetprobeError

# Class names of the zoo's blocks (CIFAR and ImageNet ResNets, DenseNet, GoogLeNet) and torchvision's.
BLOCK_TYPES = ("BasicBlock", "Bottleneck", "DenseLayer", "_DenseLayer", "Inception")
AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}
_LOW = {F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, F.linear,
        torch.conv1d, torch.conv2d, torch.conv3d, torch.matmul, torch.mm, torch.bmm, torch.addmm, torch.baddbmm}
_FP32 = {F.cross_entropy, F.nll_loss, F.log_softmax, F.softmax, torch.log_softmax, torch.softmax, F.mse_loss}


def blocks(model: torch.nn.Module) -> list[str]:
    """Qualified names of the model's blocks (outermost only), in registration order."""
    names = []
    for name, module in model.named_modules():
        if type(module).__name__ in BLOCK_TYPES and not any(name.startswith(n + ".") for n in names):
            names.append(name)
    return names


def checkpointed(model: torch.nn.Module) -> list[str]:
    """Wrap every block of `model` (a meta copy netprobe owns) in activation checkpointing; the names."""
    names = blocks(model)
    if not names:
        raise NetprobeError(f"{type(model).__name__} has no residual, dense or inception blocks to checkpoint "
                            f"(block classes: {', '.join(BLOCK_TYPES)})")
    modules = dict(model.named_modules())
    for name in names:
        module = modules[name]
        module.forward = partial(_checkpoint, type(module).forward.__get__(module))
    return names


def _checkpoint(forward, *args):
    # A list argument is copied: DenseNet appends to its feature list after each layer, and the recomputation
    # must see the list as the layer saw it.
    return checkpoint(forward, *(list(a) if isinstance(a, list) else a for a in args), use_reentrant=False)


class Autocast(TorchFunctionMode):
    """Mixed precision on the meta device, after torch.autocast's lists (see the module docstring)."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype
        self.cache: dict[int, torch.Tensor] = {}  # id(weight) -> its low-precision copy, for this forward

    def cast(self, value, dtype: torch.dtype):
        """`value` in `dtype` if it is a floating tensor; a weight's copy is made once per forward."""
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.dtype == dtype:
            return value
        if value.is_leaf and value.requires_grad:
            if id(value) not in self.cache:
                self.cache[id(value)] = value.to(dtype)
            return self.cache[id(value)]
        return value.to(dtype)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _LOW:
            args = tuple(self.cast(a, self.dtype) for a in args)
        elif func in _FP32:
            args = tuple(self.cast(a, torch.float32) for a in args)
        return func(*args, **kwargs)


def autocast_forward(amp: str):
    """A `forward(model, inputs)` running the model and its loss under `Autocast` for 'bf16' or 'fp16'."""
    if amp not in AMP:
        raise NetprobeError(f"unknown amp {amp!r}: choose bf16 or fp16", said={"unknown amp ": "unknown --amp "})

    def forward(model, inputs):
        mode = Autocast(AMP[amp])
        with mode:
            loss = loss_of(model(*inputs))
        mode.cache.clear()  # autocast drops its weight copies on exit; saved ones live on in autograd
        return loss

    return forward
