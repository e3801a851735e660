"""What one training step costs, per layer and over time, from one traced step on the meta device.

Per layer (module call): forward and backward MACs and FLOPs (see `backward_flops` for the convention),
bytes saved for backward (unique storages, first saver; parameters and buffers excluded, they are in
param_bytes), parameter, gradient and optimizer-state bytes.
Timeline: live bytes after every operator of forward, backward and the optimizer step, by kind: params
(and buffers), optimizer state, input, saved (activations autograd keeps), grads, other (transient outputs).
The step is a steady one: the optimizer state exists before it, gradients were set to None after the last.
"""

from __future__ import annotations

import bisect
import contextlib
from collections import Counter
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from netprobe.analysis.counting.trace import example_inputs
from netprobe.analysis.memory.allocator import Peaks, simulate
from netprobe.analysis.memory.borrow import step_model
from netprobe.analysis.memory.step import StepTrace, Untraced, trace_step
from netprobe.analysis.memory.variants import AMP, autocast_forward, blocks, checkpointed
from netprobe.errors import NetprobeError

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ALLOCATORS = ("none", "cuda")
KINDS = ("params", "optimizer", "input", "saved", "grads", "other")
LAYER_COLUMNS = ["name", "type", "depth", "forward_macs", "forward_flops", "backward_macs", "backward_flops",
                 "saved_bytes", "param_bytes", "grad_bytes", "optimizer_bytes"]
_SUMS = LAYER_COLUMNS[3:]


@dataclass(frozen=True)
class Settings:
    """How the step is run. allocator 'cuda' also replays it through the CUDA caching allocator's rules and
    uses the optimizer's multi-tensor (foreach) path, PyTorch's default on CUDA."""

    optimizer: str = "adam"
    dtype: str = "float32"  # of weights and inputs
    amp: str | None = None  # 'bf16' or 'fp16': mixed precision (see variants.Autocast)
    checkpoint_blocks: bool = False
    channels_last: bool = False
    allocator: str = "none"

    def __post_init__(self):
        for value, allowed, what in ((self.optimizer, OPTIMIZERS, "optimizer"), (self.dtype, tuple(DTYPES), "dtype"),
                                     (self.amp, (None, *AMP), "amp"), (self.allocator, ALLOCATORS, "allocator")):
            if value not in allowed:
                choices = ", ".join(a for a in allowed if a)
                raise NetprobeError(f"unknown {what} {value!r}: choose one of {choices}")


@dataclass(frozen=True)
class Totals:
    """Whole-step figures; bytes are exact for the meta step (no allocator rounding)."""

    params: int
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    saved_bytes: int
    forward_macs: int
    forward_flops: int
    backward_macs: int
    backward_flops: int
    step_flops: int
    peak_bytes: int
    peak_phase: str
    peak_op: str
    peak_module: str

    def as_dict(self) -> dict:
        """The totals as a plain dict, in a stable key order."""
        return asdict(self)


@dataclass
class TrainingCost:
    """Per-layer costs, the live-bytes timeline and the totals of one training step."""

    model: str
    input_shape: tuple
    settings: Settings
    layers: object  # DataFrame with LAYER_COLUMNS
    timeline: object  # DataFrame: index, phase, op, module, live_bytes and one column per kind
    totals: Totals
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    cuda: Peaks | None = None  # allocated and reserved peaks under the CUDA caching allocator's rules
    blocks: object = None  # with checkpoint_blocks: DataFrame of what checkpointing each block saves
    plain_peak: int | None = None  # with checkpoint_blocks: the peak without checkpointing


def make_optimizer(name: str, params, foreach: bool = False) -> torch.optim.Optimizer:
    """The optimizer `name` with the usual settings (its hyperparameters do not change its memory)."""
    params = [p for p in params if p.requires_grad]
    if name in ("sgd", "momentum"):
        return torch.optim.SGD(params, lr=0.1, momentum=0.9 if name == "momentum" else 0.0, foreach=foreach)
    return (torch.optim.Adam if name == "adam" else torch.optim.AdamW)(params, lr=1e-3, foreach=foreach)


