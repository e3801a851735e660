"""What changed between two summaries (two models, or two saved `summary --format json` files): per-layer
added, removed and changed rows, matched by layer name, and the delta of every total.

A layer is changed when its type, output shape or any of its counts differ; layers that are equal are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from netprobe.errors import NetprobeError

COUNTS = ("params", "trainable", "macs", "flops", "activation_bytes")
LAYER_COLUMNS = ["name", "change", "type_a", "type_b", "output_shape_a", "output_shape_b",
                 *(f"{key}_{side}" for key in COUNTS for side in ("a", "b", "delta"))]
TOTAL_COLUMNS = ["total", "a", "b", "delta", "ratio"]


@dataclass
class Diff:
    """Two summaries compared: their names, the changed layers and the totals side by side."""

    a: str
    b: str
    layers: object  # pandas.DataFrame with LAYER_COLUMNS
    totals: object  # pandas.DataFrame with TOTAL_COLUMNS


def load_summary(path) -> dict:
    """A summary saved by `summary --format json` (any schema version that has "totals" and "layers")."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise NetprobeError(f"cannot read {path} as a summary JSON: {exc}") from None
    if not (isinstance(data, dict) and isinstance(data.get("totals"), dict) and isinstance(data.get("layers"), list)
            and all(isinstance(v, int) for v in data["totals"].values())
            and all(isinstance(row, dict) and "name" in row for row in data["layers"])):
        raise NetprobeError(f"{path} is not a summary JSON (no totals and layers): save one with "
                            "`netprobe summary MODEL --format json -o FILE`")
    return data


def _as_dict(summary) -> dict:
    return summary if isinstance(summary, dict) else summary.to_dict()


def _shape(value):
    """Shapes as nested tuples, whether they come from a Summary or from JSON lists."""
    return tuple(_shape(v) for v in value) if isinstance(value, (list, tuple)) else value


def _row(name, change, a, b) -> dict:
    row = {"name": name, "change": change, "type_a": a.get("type"), "type_b": b.get("type"),
           "output_shape_a": _shape(a.get("output_shape")), "output_shape_b": _shape(b.get("output_shape"))}
    for key in COUNTS:
        va, vb = a.get(key, 0) or 0, b.get(key, 0) or 0
        row.update({f"{key}_a": va, f"{key}_b": vb, f"{key}_delta": vb - va})
    return row


def diff(a, b) -> Diff:
    """Compare summaries `a` and `b` (Summary objects or their JSON dicts)."""
    import pandas as pd

    da, db = _as_dict(a), _as_dict(b)
    la = {row["name"]: row for row in da["layers"]}
    lb = {row["name"]: row for row in db["layers"]}
    rows = []
    for name in [*la, *(n for n in lb if n not in la)]:  # A's order, then B's new layers
        if name not in lb:
            rows.append(_row(name, "removed", la[name], {}))
        elif name not in la:
            rows.append(_row(name, "added", {}, lb[name]))
        else:
            row = _row(name, "changed", la[name], lb[name])
            if row["type_a"] != row["type_b"] or row["output_shape_a"] != row["output_shape_b"] or any(
                    row[f"{key}_delta"] for key in COUNTS):
                rows.append(row)
    totals = [{"total": key, "a": va, "b": db["totals"].get(key, 0), "delta": db["totals"].get(key, 0) - va,
               "ratio": round(db["totals"].get(key, 0) / va, 4) if va else None}
              for key, va in da["totals"].items()]
    return Diff(da.get("model", "A"), db.get("model", "B"), pd.DataFrame(rows, columns=LAYER_COLUMNS),
                pd.DataFrame(totals, columns=TOTAL_COLUMNS))
