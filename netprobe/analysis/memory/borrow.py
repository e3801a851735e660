"""The model a training step is traced on: the caller's own when it is already on meta, else a meta copy.

Copying costs as much as a whole `summary` (a deepcopy of every module). A model already on meta in the step's
dtype, each tensor alone in a storage of its own size (what the copy would make; the zoo builds models so),
is traced as it is, as `summary` does: the step changes nothing there is to see on meta (no values), and what
it sets (training mode, gradients) is put back on exit, whatever happens. Checkpointing and channels-last
rewrite the model, so they always take a copy.
"""

from __future__ import annotations

import contextlib

import torch

from netprobe.analysis.counting.trace import _model_tensors, meta_copy


def traceable_as_is(model: torch.nn.Module, dtype: torch.dtype) -> bool:
    """Whether every tensor of `model` is on meta in `dtype` (floating ones), contiguous, and alone in a storage
    of exactly its size."""
    tensors = list({id(t): t for t in _model_tensors(model)}.values())
    for t in tensors:
        if not (t.is_meta and (t.dtype == dtype or not t.is_floating_point()) and t.is_contiguous()
                and t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()):
            return False
    return len({t.untyped_storage()._cdata for t in tensors}) == len(tensors)


@contextlib.contextmanager
def step_model(model: torch.nn.Module, dtype: torch.dtype, copy: bool = False):
    """`model` itself in training mode if `traceable_as_is` and not `copy` (its modes and gradients restored on
    exit), else a meta copy in `dtype`."""
    if copy or not traceable_as_is(model, dtype):
        yield meta_copy(model, dtype).train()
        return
    training = {m: m.training for m in model.modules()}
    grads = {p: p.grad for p in model.parameters()}
    try:
        yield model.train()
    finally:
        for module, mode in training.items():
            module.training = mode
        for p, grad in grads.items():
            p.grad = grad
