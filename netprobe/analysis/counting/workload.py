"""Count any workload, not only `forward`: the aten operators a callable runs on meta tensors (a training step's
forward, loss, backward and optimizer step), by the same formulas as `summary` (see `flops`).

Each operator is attributed to a module where one can be named: the innermost module running in the forward
pass; in the backward pass the innermost module whose output gradients have arrived and whose input gradients
have not (as torch's ModuleTracker does it); elsewhere (a loss, an optimizer step) the module owning the first
parameter the operator reads, else "" (none). Phases: forward (inside a module), backward, other.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.autograd.graph import register_multi_grad_hook
from torch.utils._python_dispatch import TorchDispatchMode

from netprobe.analysis.counting.flops import count as count_op
from netprobe.analysis.counting.opgraph import OpCall, TensorRef, tensors_in
from netprobe.analysis.counting.trace import _map, _Tracer, example_tree, meta_copy

COLUMNS = ["name", "phase", "macs", "flops"]


@dataclass
class Workload:
    """MACs and FLOPs per (module, phase) in order of first work, totals per phase, and what was not counted."""

    layers: object  # pandas.DataFrame with COLUMNS
    totals: dict  # phase -> {"macs", "flops"}, and "all"
    uncounted_ops: dict[str, int] = field(default_factory=dict)


class _Recorder(TorchDispatchMode):
    """Counts each operator and charges it to the module and phase running it."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False

    def __init__(self, owners: dict[int, str]):
        super().__init__()
        self.owners = owners  # id(parameter) -> qualified name of its module
        self.stack: list[tuple[str, int]] = []  # forward: modules running, and the operator count at their call
        self.seen = 0  # operators dispatched so far
        self.active: dict[str, int] = {}  # backward: module -> depth, between its output and input gradients
        self.work: dict[tuple[str, str], list[int]] = {}
        self.uncounted: Counter = Counter()
        self.runner = _Tracer({})  # its direct rules and per-signature reuse of outputs, not its recording

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.seen += 1
        out = self.runner.run(func, args, kwargs)
        ref = lambda t: TensorRef(0, tuple(t.shape), t.dtype)  # noqa: E731 (the formulas read shapes only)
        op = OpCall(func, _map(ref, args), _map(ref, kwargs), tuple(ref(t) for t in tensors_in(out)), -1, "")
        work = count_op(op)
        if work is None:
            self.uncounted[str(func)] += 1
            return out
        where = self.where(args)
        row = self.work.setdefault(where, [0, 0])
        row[0] += work.macs
        row[1] += work.flops
        return out

    def where(self, args) -> tuple[str, str]:
        if torch._C._current_graph_task_id() != -1:
            return (max(self.active, key=self.active.get) if self.active else ""), "backward"
        self.active.clear()  # a backward pass that ended leaves no module running
        if self.stack:
            return self.stack[-1][0], "forward"
        owner = next((self.owners[id(t)] for t in tensors_in(args) if id(t) in self.owners), "")
        return owner, "other"

    def enter(self, name, inputs):
        self.stack.append((name, self.seen))
        needing = [t for t in tensors_in(inputs) if t.requires_grad]
        if needing:
            register_multi_grad_hook(needing, lambda grads: self.active.pop(name, None))

    def leave(self, name, output):
        _, start = self.stack.pop()
        needing = [t for t in tensors_in(output) if t.requires_grad]
        if needing and self.seen > start:  # a module that ran nothing (Identity) returns its input: no backward
            register_multi_grad_hook(needing, lambda grads: self.active.setdefault(name, name.count(".") + bool(name)))


@contextlib.contextmanager
def _hooked(modules: dict[str, torch.nn.Module], recorder: _Recorder):
    handles = []
    try:
        for name, module in modules.items():
            handles.append(module.register_forward_pre_hook(lambda m, a, k, name=name: recorder.enter(name, (a, k)),
                                                            with_kwargs=True))
            handles.append(module.register_forward_hook(lambda m, a, o, name=name: recorder.leave(name, o)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _on_meta(value, dtype, roots: list):
    """`value` with its modules copied to meta (collected in `roots`) and its shapes and tensors made meta."""
    if isinstance(value, torch.nn.Module):
        roots.append(value if all(t.is_meta for t in value.state_dict().values()) else meta_copy(value, dtype))
        return roots[-1]
    if isinstance(value, (tuple, list)) and not all(type(d) is int for d in value):
        return type(value)(_on_meta(v, dtype, roots) for v in value)
    if isinstance(value, dict):
        return {k: _on_meta(v, dtype, roots) for k, v in value.items()}
    return example_tree(value, dtype)


def count(fn, *args, dtype: torch.dtype = torch.float32, **kwargs) -> Workload:
    """Run fn(*args, **kwargs) on the meta device and count its operators: modules among the arguments are
    copied to meta, shapes (tuples of ints) and tensors become meta tensors; per-module, per-phase MACs and FLOPs."""
    import pandas as pd

    roots: list[torch.nn.Module] = []
    args, kwargs = _on_meta(tuple(args), dtype, roots), _on_meta(dict(kwargs), dtype, roots)
    modules = {(f"{i}.{n}" if len(roots) > 1 else n).strip("."): m
               for i, root in enumerate(roots) for n, m in root.named_modules()}
    owners = {id(p): name for name, m in modules.items() for p in m.parameters(recurse=False)}
    recorder = _Recorder(owners)
    with _hooked(modules, recorder), recorder:
        fn(*args, **kwargs)
    rows = [{"name": n, "phase": ph, "macs": w[0], "flops": w[1]} for (n, ph), w in recorder.work.items()]
    layers = pd.DataFrame(rows, columns=COLUMNS)
    totals = {ph: {"macs": int(g["macs"].sum()), "flops": int(g["flops"].sum())} for ph, g in layers.groupby("phase")}
    totals["all"] = {"macs": int(layers["macs"].sum()), "flops": int(layers["flops"].sum())}
    return Workload(layers, totals, dict(sorted(recorder.uncounted.items())))
