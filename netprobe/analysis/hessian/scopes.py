"""The parameter groups of `--per-block`: the stem, each residual (or plain) block, and the head."""

from __future__ import annotations

import torch

from netprobe.analysis.hessian.hessian import parameters
from netprobe.analysis.lesion.blocks import find_blocks
from netprobe.errors import NetprobeError
from netprobe.modes import model_mode


def scopes(model, x: torch.Tensor) -> dict[str, list[str]]:
    """Parameter names by scope, in forward order: 'stem' (run before the first block), each block by its module
    name ('layer1.0'), 'head' (run after the last block, or never). A model without blocks raises NetprobeError.
    """
    blocks = find_blocks(model, x)
    if not blocks:
        raise NetprobeError(f"{type(model).__name__} has no residual blocks to take the Hessian per block of "
                            "(--per-block takes the CIFAR and ImageNet ResNets' blocks and their plain twins)")
    order = []
    handles = [m.register_forward_pre_hook(lambda m, args: order.append(m)) for m in model.modules()]
    try:
        with model_mode(model, False), torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    first = {m: i for i, m in reversed(list(enumerate(order)))}
    start = first[model.get_submodule(blocks[0].name)]
    found = {"stem": [], **{b.name: [] for b in blocks}, "head": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        owner = next((b.name for b in blocks if name.startswith(b.name + ".")), None)
        if owner is None:
            module = model.get_submodule(name.rpartition(".")[0])
            owner = "stem" if first.get(module, len(order)) < start else "head"
        found[owner].append(name)
    return {k: v for k, v in found.items() if v}


def scope_parameters(model, names: list[str]) -> list[torch.Tensor]:
    """The parameter tensors of `names`, in `parameters(model)` order."""
    wanted = set(names)
    return [p for n, p in model.named_parameters() if n in wanted and p.requires_grad]


def flat_indices(model, names: list[str]) -> torch.Tensor:
    """Where the parameters `names` lie in the flat vector over `parameters(model)`."""
    wanted, pieces, offset = set(names), [], 0
    named = {id(p): n for n, p in model.named_parameters()}
    for p in parameters(model):
        if named[id(p)] in wanted:
            pieces.append(torch.arange(offset, offset + p.numel()))
        offset += p.numel()
    return torch.cat(pieces) if pieces else torch.empty(0, dtype=torch.long)
