"""One training step on the meta device: forward, loss, backward and the optimizer step, every operator recorded.

Nothing is computed: meta tensors carry shapes, strides and dtypes, so the step costs the same at any batch
size. A `TorchDispatchMode` sees every aten operator of the three phases (autograd runs the backward operators
through it too). Memory is followed by storage, as an allocator sees it: an operator output whose storage is
new is an allocation; a weak reference on the storage reports its release, when autograd frees a saved
tensor or Python drops the last view. `saved_tensors_hooks` name the storages autograd keeps for backward.

Backward operators are attributed to the module whose forward created their autograd node: nodes are
numbered in creation order (`Node._sequence_nr`), and the forward records that number after each operator.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import weakref
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F

from netprobe.analysis.counting.flops import Count, count
from netprobe.analysis.counting.opgraph import ModuleCall, TensorRef, tensors_in
from netprobe.analysis.counting.trace import OpFailed, _first_line, _map, _Tracer, _where, explain, module_hooks
from netprobe.analysis.memory import backward_flops  # noqa: F401  (registers the backward formulas)
from netprobe.analysis.memory import fastgrad
from netprobe.errors import NetprobeError


@dataclass
class Storage:
    """One allocation: its size, the operator index that made it (-1: there before the step) and its kind."""

    nbytes: int
    born: int
    kind: str  # params, optimizer, input, activation (grads are told apart after backward)
    died: int | None = None  # operator index after which it was released; None: alive at the end
    saved_by: int | None = None  # module call that saved it for backward first, -1 for the loss
    savers: set[int] = field(default_factory=set)  # every module call that saved it


@dataclass
class StepTrace:
    """What one traced step recorded, operator by operator."""

    ops: list  # OpRecords: op, call, phase, work
    modules: list[ModuleCall]
    storages: dict[int, Storage]  # key -> storage
    grads: set[int] = field(default_factory=set)  # keys of the storages that are parameter gradients
    param_calls: dict[str, int] = field(default_factory=dict)  # parameter name -> module call owning it


@dataclass
class OpRecord:
    """An operator call, the module call it belongs to, its phase and its work (None: no counting formula)."""

    op: torch._ops.OpOverload
    call: int
    phase: str
    work: Count | None


class _Call(NamedTuple):
    """An operator call in the form the counting formulas read (shapes of the live meta tensors)."""

    op: torch._ops.OpOverload
    args: tuple
    kwargs: dict
    outputs: tuple


class Untraced(_Tracer):
    """Runs operators as the trace does (direct rules, outputs reused by signature) and records nothing: for
    the warm-up optimizer step that creates the state, whose arithmetic would be Python meta kernels."""

    def __init__(self):
        super().__init__({})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self.run(func, args, kwargs or {})

    def run(self, func, args, kwargs):
        """As the forward trace runs operators, the step's rules (see fastgrad) included."""
        return None if fastgrad.skips(func, args, kwargs) else super().run(func, args, kwargs)


class _StepTracer(Untraced):
    """Records operators, their module, new storages and releases; keeps no tensor alive. The forward trace's
    `run` computes outputs (direct rules, outputs' metadata reused by signature)."""

    def __init__(self):
        super().__init__()
        self.phase = "forward"
        self.ops: list[OpRecord] = []
        self.modules: list[ModuleCall] = []
        self.stack: list[int] = []
        self.storages: dict[int, Storage] = {}
        self.live: dict[int, int] = {}  # StorageImpl address -> key, while alive
        self.keys = itertools.count()
        self.ids = itertools.count()
        self.seq: list[int] = []  # autograd sequence number after each forward operator
        self.seq_calls: list[int] = []
        self.param_calls: dict[int, int] = {}  # id(parameter) -> module call
        self.watch: list[weakref.ref] = []  # a weak reference reports a release only while it is alive itself
        self.done = False  # releases after the step (the caller dropping the model) are not part of it

    def register(self, t: torch.Tensor, kind: str, born: int) -> int | None:
        """The key of `t`'s storage, registering it (and watching its release) if it is new."""
        if not t.is_meta:
            return None
        st = t.untyped_storage()
        ptr = st._cdata
        key = self.live.get(ptr)
        if key is None and st.nbytes():
            key = self.live[ptr] = next(self.keys)
            self.storages[key] = Storage(st.nbytes(), born, kind)
            self.watch.append(weakref.ref(st, partial(self._released, ptr, key)))
        return key

    def _released(self, ptr, key, _ref):
        if self.done:
            return
        if self.live.get(ptr) == key:
            del self.live[ptr]
        self.storages[key].died = len(self.ops) - 1

    def current_call(self) -> int:
        """The module call an operator belongs to: the running module in forward, the node's creator after."""
        if self.phase != "backward" or self.stack:  # forward, step, or a checkpointed block run again
            return self.stack[-1] if self.stack else -1
        node = torch._C._current_autograd_node()
        if node is None:
            return -1
        variable = getattr(node, "variable", None)
        if variable is not None:  # AccumulateGrad: the parameter's module
            return self.param_calls.get(id(variable), -1)
        i = bisect.bisect_right(self.seq, node._sequence_nr())
        return self.seq_calls[i] if i < len(self.seq_calls) else -1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        call = self.current_call()
        try:
            out = self.run(func, args, kwargs)
        except Exception as exc:
            raise OpFailed(func, _map(self._ref, args), call, exc) from exc
        index = len(self.ops)
        outs = tensors_in(out)
        for t in outs:
            self.register(t, "activation", index)
        self.ops.append(OpRecord(func, call, self.phase, count(_Call(func, args, kwargs, tuple(outs)))))
        if self.phase == "forward":
            self.seq.append(torch._C._autograd._get_sequence_nr())
            self.seq_calls.append(call)
        return out

    def _ref(self, value):
        if not isinstance(value, torch.Tensor):
            return value
        return TensorRef(next(self.ids), tuple(value.shape), value.dtype)

    def pack(self, t: torch.Tensor):
        """saved_tensors_hooks' pack hook: note which module saved which storage; keep the tensor as it is."""
        key = self.register(t, "activation", len(self.ops) - 1)
        if key is not None:
            storage, call = self.storages[key], self.stack[-1] if self.stack else -1
            storage.saved_by = call if storage.saved_by is None else storage.saved_by
            storage.savers.add(call)
        return t

    def pre_hook(self, name, module, args, kwargs):
        if self.phase == "backward":  # a checkpointed block recomputed: its operators go to its first call
            self.stack.append(next(i for i, m in enumerate(self.modules) if m.name == name))
            return
        parent = self.stack[-1] if self.stack else None
        # No input or output shapes: the step's costs do not read them (summary has them).
        self.modules.append(ModuleCall(name, type(module).__name__, len(self.stack), parent, (), start=len(self.ops)))
        call = len(self.modules) - 1
        for p in module._parameters.values():  # parameters(recurse=False) without its generator machinery
            if p is not None:
                self.param_calls.setdefault(id(p), call)
        self.stack.append(call)

    def post_hook(self, module, args, kwargs, output):
        call = self.modules[self.stack.pop()]
        if self.phase == "backward":
            return
        call.stop = len(self.ops)


