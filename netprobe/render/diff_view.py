"""Renderings of a `Diff`: text and markdown for reading (a pull-request comment), CSV and JSON with exact integers."""

from __future__ import annotations

from netprobe.render.summary_view import dims
from netprobe.render.tables import Format, human, to_csv, to_json, to_markdown, to_text_table

_SHOWN = ("params", "macs", "activation_bytes")


def _signed(n) -> str:
    return "0" if not n else ("+" if n > 0 else "-") + human(abs(n))


def _change(change, a, b, delta) -> str:
    if change != "changed" or a == b:
        return human(a if change == "removed" else b)
    return f"{human(a)} -> {human(b)} ({_signed(delta)})"


def _pair(a, b, show=str) -> str:
    """One side when the other is missing or equal, else 'a -> b'."""
    if a is None or b is None or a == b:
        return show(b if a is None else a)
    return f"{show(a)} -> {show(b)}"


def _readable(diff):
    """The totals and the changed layers as short strings: 'a -> b (+delta)'."""
    totals = diff.totals.assign(
        a=diff.totals["a"].map(human), b=diff.totals["b"].map(human), delta=diff.totals["delta"].map(_signed),
        ratio=diff.totals["ratio"].map(lambda r: "-" if r is None or r != r else f"{r:.4g}x"))
    layers = diff.layers
    shown = layers[["name", "change"]].assign(
        name=layers["name"].replace("", "(root)"),
        type=[_pair(a, b) for a, b in zip(layers["type_a"], layers["type_b"])],
        output_shape=[_pair(a, b, dims) for a, b in zip(layers["output_shape_a"], layers["output_shape_b"])])
    for key in _SHOWN:
        shown[key] = [_change(*values) for values in zip(layers["change"], layers[f"{key}_a"], layers[f"{key}_b"],
                                                         layers[f"{key}_delta"])]
    return totals, shown


def render_diff(diff, fmt: Format | str) -> str:
    """The diff in a shared format: csv is the changed layers with exact integers, json both tables."""
    fmt = Format(fmt)
    if fmt is Format.csv:
        return to_csv(diff.layers.assign(output_shape_a=diff.layers["output_shape_a"].map(dims),
                                         output_shape_b=diff.layers["output_shape_b"].map(dims)))
    if fmt is Format.json:
        return to_json({"a": diff.a, "b": diff.b, "totals": diff.totals.to_dict(orient="records"),
                        "layers": diff.layers.to_dict(orient="records")})
    totals, shown = _readable(diff)
    counts = ", ".join(f"{(diff.layers['change'] == c).sum()} {c}" for c in ("added", "removed", "changed"))
    if fmt is Format.markdown:
        body = to_markdown(shown) if len(shown) else "No layer changed.\n"
        return (f"**{diff.a} -> {diff.b}**: {counts} layers\n\n" + to_markdown(totals) + "\n" + body)
    body = to_text_table(shown) if len(shown) else "no layer changed"
    return "\n".join([f"{diff.a} -> {diff.b}: {counts} layers", to_text_table(totals), "", body]) + "\n"
