"""Per-layer shapes, parameters, MACs, FLOPs and activation memory from one traced pass on the meta device.

Counting convention (see `netprobe.analysis.counting.flops`): MACs are the multiply-accumulates of convolutions and
matrix products, the convention behind torchvision's published GFLOPS; FLOPs are 2 x MACs plus the
elementwise work of normalisation, activations, pooling and additions. `activation_bytes` is the memory the
layer's operators allocate for their outputs (views and in-place operators allocate none).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import torch

from netprobe.analysis.counting.flops import count, output_bytes
from netprobe.analysis.counting.trace import trace

COLUMNS = ["name", "type", "depth", "input_shape", "output_shape", "params", "trainable", "macs", "flops",
           "activation_bytes"]
_SUMS = ("params", "trainable", "macs", "flops", "activation_bytes")
SCHEMA_VERSION = 1  # of `Summary.to_dict`; raised when a key changes meaning or goes away
_BY_FORMULA = ("macs", "flops", "activation_bytes")  # totals an operator without a formula leaves partial


@dataclass(frozen=True)
class Totals:
    """Whole-model figures: exact integers."""

    params: int
    trainable_params: int
    macs: int
    flops: int
    activation_bytes: int

    def as_dict(self) -> dict:
        """The totals as a plain dict, in a stable key order."""
        return asdict(self)


@dataclass
class Summary:
    """One row per module that does work (and every leaf module), in execution order, and the totals."""

    model: str
    input_shape: tuple
    layers: object  # pandas.DataFrame with COLUMNS
    totals: Totals
    uncounted_ops: dict[str, int] = field(default_factory=dict)  # operator -> calls seen but not counted
    uncounted_elements: dict[str, int] = field(default_factory=dict)  # operator -> elements of their outputs
    context: dict = field(default_factory=dict)  # versions, dtype, device and mode of the trace

    def _repr_html_(self) -> str:
        """The per-layer table and the totals as HTML, so a notebook cell shows it like a DataFrame."""
        totals = ", ".join(f"{k} {v:,}" for k, v in self.totals.as_dict().items())
        return f"<p><b>{self.model}</b> at {self.input_shape}: {totals}</p>" + self.layers.to_html(index=False)

    def status(self) -> dict:
        """Per total: {"status": "complete"}, or "partial" with the operators seen but not counted (calls and
        the elements of their outputs)."""
        uncounted = {op: {"calls": n, "elements": self.uncounted_elements.get(op, 0)}
                     for op, n in self.uncounted_ops.items()}
        return {key: {"status": "partial", "uncounted": uncounted} if uncounted and key in _BY_FORMULA else
                {"status": "complete"} for key in self.totals.as_dict()}

    def to_dict(self) -> dict:
        """JSON-ready {"schema_version", "context", "model", "input_shape", "totals", "status", "layers"} with
        exact integers, plus "uncounted_ops" if any."""
        data = {"schema_version": SCHEMA_VERSION, "context": dict(self.context), "model": self.model,
                "input_shape": _listed(self.input_shape), "totals": self.totals.as_dict(), "status": self.status(),
                "layers": [{k: _listed(v) for k, v in row.items()} for row in self.layers.to_dict(orient="records")]}
        if self.uncounted_ops:
            data["uncounted_ops"] = dict(self.uncounted_ops)
        return data


def _listed(value):
    if isinstance(value, tuple):
        return [_listed(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def _shape(shapes: tuple):
    """One tensor's shape as a tuple of ints, several as a tuple of tuples, none as None."""
    if not shapes:
        return None
    return shapes[0] if len(shapes) == 1 else shapes


def summary(model: torch.nn.Module, input_size=None, *, args=None, kwargs=None, depth: int | None = None,
            dtype: torch.dtype = torch.float32, name: str | None = None) -> Summary:
    """Summarise `model` at `input_size` (with the batch dimension, or example tensors; default 1x3x224x224), or
    called as model(*args, **kwargs) with shapes or tensors in any nesting (None and numbers pass as they are),
    folding below `depth`."""
    return summarize(model, input_size, args=args, kwargs=kwargs, depth=depth, dtype=dtype, name=name)[0]


