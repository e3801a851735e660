"""Renderings of a `Summary`: an aligned table with totals, CSV, JSON and markdown."""

from __future__ import annotations

from netprobe.render.tables import Format, human, to_csv, to_json, to_markdown, to_text_table

CONVENTION = ("MACs: multiply-accumulates of conv/linear/matmul (torchvision's GFLOPS convention); "
              "FLOPs: 2 x MACs + elementwise work (norms, activations, pooling, additions).")

_HUMAN = ("params", "trainable", "macs", "flops", "activation_bytes", "backward_flops", "saved_bytes", "grad_bytes",
          "optimizer_bytes")


def dims(shape) -> str:
    """A shape as '1x3x224x224'; several as '1x4x8x8;1x4x8x8'; none as '-'."""
    if shape is None:
        return "-"
    if shape and isinstance(shape[0], tuple):
        return ";".join(dims(s) for s in shape)
    return "x".join(str(d) for d in shape)


def _flat(layers):
    shown = layers.copy()
    for col in ("input_shape", "output_shape"):
        shown[col] = shown[col].map(dims)
    return shown


def _text_lines(summary) -> list[str]:
    t = summary.totals
    lines = [f"params {human(t.params)} ({t.params:,}), trainable {human(t.trainable_params)} "
             f"({t.trainable_params:,})",
             f"MACs {human(t.macs)} ({t.macs:,}), FLOPs {human(t.flops)} ({t.flops:,})",
             f"activations {human(t.activation_bytes)}B ({t.activation_bytes:,} bytes)",
             CONVENTION]
    training = summary.layers.attrs.get("training")
    if training:
        lines.append(f"training step (adam, see `netprobe memory`): backward FLOPs {human(training['backward_flops'])}"
                     f", saved for backward {human(training['saved_bytes'])}B, peak {human(training['peak_bytes'])}B "
                     f"in the {training['peak_phase']}")
    if summary.uncounted_ops:
        ops = ", ".join(f"{name} x{n}" for name, n in summary.uncounted_ops.items())
        lines.append(f"not counted (no formula, seen in the trace): {ops}; MACs, FLOPs and activations are partial")
    return lines


def render_summary(summary, fmt: Format | str) -> str:
    """The summary in one of the shared formats; csv is the layers table with exact integers."""
    fmt = Format(fmt)
    if fmt is Format.json:
        return to_json(summary.to_dict())
    shown = _flat(summary.layers)
    if fmt is Format.csv:
        return to_csv(shown)
    title = f"{summary.model}, input {dims(summary.input_shape)}"
    if fmt is Format.markdown:
        shown["name"] = shown["name"].map(lambda n: f"`{n}`" if n else "(root)")
        return f"**{title}**\n\n" + to_markdown(shown, _HUMAN) + "\n" + "".join(f"- {line}\n"
                                                                             for line in _text_lines(summary))
    shown["name"] = [("  " * max(d - 1, 0) + n) if n else "(root)" for n, d in zip(shown["name"], shown["depth"])]
    shown = shown.drop(columns=["depth"])
    for col in ("name", "type"):  # pandas right-aligns text; padding keeps the nesting readable
        width = max([len(col), *map(len, shown[col])])
        shown[col] = shown[col].map(lambda v, width=width: v.ljust(width))
        shown = shown.rename(columns={col: col.ljust(width)})
    body = to_text_table(shown, _HUMAN) if len(shown) else "(no layers)"
    width = max(len(line) for line in body.splitlines())
    return "\n".join([title, body, "-" * width, *_text_lines(summary)]) + "\n"