@contextlib.contextmanager
def prepared(model: torch.nn.Module, input_size, settings: Settings):
    """The meta model to step in training mode (see `borrow.step_model`), its meta inputs and an optimizer
    whose state exists."""
    dtype = DTYPES[settings.dtype]
    with step_model(model, dtype, copy=settings.channels_last or settings.checkpoint_blocks) as meta:
        inputs = example_inputs(input_size, dtype)
        if settings.channels_last:
            meta = meta.to(memory_format=torch.channels_last)
            inputs = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in inputs)
        params = list(meta.parameters())
        optimizer = make_optimizer(settings.optimizer, params, settings.allocator == "cuda")
        # The state a steady step starts with, made by the multi-tensor path (a few operators for the whole
        # model; its state is the per-tensor path's, the same tensors in the same order).
        warm = make_optimizer(settings.optimizer, params, foreach=True)
        with Untraced():
            for p in params:
                p.grad = torch.zeros_like(p) if p.requires_grad else None
            warm.step()
        optimizer.state.update(warm.state)
        optimizer.zero_grad(set_to_none=True)
        yield meta, inputs, optimizer


def training_cost(model: torch.nn.Module, input_size=(1, 3, 224, 224), settings: Settings = Settings(), *,
                  name: str | None = None) -> TrainingCost:
    """Trace one training step of `model` at `input_size` (batch first) on the meta device and cost it."""
    cost = _cost(model, input_size, settings, name)
    if settings.checkpoint_blocks:
        plain = _cost(model, input_size, replace(settings, checkpoint_blocks=False), name)
        cost.blocks, cost.plain_peak = plain.blocks, plain.totals.peak_bytes
    return cost


def _cost(model, input_size, settings: Settings, name) -> TrainingCost:
    """One traced step costed (checkpointed if the settings say so; the block table from a plain step)."""
    with prepared(model, input_size, settings) as (meta, inputs, optimizer):
        if settings.checkpoint_blocks:
            checkpointed(meta)
        step = trace_step(meta, inputs, optimizer, autocast_forward(settings.amp) if settings.amp else None)
        return _costed(step, meta, inputs, optimizer, settings, name or type(model).__name__)


def _costed(step: StepTrace, meta, inputs, optimizer, settings: Settings, name: str) -> TrainingCost:
    """The costs of a traced step."""
    layers, uncounted, step_flops = _layers(step, meta, optimizer)
    timeline = _timeline(step)
    row = timeline.loc[int(timeline["live_bytes"].idxmax())]
    params = list(meta.parameters())
    trainable = [p for p in params if p.requires_grad]
    saved = sum(s.nbytes for s in step.storages.values() if s.saved_by is not None and s.kind != "params")
    totals = Totals(
        params=sum(p.numel() for p in params), param_bytes=sum(_nbytes(p) for p in params),
        grad_bytes=sum(_nbytes(p) for p in trainable), optimizer_bytes=_state_bytes(optimizer),
        saved_bytes=saved, **{k: int(layers[k].sum()) for k in _SUMS[:4]}, step_flops=step_flops,
        peak_bytes=int(row["live_bytes"]), peak_phase=row["phase"], peak_op=row["op"], peak_module=row["module"])
    shapes = tuple(tuple(t.shape) for t in inputs)
    return TrainingCost(name, shapes[0] if len(shapes) == 1 else shapes, settings, layers,
                        timeline, totals, dict(sorted(uncounted.items())),
                        simulate(*_events(step)) if settings.allocator == "cuda" else None,
                        None if settings.checkpoint_blocks else block_savings(step, meta))


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _state_bytes(optimizer) -> int:
    return sum(_nbytes(t) for s in optimizer.state.values() for t in s.values()
               if isinstance(t, torch.Tensor) and t.is_meta)


def _call_name(step: StepTrace, call: int, phase: str) -> tuple[str, str, int]:
    if call >= 0:
        m = step.modules[call]
        return m.name, m.type, m.depth
    return ("(optimizer)", "", 0) if phase == "step" else ("(loss)", "", 0)


