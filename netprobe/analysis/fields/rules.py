"""Receptive-field rules: one per aten operator, each saying where every output unit reads (window in -> window out).

A rule is `rule(state, op, args, ins) -> [Field or None, one per output]`: `args` are the operator's arguments
by schema name (defaults filled in), `ins` its tensor inputs that have a field, `state` the fields so far
(`propagate.State`). A rule builds `Axis` nodes linked to its inputs' axes and never solves windows itself.
This module holds the registry and the elementwise rules; `rules_spatial` the windowed operators
(convolution, pooling, upsampling, padding, reductions) and `rules_shape` the layout operators (views,
permutes, slices, concatenation, matrix products); `graph` imports all three, so `RULES` is whole once it is.

Convention: an operator tagged pointwise by torch keeps positions (`elementwise`); any other operator without
a rule sees all of every input (`unknown`), with a warning where it mixes spatial positions.
"""

from __future__ import annotations

import numpy as np
import torch

from netprobe.analysis.fields.propagate import Axis, Field, State, whole
from netprobe.registries import registrar

aten = torch.ops.aten

RULES: dict = {}  # operator packet (aten.convolution) -> rule(state, op, args, ins) -> [Field or None per output]


rule = registrar(RULES, "rule")  # @rule(aten.op, ...): a second rule for an operator is refused


def packets(names):
    """The packets among `names` that this torch build has (in-place forms only where they are named)."""
    return [getattr(aten, name) for name in names if hasattr(aten, name)]


def named(op) -> dict:
    """The operator's arguments by schema name, defaults filled in."""
    values = {}
    for i, arg in enumerate(op.op._schema.arguments):
        if i < len(op.args):
            values[arg.name] = op.args[i]
        elif arg.name in op.kwargs:
            values[arg.name] = op.kwargs[arg.name]
        else:
            values[arg.name] = arg.default_value if arg.has_default_value() else None
    return values


def pick(values, i: int, fallback: int) -> int:
    """Entry i of a per-dimension list (a single entry applies to all dimensions; empty means `fallback`)."""
    if values is None or (isinstance(values, (list, tuple)) and not values):
        return fallback
    if isinstance(values, int):
        return values
    return int(values[i] if len(values) > 1 else values[0])


def pointwise(state: State, op, ins, out) -> Field:
    """Elementwise with broadcasting: each output unit reads the same position of every operand."""
    ndim = len(out.shape)
    fld = {}
    for axname in state.axes:
        links, jumps, target = [], [], None
        for ref in ins:
            ax = state.fields.get(ref.id, {}).get(axname)
            if ax is None:
                continue
            shift = ndim - len(ref.shape)
            if ax.dim is not None and ref.shape[ax.dim] == out.shape[ax.dim + shift]:
                target = ax.dim + shift
                links.append(("taps", ax, lambda q: [(q, None)]))
                jumps.append(ax.jump)
            else:  # broadcast from size 1, or an axis already reduced away
                links.append(("taps", ax, lambda q: [(np.zeros_like(q), None)]))
                if ax.dim is not None:
                    target = target if target is not None else ax.dim + shift
        if not links:
            continue
        n = out.shape[target] if target is not None else 1
        jump = max(jumps) if jumps else max(link[1].jump for link in links)
        label = state.merge_label(op.op._opname, out, links) if len(jumps) > 1 else None
        fld[axname] = Axis(target, n, jump, links, merge=label)
    return fld


def elementwise(state, op, args, ins) -> list:
    """Each output of the input's shape reads the same position of every operand (torch's pointwise tag)."""
    out = op.outputs[0]
    return [pointwise(state, op, ins, ref) if ref.shape == out.shape else None for ref in op.outputs]


def unknown(state, op, args, ins) -> list:
    """No rule: every output sees all of every input, warned where positions are lost."""
    # A linear layer after flatten has no positions left to lose, so it is not worth a warning.
    if any(ax.dim is not None and ax.n > 1 for r in ins for ax in state.fields[r.id].values()):
        state.unknown.setdefault(str(op.op), set()).add(op.module)
    fields = []
    for ref in op.outputs:
        fld = {}
        for axname in state.axes:
            srcs = [state.fields[r.id][axname] for r in ins if axname in state.fields[r.id]]
            if srcs:
                fld[axname] = whole(srcs, None)
        fields.append(fld)
    return fields


def default(state, op, args, ins) -> list:
    """The rule of an operator that has none registered: `elementwise` if torch tags it pointwise, else `unknown`."""
    fn = elementwise if torch.Tag.pointwise in op.op.tags else unknown
    return fn(state, op, args, ins)


@rule(*packets(("empty_like", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "randint_like",
                "new_zeros", "new_ones", "new_empty", "new_full", "new_empty_strided", "empty", "zeros", "ones",
                "full", "arange", "scalar_tensor", "fill_", "zero_", "sym_size", "sym_stride", "size", "stride",
                "_local_scalar_dense", "empty_strided", "fill")))
def no_data(state, op, args, ins) -> list:
    """Outputs that carry nothing of their tensor arguments' values have no field."""
    return [None] * len(op.outputs)


@rule(*packets(("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
                "_native_batch_norm_legit_functional", "native_group_norm", "native_layer_norm", "cudnn_batch_norm",
                "miopen_batch_norm", "_batch_norm_impl_index", "batch_norm")))
def norm(state, op, args, ins) -> list:
    """Normalisation is elementwise in its input: statistics are not part of the field, by convention."""
    return [pointwise(state, op, [args["input"]], op.outputs[0])] + [None] * (len(op.outputs) - 1)


@rule(*packets(("copy_", "copy")))
def copy(state, op, args, ins) -> list:
    """A copy reads the same position of its source (of the destination when the source has no field)."""
    src = [r for r in [args.get("src")] if r is not None and r.id in state.fields]
    return [pointwise(state, op, src or ins, op.outputs[0])]


# Shape-preserving, position-preserving operators that torch does not tag as pointwise.
rule(*packets(("clone", "contiguous", "detach", "_to_copy", "to", "dropout", "native_dropout", "alpha_dropout",
               "feature_alpha_dropout", "_conj", "resolve_conj", "resolve_neg", "prelu", "_prelu_kernel",
               "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "gelu", "gelu_", "silu",
               "silu_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "mish", "mish_", "softplus",
               "threshold", "threshold_", "rrelu_with_noise", "celu", "selu", "glu", "relu6", "masked_fill",
               "masked_fill_", "where", "clamp", "clamp_", "lerp", "addcmul", "addcdiv", "logit", "nan_to_num")))(
    elementwise)
