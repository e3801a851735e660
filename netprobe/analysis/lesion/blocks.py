"""The blocks of a residual net (or its plain twin), and deleting them in place: swapped for the shortcut
path and restored afterwards, with no copy of the model.

Supported: the CIFAR ResNets' `BasicBlock` (option-A shortcuts) and the ImageNet ResNets' `BasicBlock` and
`Bottleneck` (projection shortcuts, post- or pre-activation). A deleted residual block computes what the
block computes with its residual branch at zero: relu(shortcut(x)) post-activation, shortcut(x)
pre-activation. A deleted plain block is the identity, so only the plain blocks whose input and output
shapes match can be deleted; a residual block that changes the shape keeps its (subsampling) shortcut and
is marked `downsampling`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from netprobe.errors import NetprobeError
from netprobe.zoo import cifar_resnet, resnet
from netprobe.modes import model_mode

BLOCK_TYPES = (cifar_resnet.BasicBlock, resnet.BasicBlock, resnet.Bottleneck)


@dataclass(frozen=True)
class Block:
    """One block: its module name ('layer2.0'), stage ('layer2'), index in forward order, whether it adds a
    shortcut, whether it changes the shape, and the submodule whose output is its residual branch F(x)."""

    name: str
    stage: str
    position: int
    residual: bool
    downsampling: bool
    branch_end: str

    @property
    def deletable(self) -> bool:
        """A residual block always (its shortcut stays); a plain block only where the identity fits."""
        return self.residual or not self.downsampling


def _branch_end(block: nn.Module) -> str:
    """The submodule producing F(x), the term added to the shortcut: the last BN (post-act) or conv (pre-act)."""
    last = "3" if isinstance(block, resnet.Bottleneck) else "2"
    return ("conv" if getattr(block, "preact", False) else "bn") + last


def find_blocks(model: nn.Module, x: torch.Tensor) -> list[Block]:
    """The model's blocks in forward order, their shapes taken from one forward pass of `x[:1]`."""
    candidates = {m: name for name, m in model.named_modules() if isinstance(m, BLOCK_TYPES)}
    shapes, order = {}, []

    def hook(module, args, output):
        shapes[module] = (tuple(args[0].shape), tuple(output.shape))
        order.append(module)

    handles = [m.register_forward_hook(hook) for m in candidates]
    try:
        with model_mode(model, False), torch.inference_mode():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    blocks = []
    for position, module in enumerate(dict.fromkeys(order)):
        name = candidates[module]
        shape_in, shape_out = shapes[module]
        blocks.append(Block(name, name.rpartition(".")[0] or name, position, not module.plain,
                            shape_in != shape_out, _branch_end(module)))
    return blocks


def deletable_blocks(model: nn.Module, x: torch.Tensor) -> list[Block]:
    """The blocks that can be deleted; a model with none raises NetprobeError."""
    blocks = [b for b in find_blocks(model, x) if b.deletable]
    if not blocks:
        kinds = ", ".join(t.__module__.rsplit(".", 1)[-1] + "." + t.__name__ for t in BLOCK_TYPES)
        raise NetprobeError(f"{type(model).__name__} has no deletable blocks (the lesion study deletes {kinds} "
                            "blocks: residual ones, or plain ones whose input and output shapes match)")
    return blocks


def kept_path(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What `block` computes from `x` with its residual branch at zero (the identity for a plain block)."""
    if block.plain:
        return x
    if isinstance(block, cifar_resnet.BasicBlock):
        # Option A, as in the block's forward: every other pixel, new channels zero-padded.
        shortcut = x if block.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, *block.pad))
        return F.relu(shortcut)
    if block.preact:
        return x if block.downsample is None else block.downsample(F.relu(block.bn1(x)))
    return F.relu(x if block.downsample is None else block.downsample(x))


class KeptPath(nn.Module):
    """Stands in for a deleted residual block: its shortcut path, using the block's own projection weights."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self._block = (block,)  # in a tuple, so it is not registered as a submodule (the state dict is unchanged)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kept_path(self._block[0], x)


@contextmanager
def deleted(model: nn.Module, blocks):
    """Delete `blocks` (Block records of `model`) in place for the duration of the `with`; always restored."""
    swapped = []
    try:
        for block in blocks:
            if not block.deletable:
                raise NetprobeError(f"block {block.name} is a plain block that changes the shape: the identity "
                                    "cannot replace it")
            parent_name, _, attr = block.name.rpartition(".")
            parent = model.get_submodule(parent_name)
            original = getattr(parent, attr)
            setattr(parent, attr, KeptPath(original) if block.residual else nn.Identity())
            swapped.append((parent, attr, original))
        yield model
    finally:
        for parent, attr, original in reversed(swapped):
            setattr(parent, attr, original)
