"""Renderings of `Sizes`: the per-layer table, the bytes by dtype and the saved size."""

from __future__ import annotations

from netprobe.render.tables import Format, human, to_csv, to_json, to_markdown, to_text_table

_HUMAN = ("params", "trainable", "frozen", "param_bytes", "buffer_bytes")


def render_sizes(sizes, fmt: Format | str) -> str:
    """The sizes in a shared format; csv is the per-layer table with exact integers."""
    fmt = Format(fmt)
    if fmt is Format.json:
        return to_json(sizes.to_dict())
    if fmt is Format.csv:
        return to_csv(sizes.layers)
    layers = sizes.layers.assign(name=sizes.layers["name"].replace("", "(root)"))
    dtypes = "; ".join(f"{r.kind}s {r.dtype}: {r.tensors} tensors, {human(r.bytes)}B ({r.bytes:,} bytes)"
                       for r in sizes.by_dtype.itertuples())
    saved = f"state_dict on disk ~{human(sizes.state_dict_bytes)}B ({sizes.state_dict_bytes:,} bytes, estimated)"
    if fmt is Format.markdown:
        return to_markdown(layers, _HUMAN) + f"\n- {dtypes}\n- {saved}\n"
    return "\n".join([to_text_table(layers, _HUMAN), dtypes, saved]) + "\n"
