"""The architecture as a graph: module calls and working operators as nodes, the tensors between them as edges.

Made from the meta-device trace the summary uses. Folding follows `summary --depth`: a module call deeper
than `depth` belongs to its ancestor at `depth`. A node is a module call at `depth`, or a shallower one with
no children, that ran an operator on data derived from the input; an operator running directly in a
shallower container (the `+` of a residual block, the `torch.cat` of an Inception module or a U-Net bridge)
is a node of its own when it computes or allocates, while views and reshapes there pass their input's
producer on. Module calls that run no operator in eval mode (Identity, Dropout) are not drawn. An edge goes
from the node that produced a tensor to each node that reads it, with the shape that node reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from netprobe.analysis.counting.flops import allocates, count
from netprobe.analysis.counting.trace import Trace, trace

NODE_COLUMNS = ["id", "name", "kind", "type", "detail", "output_shape", "params", "macs", "flops"]
EDGE_COLUMNS = ["src", "dst", "shape"]
GROUP_COLUMNS = ["first", "last", "repeat", "nodes"]
RF_COLUMNS = ["rf_h", "rf_w", "jump_h", "jump_w"]
_OP_NAMES = {"constant_pad_nd": "pad", "reflection_pad2d": "pad", "replication_pad2d": "pad"}


@dataclass
class ArchGraph:
    """Nodes and edges of one model's dataflow (DataFrames), and its repeated blocks once collapsed."""

    model: str
    input_shape: tuple
    nodes: object  # pandas.DataFrame: NODE_COLUMNS (+ RF_COLUMNS with fields), in execution order
    edges: object  # pandas.DataFrame: EDGE_COLUMNS, node ids
    groups: object = None  # pandas.DataFrame: GROUP_COLUMNS, one row per run of repeated blocks drawn once
    scopes: dict = field(default_factory=dict)  # node id -> module call indices enclosing it, root first
    calls: list = field(default_factory=list)  # the trace's module calls (names and types of the scopes)


def graph(model: torch.nn.Module, input_size=(1, 3, 224, 224), *, depth: int | None = None, fields: bool = False,
          name: str | None = None, dtype: torch.dtype = torch.float32) -> ArchGraph:
    """The dataflow graph of `model` at `input_size` (with the batch dimension), folded below `depth` (None:
    full depth); `fields=True` adds each node's receptive field (rf_h, rf_w, jump_h, jump_w)."""
    return from_trace(trace(model, input_size, dtype=dtype), model, depth=depth, fields=fields,
                      name=name or type(model).__name__)


def _units(tr: Trace, depth: int | None) -> tuple[list[int], list[bool]]:
    """Per module call: the call it folds into, and whether that call is a node (else a container)."""
    calls = tr.modules
    limit = depth if depth is not None else max((c.depth for c in calls), default=0)
    parents = {c.parent for c in calls}
    target = list(range(len(calls)))
    for i, call in enumerate(calls):
        if call.depth > limit:
            target[i] = target[call.parent]  # parents come first, so theirs is already resolved
    unit = [c.depth == limit or i not in parents for i, c in enumerate(calls)]
    return target, unit


def _works(op) -> bool:
    """An operator that computes or allocates (views, reshapes and in-place metadata changes do not)."""
    work = count(op)
    return work is None or bool(work.flops) or allocates(op)


def _scope(tr: Trace, call: int) -> tuple[int, ...]:
    chain = []
    while call is not None and call >= 0:
        chain.append(call)
        call = tr.modules[call].parent
    return tuple(reversed(chain))


