"""What a drawn node and edge say, shared by the SVG, PNG, Mermaid and dot outputs of `netprobe graph`."""

from __future__ import annotations

import math

from netprobe.errors import NetprobeError
from netprobe.render.tables import human

SHOW_FIELDS = ("shape", "params", "macs", "rf")
_SYMBOLS = {"add": "+ add", "cat": "concat"}
_MERGES = {"add", "cat", "mul", "sub", "stack"}


def check_show(fields) -> tuple[str, ...]:
    """The --show fields, validated: a subset of SHOW_FIELDS, in the order given."""
    unknown = [f for f in fields if f not in SHOW_FIELDS]
    if unknown:
        raise NetprobeError(f"unknown --show field {unknown[0]!r} (choose from {', '.join(SHOW_FIELDS)})")
    return tuple(dict.fromkeys(fields))


def shape_text(shape) -> str:
    """A tensor shape without its batch dimension, as the papers write it: '64x56x56'."""
    return "x".join(str(d) for d in shape[1:]) if shape and len(shape) > 1 else "x".join(map(str, shape or ()))


def node_lines(row: dict, show=("shape",), repeat: int = 1) -> list[str]:
    """The lines of a node's label: its name, what it is, then the --show figures it has."""
    times = f"  x{repeat}" if repeat > 1 else ""
    if row["kind"] in ("input", "output"):
        lines = [row["name"] + times, shape_text(row["output_shape"])]
    elif row["kind"] == "op":
        lines = [_SYMBOLS.get(row["type"], row["type"]) + times, f"in {row['name'] or '(model)'}"]
    else:
        lines = [(row["name"] or "(model)") + times, f"{row['type']} {row['detail']}".strip()]
    if "params" in show and row["params"]:
        lines.append(f"params {row['params']:,}")
    if "macs" in show and row["macs"]:
        lines.append(f"MACs {human(row['macs'])}")
    rf = row.get("rf_h")
    if "rf" in show and rf is not None and not (isinstance(rf, float) and math.isnan(rf)):
        lines.append(f"rf {int(rf)}x{int(row['rf_w'])}, jump {_number(row['jump_h'])}")
    return lines


def _number(value) -> str:
    return str(int(value)) if float(value).is_integer() else f"{float(value):.3g}"


def category(row: dict) -> str:
    """The colour class of a node: input, merge, conv, norm, act, pool, linear or other."""
    kind, kind_type, detail = row["kind"], row["type"].lower(), row["detail"]
    if kind in ("input", "output"):
        return "io"
    if kind == "op" and kind_type in _MERGES:
        return "merge"
    if "conv" in detail or "conv" in kind_type:
        return "conv"
    if "pool" in detail or "pool" in kind_type:
        return "pool"
    if "norm" in kind_type:
        return "norm"
    if ">" in detail or "linear" in kind_type:
        return "linear"
    if kind_type in ("relu", "tanh", "sigmoid", "gelu", "silu", "hardtanh", "leakyrelu", "elu", "softmax"):
        return "act"
    return "other"


def is_merge(row: dict) -> bool:
    """Whether the node joins paths (the + of a residual block, a concatenation)."""
    return category(row) == "merge"


def skip_edges(g) -> set[tuple[int, int]]:
    """The edges drawn as skips: past at least one layer into an addition (a residual shortcut, with its
    downsample if any), or into a concatenation from a tensor that also goes elsewhere (a U-Net bridge, a
    DenseNet link); an Inception branch ending in its concatenation is not one."""
    import collections

    from netprobe.render.graph_layout import ranks

    rows = {r["id"]: r for r in g.nodes.to_dict(orient="records")}
    edges = list(zip(g.edges["src"], g.edges["dst"]))
    rank = ranks(list(rows), edges)
    fanout = collections.Counter(s for s, _ in edges)
    return {(s, d) for s, d in edges if is_merge(rows[d]) and rank[d] - rank[s] > 1
            and (rows[d]["type"] == "add" or fanout[s] > 1)}
