"""Renderings of a design `Comparison`: per-layer rows, totals per variant, and the savings in words."""

from __future__ import annotations

from netprobe.render.summary_view import CONVENTION, dims
from netprobe.render.tables import Format, to_csv, to_json, to_markdown, to_text_table

_HUMAN = ("params", "macs", "flops", "activation_bytes")


def savings(comparison) -> list[str]:
    """One sentence per variant after the first: how many times fewer (or more) params and MACs it has."""
    totals = comparison.totals
    first = totals.iloc[0]
    lines = []
    for _, row in totals.iloc[1:].iterrows():
        parts = []
        for key, label in (("params", "parameters"), ("macs", "MACs")):
            if row[key] and first[key]:
                ratio = first[key] / row[key]
                if ratio == 1:
                    parts.append(f"the same {label}")
                else:
                    parts.append(f"{ratio:.2f}x fewer {label}" if ratio > 1 else f"{1 / ratio:.2f}x more {label}")
        if parts:
            lines.append(f"{row['variant']} vs {first['variant']}: {', '.join(parts)} "
                         f"({row['macs']:,} vs {first['macs']:,} MACs)")
    return lines


def render_comparison(comparison, fmt: Format | str, *, layers: bool = True) -> str:
    """The comparison in a shared format; csv is the totals (or, with `layers`, the per-layer rows)."""
    fmt = Format(fmt)
    shown = comparison.layers.copy()
    shown["output_shape"] = shown["output_shape"].map(dims)
    if fmt is Format.json:
        return to_json({"title": comparison.title, "totals": comparison.totals.to_dict(orient="records"),
                        "layers": shown.to_dict(orient="records") if layers else []})
    if fmt is Format.csv:
        return to_csv(shown if layers else comparison.totals)
    notes = [*savings(comparison), CONVENTION]
    if fmt is Format.markdown:
        parts = [f"**{comparison.title}**\n", to_markdown(comparison.totals, _HUMAN)]
        if layers:
            parts.insert(1, to_markdown(shown, _HUMAN))
        return "\n".join(parts) + "\n" + "".join(f"- {n}\n" for n in notes)
    parts = [comparison.title]
    if layers:
        parts.append(to_text_table(shown, _HUMAN))
        parts.append("")
    parts.append(to_text_table(comparison.totals, _HUMAN))
    return "\n".join([*parts, *notes]) + "\n"
