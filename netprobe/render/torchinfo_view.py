"""A `Summary` in the layout torchinfo users know (Layer (type:depth-idx), Output Shape, Param #, Mult-Adds).

The figures are netprobe's: Mult-Adds are its MACs (torchinfo also counts each bias add, and a BatchNorm's
parameters, as mult-adds, and a transposed convolution's weight at every output rather than input position),
and a container that does no work of its own shows "--" where torchinfo repeats its output shape, since the
summary records the modules that do work.
"""

from __future__ import annotations

from torch import nn

WIDTH = 26
NAME_WIDTH = 41
RULE = 115  # torchinfo's rule length for three columns
COLUMNS = ("Output Shape", "Param #", "Mult-Adds")


def _cell(value) -> str:
    if isinstance(value, int):
        return f"{value:,}" if value else "--"  # torchinfo's mark for nothing of its own
    return str(value)


def _shape(shape) -> str:
    if shape is None:
        return "--"
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape(s) for s in shape)
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _rows(summary, model: nn.Module) -> list[tuple]:
    """(depth, label, shape, params, macs) per row: ancestors first, as torchinfo nests them."""
    counters: dict[int, int] = {}
    under: dict[int, str] = {}  # depth -> the module the tree is inside at that depth
    rows = []

    def add(name, kind, shape, params, macs):
        depth = len(name.split("."))
        counters[depth] = counters.get(depth, 0) + 1
        rows.append((depth, f"{kind}: {depth}-{counters[depth]}", shape, params, macs))
        under[depth] = name
        for deeper in [d for d in under if d > depth]:
            del under[deeper]

    for row in summary.layers.to_dict(orient="records"):
        name = row["name"]
        if not name:  # the root: its row is the table's first line
            continue
        parts = name.split(".")
        for cut in range(1, len(parts)):
            prefix = ".".join(parts[:cut])
            # Listed again on each return to it (U-Net's encoder ModuleList after each root-level pool), as
            # torchinfo does, so no row lands under a sibling.
            if under.get(cut) != prefix:
                add(prefix, type(model.get_submodule(prefix)).__name__, "--", "--", "--")
        add(name, row["type"], _shape(row["output_shape"]), int(row["params"]), int(row["macs"]))
    return rows


def torchinfo_table(summary, model: nn.Module) -> str:
    """torchinfo's table for `summary` of `model`: tree rows, then its footer of totals."""
    rule = "=" * RULE
    root = summary.layers[summary.layers["name"] == ""]["output_shape"]
    top = [_shape(root.iloc[0]) if len(root) else "--", "--", "--"]
    lines = [rule, "Layer (type:depth-idx)".ljust(NAME_WIDTH) + "".join(c.ljust(WIDTH) for c in COLUMNS).rstrip(),
             rule, type(model).__name__.ljust(NAME_WIDTH) + "".join(c.ljust(WIDTH) for c in top).rstrip()]
    for depth, label, *cells in _rows(summary, model):
        tree = "│    " * (depth - 1) + ("└─" if depth > 1 else "├─")
        lines.append((tree + label).ljust(NAME_WIDTH) + "".join(_cell(c).ljust(WIDTH) for c in cells).rstrip())
    t = summary.totals
    macs, unit = (t.macs / 1e9, "G") if t.macs >= 1e9 else (t.macs / 1e6, "M")
    lines += [rule, f"Total params: {t.params:,}", f"Trainable params: {t.trainable_params:,}",
              f"Non-trainable params: {t.params - t.trainable_params:,}", f"Total mult-adds ({unit}): {macs:.2f}",
              rule]
    return "\n".join(lines) + "\n"
