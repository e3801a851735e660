"""What a trace records: the tensors, operator calls and module calls of one forward pass.

Every tensor an operator reads or writes is a `TensorRef` whose `id` is unique within the trace; each operator
output gets a fresh id (an in-place operator's output is a new version of its input), so ids connect each
producer to its consumers without cycles. `netprobe.analysis.counting.trace` records them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["ModuleCall", "OpCall", "TensorRef", "Trace", "tensors_in"]


@dataclass(frozen=True)
class TensorRef:
    """A traced tensor: id unique within the trace, shape, dtype, and its qualified name if a parameter/buffer."""

    id: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    name: str | None = None

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size in bytes at this dtype."""
        return self.numel * self.dtype.itemsize


@dataclass
class OpCall:
    """One aten operator call: arguments with tensors as TensorRefs, outputs, and the module call running it."""

    op: torch._ops.OpOverload
    args: tuple
    kwargs: dict
    outputs: tuple[TensorRef, ...]
    call: int  # index into Trace.modules of the innermost module running the operator
    module: str  # that module's qualified name ("" for the root)

    @property
    def name(self) -> str:
        """The operator's name, e.g. 'aten.convolution.default'."""
        return str(self.op)

    @property
    def inputs(self) -> list[TensorRef]:
        """The TensorRefs among the arguments, in argument order."""
        return tensors_in((self.args, self.kwargs))


@dataclass
class ModuleCall:
    """One call of a module's forward: where it sits and the slice of `Trace.ops` it ran (children included)."""

    name: str
    type: str
    depth: int  # call nesting depth, the root is 0
    parent: int | None  # index of the calling module's call
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...] = ()
    start: int = 0  # first index into Trace.ops
    stop: int = 0  # one past the last


@dataclass
class Trace:
    """The operators and module calls of one forward pass, in execution order."""

    ops: list[OpCall]
    modules: list[ModuleCall]
    inputs: tuple[TensorRef, ...]
    outputs: tuple[TensorRef, ...]
    params: dict[str, TensorRef] = field(default_factory=dict)  # parameters and buffers by qualified name

    def producers(self) -> dict[int, int]:
        """Tensor id -> index of the operator that produced it."""
        return {ref.id: i for i, op in enumerate(self.ops) for ref in op.outputs}

    def consumers(self) -> dict[int, list[int]]:
        """Tensor id -> indices of the operators that read it."""
        readers: dict[int, list[int]] = {}
        for i, op in enumerate(self.ops):
            for ref in op.inputs:
                readers.setdefault(ref.id, []).append(i)
        return readers


def tensors_in(value) -> list:
    """The tensors in nested tuples, lists and dicts (operator arguments, module inputs and outputs)."""
    if isinstance(value, (torch.Tensor, TensorRef)):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    return []