def loss_of(output) -> torch.Tensor:
    """Cross-entropy of the first output against class-index targets: channel 1 holds the classes, as for
    a classifier's logits (N, K) or a segmentation map (N, K, H, W)."""
    logits = tensors_in(output)[0]
    target = torch.zeros((logits.shape[0], *logits.shape[2:]), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def trace_step(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], optimizer: torch.optim.Optimizer,
               forward=None) -> StepTrace:
    """Run forward, loss, backward and `optimizer.step()` of a meta `model` in training mode under the tracer.

    The optimizer's state must already exist (see `netprobe.analysis.memory.cost`): the step traced is a steady
    one. `forward(model, inputs)`, returning the loss, replaces the plain call and `loss_of` (autocast)."""
    tracer = _StepTracer()
    state = {id(t) for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)}
    for t in itertools.chain(model.parameters(), model.buffers()):
        tracer.register(t, "params", -1)
    for s in optimizer.state.values():
        for t in s.values():
            if isinstance(t, torch.Tensor) and id(t) in state:
                tracer.register(t, "optimizer", -1)
    for t in inputs:
        tracer.register(t, "input", -1)
    names = {id(p): n for n, p in model.named_parameters()}
    try:
        with _collector_paused(), module_hooks(model, tracer), tracer, \
                torch.autograd.graph.saved_tensors_hooks(tracer.pack, lambda t: t):
            loss = forward(model, inputs) if forward else loss_of(model(*inputs))
            tracer.phase = "backward"
            loss.backward()
            del loss
            tracer.phase = "step"
            optimizer.step()
    except OpFailed as failed:
        raise NetprobeError(_explain(failed, tracer, inputs)) from None
    except NetprobeError:
        raise
    except Exception as exc:
        where = _where(tracer.modules, tracer.stack[-1] if tracer.stack else -1)
        raise NetprobeError(f"the training step failed in its {tracer.phase}{where}: {_first_line(exc)}") from None
    tracer.done = True
    grads = {tracer.live[p.grad.untyped_storage()._cdata] for p in model.parameters() if p.grad is not None}
    param_calls = {names[pid]: call for pid, call in tracer.param_calls.items() if pid in names}
    return StepTrace(tracer.ops, tracer.modules, tracer.storages, grads, param_calls)


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off for the step: the trace makes many small objects, and each
    collection they trigger walks every object torch holds (a tenth of the trace's time). Storages are
    released by reference counting, which keeps working."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _explain(failed: OpFailed, tracer: _StepTracer, inputs) -> str:
    """One line for an operator that failed, naming the phase for the backward and the step."""
    if tracer.phase == "forward":
        return explain(failed, tracer.modules, inputs)
    where = f" of {tracer.modules[failed.call].name or '(root)'}" if failed.call >= 0 else ""
    first = str(failed.error).strip().splitlines()
    reason = f"{type(failed.error).__name__}: {first[0]}" if first else type(failed.error).__name__
    return f"the {tracer.phase} cannot be traced on the meta device: {failed.op}{where} failed ({reason})"