def _layers(step: StepTrace, meta: torch.nn.Module, optimizer):
    """One row per module call with any cost, in call order; the loss last. Also the uncounted operators."""
    rows: dict[int, dict] = {}
    uncounted: Counter = Counter()
    step_flops = 0

    def row(call):
        return rows.setdefault(call, dict.fromkeys(_SUMS, 0))

    for op in step.ops:
        if op.op.namespace != "aten":
            continue  # the optimizer's profiler ranges
        work = op.work
        if work is None:
            uncounted[str(op.op)] += 1
            continue
        if op.phase == "step":
            step_flops += work.flops
            continue
        r = row(op.call)
        r[f"{op.phase}_macs"] += work.macs
        r[f"{op.phase}_flops"] += work.flops
    for s in step.storages.values():
        if s.saved_by is not None and s.kind != "params":
            row(s.saved_by)["saved_bytes"] += s.nbytes
    for pname, p in meta.named_parameters():
        call = step.param_calls.get(pname)
        if call is None:
            continue
        r = row(call)
        r["param_bytes"] += _nbytes(p)
        r["grad_bytes"] += _nbytes(p) if p.requires_grad else 0
        r["optimizer_bytes"] += sum(_nbytes(t) for t in optimizer.state.get(p, {}).values()
                                    if isinstance(t, torch.Tensor) and t.is_meta)
    import pandas as pd

    order = sorted(c for c in rows if c >= 0) + ([-1] if -1 in rows else [])
    table = [{**dict(zip(("name", "type", "depth"), _call_name(step, c, "forward"))), **rows[c]}
             for c in order if any(rows[c].values())]
    return pd.DataFrame(table, columns=LAYER_COLUMNS), uncounted, step_flops


def _kind(key: int, step: StepTrace) -> str:
    s = step.storages[key]
    if key in step.grads:
        return "grads"
    if s.kind == "activation":
        return "saved" if s.saved_by is not None else "other"
    return s.kind


def _timeline(step: StepTrace):
    """Live bytes after every operator, in total and by kind."""
    import pandas as pd

    n = len(step.ops)
    storages = list(step.storages.items())
    kinds = [KINDS.index(_kind(key, step)) for key, _ in storages]
    nbytes = np.array([s.nbytes for _, s in storages], dtype=np.int64)
    deltas = np.zeros((len(KINDS), n + 1), dtype=np.int64)  # column n: releases after the last operator
    np.add.at(deltas, (kinds, [max(s.born, 0) for _, s in storages]), nbytes)
    np.subtract.at(deltas, (kinds, [n if s.died is None else s.died + 1 for _, s in storages]), nbytes)
    live = np.cumsum(deltas, axis=1)[:, :n]
    names = {op: str(op) for op in {op.op for op in step.ops}}
    modules = [m.name for m in step.modules]
    frame = pd.DataFrame({
        "index": np.arange(n), "phase": [op.phase for op in step.ops], "op": [names[op.op] for op in step.ops],
        "module": [modules[op.call] if op.call >= 0 else _call_name(step, -1, op.phase)[0] for op in step.ops],
        "live_bytes": live.sum(axis=0), **dict(zip(KINDS, live))})
    return frame


def _events(step: StepTrace):
    """Allocation sizes by key and the allocate (key) / release (-key - 1) events in order, for the allocator
    model: a release noted after operator i comes before operator i + 1's allocations."""
    sizes = np.zeros(len(step.storages), dtype=np.int64)
    events = []
    for key, s in step.storages.items():
        sizes[key] = s.nbytes
        events.append((s.born, 1, key))
        if s.died is not None:
            events.append((s.died + 1, 0, -key - 1))
    events.sort()
    return sizes, [(t, k) for t, _, k in events]


BLOCK_COLUMNS = ["block", "type", "saved_bytes", "recompute_flops"]


def block_savings(step: StepTrace, meta: torch.nn.Module):
    """Per block: the bytes checkpointing it would free (saved storages made inside it and saved only by
    it: not its input, not an output a later layer saves too) and the forward FLOPs it would run again."""
    import pandas as pd

    names = set(blocks(meta))
    # (made at, first and last module call saving it, bytes) of the saved activations, by the operator making them
    candidates = sorted((s.born, min(s.savers), max(s.savers), s.nbytes) for s in step.storages.values()
                        if s.kind == "activation" and s.savers)
    born = [c[0] for c in candidates]
    rows = []
    for i, call in enumerate(step.modules):
        if call.name not in names:
            continue
        j = i + 1
        while j < len(step.modules) and step.modules[j].depth > call.depth:  # calls are in pre-order
            j += 1
        made = candidates[bisect.bisect_left(born, call.start):bisect.bisect_left(born, call.stop)]
        saved = sum(nbytes for _, first, last, nbytes in made if first >= i and last < j)  # savers within i..j-1
        flops = sum(op.work.flops for op in step.ops[call.start:call.stop] if op.work is not None)
        rows.append({"block": call.name, "type": call.type, "saved_bytes": saved, "recompute_flops": flops})
    return pd.DataFrame(rows, columns=BLOCK_COLUMNS)