class _Builder:
    """Walks the trace once, creating nodes as operators on the data appear."""

    def __init__(self, tr: Trace, model: torch.nn.Module):
        self.tr, self.modules = tr, dict(model.named_modules())
        self.nodes: list[dict] = []
        self.edges: dict[tuple[int, int], tuple] = {}
        self.producer: dict[int, int] = {}  # tensor id -> node id
        self.made: dict[int, int] = {}  # node id -> the tensor its last operator made (its output)
        self.scopes: dict[int, tuple] = {}
        self.seen_params: set[int] = set()

    def add(self, kind: str, name: str, type_: str, scope: tuple, params: int = 0) -> int:
        """A new node; returns its id."""
        node = len(self.nodes)
        self.nodes.append({"id": node, "name": name, "kind": kind, "type": type_, "detail": "", "output_shape": None,
                           "params": params, "macs": 0, "flops": 0, "ops": []})
        self.scopes[node] = scope
        return node

    def params(self, name: str) -> int:
        """Parameters of module `name` and its children not counted yet (shared ones count once)."""
        total = 0
        for p in self.modules[name].parameters():
            if id(p) not in self.seen_params:
                self.seen_params.add(id(p))
                total += p.numel()
        return total

    def read(self, node: int, refs) -> None:
        """Edges into `node` from the producers of the tensors it reads."""
        for ref in refs:
            src = self.producer[ref.id]
            if src != node:
                self.edges.setdefault((src, node), ref.shape)

    def wrote(self, node: int, op) -> None:
        """Count `op` into `node` and make `node` the producer of its outputs."""
        work = count(op)
        row = self.nodes[node]
        row["macs"] += work.macs if work else 0
        row["flops"] += work.flops if work else 0
        row["ops"].append(op)
        for ref in op.outputs:
            self.producer[ref.id] = node
        if op.outputs:
            row["output_shape"] = op.outputs[0].shape
            self.made[node] = op.outputs[0].id


def from_trace(tr: Trace, model: torch.nn.Module, *, depth: int | None = None, fields: bool = False,
               name: str = "model") -> ArchGraph:
    """The graph of a trace of `model` (see `graph`)."""
    import pandas as pd

    from netprobe.analysis.graph.details import detail

    target, unit = _units(tr, depth)
    b = _Builder(tr, model)
    for i, ref in enumerate(tr.inputs):
        node = b.producer[ref.id] = b.add("input", f"input{i if len(tr.inputs) > 1 else ''}", "input", ())
        b.made[node], b.nodes[node]["output_shape"] = ref.id, ref.shape
    call_node: dict[int, int] = {}
    for op in tr.ops:
        data = [r for r in op.inputs if r.id in b.producer]
        if not data:
            continue  # parameters, constants and fresh tensors are not dataflow
        owner = target[op.call]
        call = tr.modules[owner]
        if unit[owner]:
            if owner not in call_node:
                call_node[owner] = b.add("module", call.name, call.type, _scope(tr, owner), b.params(call.name))
            node = call_node[owner]
        elif _works(op):
            opname = op.op._opname.strip("_")
            node = b.add("op", call.name, _OP_NAMES.get(opname, opname), _scope(tr, owner))
        else:  # a view or reshape in a container: its outputs come from where its input came from
            for ref in op.outputs:
                b.producer[ref.id] = b.producer[data[0].id]
            continue
        b.read(node, data)
        b.wrote(node, op)
    for i, ref in enumerate(tr.outputs):
        if ref.id in b.producer:
            out = b.add("output", f"output{i if len(tr.outputs) > 1 else ''}", "output", ())
            b.nodes[out]["output_shape"] = ref.shape
            b.read(out, [ref])
    for row in b.nodes:
        row["detail"] = detail(row.pop("ops"))
    nodes = pd.DataFrame(b.nodes, columns=NODE_COLUMNS)
    if fields:
        nodes = pd.concat([nodes, pd.DataFrame(_fields(tr, b), columns=RF_COLUMNS)], axis=1)
    edges = pd.DataFrame([(s, d, shape) for (s, d), shape in b.edges.items()], columns=EDGE_COLUMNS)
    shapes = tuple(r.shape for r in tr.inputs)
    return ArchGraph(name, shapes[0] if len(shapes) == 1 else shapes, nodes, edges,
                     pd.DataFrame([], columns=GROUP_COLUMNS), b.scopes, tr.modules)


def _fields(tr: Trace, b: _Builder) -> list[dict]:
    """Receptive field and jump of each node's output (what its last operator made)."""
    from netprobe.analysis.fields.solve import solve
    from netprobe.analysis.fields.receptive_field import axis_stats

    solved = solve(tr)
    rows = []
    for node in range(len(b.nodes)):
        ref = b.made.get(node)
        fld = solved.fields.get(ref) if ref is not None else None
        row = {}
        if fld is not None and set(solved.axes) == {"h", "w"}:
            for axis in ("h", "w"):
                stats = axis_stats(fld[axis], axis)
                row.update({f"rf_{axis}": stats[f"rf_{axis}"], f"jump_{axis}": stats[f"jump_{axis}"]})
        rows.append(row)
    return rows