def summarize(model: torch.nn.Module, input_size=None, *, args=None, kwargs=None, depth: int | None = None,
              dtype: torch.dtype = torch.float32, name: str | None = None):
    """`summary`, with the trace it was made from and the module call behind each of its first rows (the
    receptive-field analysis adds its columns from these)."""
    import pandas as pd

    tr = trace(model, input_size, args=args, kwargs=kwargs, dtype=dtype)
    calls = tr.modules
    own, busy, uncounted, elements = _own_work(tr)
    modules = dict(model.named_modules())
    seen: set[int] = set()
    first_call: dict[str, int] = {}
    for i, call in enumerate(calls):
        if call.name in first_call:
            continue  # a module called again: its parameters are already counted
        first_call[call.name] = i
        _add_params(own[i], modules[call.name], seen)

    has_children = {call.parent for call in calls}
    limit = depth if depth is not None else max((c.depth for c in calls), default=0)
    target = list(range(len(calls)))
    for i, call in enumerate(calls):
        if call.depth > limit:
            target[i] = target[call.parent]  # parents come first, so theirs is already resolved
    rows = {}
    for i, call in enumerate(calls):
        if target[i] != i:
            continue
        if call.depth == limit or i not in has_children or busy[i] or own[i]["params"]:
            rows[i] = {"name": call.name, "type": call.type, "depth": call.depth,
                       "input_shape": _shape(call.input_shapes), "output_shape": _shape(call.output_shapes)}
    records = {i: dict.fromkeys(_SUMS, 0) for i in rows}
    for i in range(len(calls)):
        if target[i] in records:
            for key in _SUMS:
                records[target[i]][key] += own[i][key]

    extra = _unused(modules, first_call, seen, limit, records)
    table = [{**rows[i], **records[i]} for i in rows] + extra

    params = list(model.parameters())
    totals = Totals(params=sum(p.numel() for p in params),
                    trainable_params=sum(p.numel() for p in params if p.requires_grad),
                    macs=sum(r["macs"] for r in own), flops=sum(r["flops"] for r in own),
                    activation_bytes=sum(r["activation_bytes"] for r in own))
    layers = pd.DataFrame(table, columns=COLUMNS)
    shapes = tuple(r.shape for r in tr.inputs)
    result = Summary(name or type(model).__name__, shapes[0] if len(shapes) == 1 else shapes, layers, totals,
                     dict(sorted(uncounted.items())), dict(sorted(elements.items())), _context(dtype))
    return result, tr, list(rows)  # rows are keyed by module call, in table order


def _own_work(tr):
    """Per module call: its own operators' work, whether it ran one that allocates or computes; and the operators
    without a formula (calls, and elements of their outputs)."""
    own = [dict.fromkeys(_SUMS, 0) for _ in tr.modules]
    busy = [False] * len(tr.modules)
    uncounted: Counter = Counter()
    elements: Counter = Counter()
    for op in tr.ops:
        work = count(op)
        if work is None:
            uncounted[str(op.op)] += 1
            elements[str(op.op)] += sum(ref.numel for ref in op.outputs)
            busy[op.call] = True
            continue
        nbytes = output_bytes(op)
        row = own[op.call]
        row["macs"] += work.macs
        row["flops"] += work.flops
        row["activation_bytes"] += nbytes
        busy[op.call] = busy[op.call] or bool(work.flops or nbytes)
    return own, busy, uncounted, elements


def _context(dtype: torch.dtype) -> dict:
    """Where the figures come from: versions, the dtype and device of the trace, and its mode (eval)."""
    import platform

    from netprobe import __version__

    return {"netprobe": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "dtype": str(dtype).removeprefix("torch."), "device": "meta", "training": False}


def _add_params(row: dict, module: torch.nn.Module, seen: set[int]) -> None:
    """Add the module's own parameters not counted yet (a parameter shared by two modules counts once)."""
    for p in module._parameters.values():  # parameters(recurse=False) without its generator machinery (per module)
        if p is not None and id(p) not in seen:
            seen.add(id(p))
            row["params"] += p.numel()
            row["trainable"] += p.numel() if p.requires_grad else 0


def _unused(modules, first_call, seen, limit, records) -> list[dict]:
    """Rows for the parameters of modules that never ran, folded like the others; totals count them too."""
    extra: dict[str, dict] = {}
    for qualname, module in modules.items():
        if qualname in first_call:
            continue
        counts = dict.fromkeys(_SUMS, 0)
        _add_params(counts, module, seen)
        if not counts["params"]:
            continue
        parts = qualname.split(".")
        folded = ".".join(parts[:limit]) if len(parts) > limit else qualname
        host = first_call.get(folded)
        if host is not None and host in records:
            for key in _SUMS:
                records[host][key] += counts[key]
            continue
        row = extra.setdefault(folded, {"name": folded, "type": type(modules[folded]).__name__,
                                        "depth": min(len(parts), limit), "input_shape": None,
                                        "output_shape": None, **dict.fromkeys(_SUMS, 0)})
        for key in _SUMS:
            row[key] += counts[key]
    return list(extra.values())
