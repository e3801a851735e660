"""Receptive fields per layer and spatial axis, from the traced operator graph (see `graph`).

For each layer (the summary's rows) and spatial axis: the receptive field size r (`rf_h`), the jump j
(input pixels between neighbouring output units, `jump_h`), the centre of output unit 0 in input pixel
coordinates (`center_h`; the effective padding is (r - 1) / 2 - center), and the smallest and largest
field over all output positions (`rf_h_min`, `rf_h_max`). Convention of Araujo, Norris & Sim, "Computing
Receptive Fields of Convolutional Neural Networks" (Distill 2019): padding positions count as part of the
field, so a chain of convolutions has one r at every position. Where the field depends on the position
(transposed convolution, upsampling, merges of misaligned paths) `rf_h` is the largest (`rf_h_max`).
Layers that see the whole input (global pooling, flatten, linear) report the input extent.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import torch

from netprobe.analysis.fields.solve import AXIS_NAMES, Axis, Graph, solve
from netprobe.analysis.counting.trace import Trace

RF_STATS = ("rf", "jump", "center", "rf_{}_min", "rf_{}_max")
LEAD_COLUMNS = ["name", "type", "depth", "output_shape"]


def rf_columns(axes=("h", "w")) -> list[str]:
    """Column names for these axes: rf_h, rf_w, jump_h, jump_w, center_h, center_w, rf_h_min, rf_h_max, ..."""
    cols = [f"{stat}_{a}" for stat in ("rf", "jump", "center") for a in axes]
    return cols + [f"rf_{a}_{end}" for a in axes for end in ("min", "max")]


def axis_stats(ax: Axis, name: str) -> dict:
    """r (largest over positions), jump, centre of unit 0 and min/max r of one solved axis."""
    inside = slice(0 - ax.a, ax.n - ax.a)
    lo, hi = ax.lo[inside], ax.hi[inside]
    sizes = np.where(hi >= lo, hi - lo + 1, 0)
    jump = ax.jump.numerator if ax.jump.denominator == 1 else float(ax.jump)
    center = (int(lo[0]) + int(hi[0])) / 2 if hi[0] >= lo[0] else math.nan
    return {f"rf_{name}": int(sizes.max()), f"jump_{name}": jump, f"center_{name}": center,
            f"rf_{name}_min": int(sizes.min()), f"rf_{name}_max": int(sizes.max())}


def call_outputs(tr: Trace) -> list[list[int]]:
    """For each module call, the ids of the tensors it returned (found by where they are read).

    A call's outputs are the tensors produced inside its slice of operators and read after it (or returned by
    the model), matched to its output shapes; a call that ran no operator (Identity) returns its input.
    """
    last_read: dict[int, int] = {}
    for i, op in enumerate(tr.ops):
        for ref in op.inputs:
            last_read[ref.id] = i
    for ref in tr.outputs:
        last_read[ref.id] = len(tr.ops)
    produced = [(-1, ref) for ref in tr.inputs] + [(i, r) for i, op in enumerate(tr.ops) for r in op.outputs]
    keys = [i for i, _ in produced]
    result = []
    for call in tr.modules:
        if call.stop > call.start:
            lo, hi = bisect.bisect_left(keys, call.start), bisect.bisect_left(keys, call.stop)
            candidates = [r for _, r in produced[lo:hi] if last_read.get(r.id, -1) >= call.stop]
        else:  # no operator ran: the output is a tensor made before the call and read after it
            candidates = [r for i, r in produced if i < call.start and last_read.get(r.id, -1) >= call.stop]
        chosen = []
        for shape in call.output_shapes:
            match = [r for r in candidates if r.shape == tuple(shape)]
            if match:
                chosen.append(match[-1].id)
        result.append(chosen)
    return result


def layer_fields(tr: Trace, calls: list[int], graph: Graph | None = None) -> tuple[list[dict], list[str]]:
    """Receptive-field columns for the given module calls of a trace (empty dicts where there is no field),
    and the analysis warnings (merges of misaligned paths, operators without a rule)."""
    graph = graph or solve(tr)
    outputs = call_outputs(tr)
    rows = []
    for i in calls:
        fld = next((graph.fields[r] for r in outputs[i] if r in graph.fields), None)
        row = {}
        if fld is not None and graph.axes:
            for name in graph.axes:
                row.update(axis_stats(fld[name], name))
        rows.append(row)
    return rows, list(dict.fromkeys(graph.warnings))


def with_rf_columns(layers, tr, calls: list[int]):
    """Summary layers (their first rows are the module calls `calls`) with receptive-field columns appended,
    empty for rows without a field; the analysis warnings go to `.attrs["rf_warnings"]`."""
    import pandas as pd

    fields, warnings = layer_fields(tr, calls)
    cols = rf_columns(AXIS_NAMES.get(len(tr.inputs[0].shape) - 2, ()))
    extra = pd.DataFrame(fields + [{}] * (len(layers) - len(fields)), columns=cols)
    for col in cols:  # integers stay integers (nullable where a row has no field)
        values = extra[col].dropna()
        if len(values) and all(float(v).is_integer() for v in values) and not col.startswith("center"):
            extra[col] = extra[col].astype("Int64")
    layers = pd.concat([layers, extra], axis=1)
    layers.attrs["rf_warnings"] = warnings
    return layers


def summary_with_fields(model: torch.nn.Module, input_size=None, *, args=None, kwargs=None,
                        depth: int | None = None, name: str | None = None):
    """The summary of `model` (inputs as `summary` takes them) with the receptive-field columns appended."""
    return summary_and_trace(model, input_size, args=args, kwargs=kwargs, depth=depth, name=name)[0]


def summary_and_trace(model: torch.nn.Module, input_size=None, **options):
    """(`summary_with_fields`' result, the operator trace it was computed from)."""
    from dataclasses import replace

    from netprobe.analysis.counting.summary import summarize

    result, tr, calls = summarize(model, input_size, **options)
    return replace(result, layers=with_rf_columns(result.layers, tr, calls)), tr


def receptive_field(model: torch.nn.Module, input_size=(1, 3, 224, 224), *, depth: int | None = None,
                    name: str | None = None):
    """Per-layer receptive field, jump and centre of `model` at `input_size`: a DataFrame with one row per
    layer of the summary (folded below `depth`) that has an output field; `.attrs["warnings"]` lists merges
    of misaligned paths and operators without a rule."""
    return fields_table(summary_with_fields(model, input_size, depth=depth, name=name))


def fields_table(result):
    """The receptive-field table (`receptive_field`) of a `summary_with_fields` result."""
    layers = result.layers
    cols = [c for c in layers.columns if c.startswith(("rf_", "jump_", "center_"))]
    table = layers[layers[cols[0]].notna()][LEAD_COLUMNS + cols].reset_index(drop=True) if cols else \
        layers[LEAD_COLUMNS].iloc[0:0]
    for col in cols:
        if col.startswith("rf_"):
            table[col] = table[col].astype("int64")
    table.attrs = {"warnings": list(layers.attrs.get("rf_warnings", [])), "model": result.model,
                   "input_shape": result.input_shape}
    return table
