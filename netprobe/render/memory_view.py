"""Renderings of a `TrainingCost`: the per-layer table with totals, CSV, JSON and markdown; the timeline plot."""

from __future__ import annotations

from netprobe.render.figures import figure_bytes, new_figure
from netprobe.render.summary_view import dims
from netprobe.render.tables import Format, human, to_csv, to_json, to_markdown, to_text_table

_HUMAN = ("forward_macs", "forward_flops", "backward_macs", "backward_flops", "saved_bytes", "param_bytes",
          "grad_bytes", "optimizer_bytes", "recompute_flops")
NOTE = ("backward FLOPs: aten backward operators traced on the meta device (skipped input gradients not counted); "
        "saved: unique storages autograd keeps for backward; kernel workspaces are not included")


def mib(n: int) -> str:
    """Bytes as MiB with one decimal."""
    return f"{n / 2**20:,.1f} MiB"


def totals_lines(cost) -> list[str]:
    """The totals of a training step as short lines of text."""
    t, s = cost.totals, cost.settings
    amp = f", amp {s.amp}" if s.amp else ""
    lines = [f"optimizer {s.optimizer}, dtype {s.dtype}{amp}{', channels-last' if s.channels_last else ''}"
             f"{', blocks checkpointed' if s.checkpoint_blocks else ''}",
             f"params {human(t.params)}: {mib(t.param_bytes)}, grads {mib(t.grad_bytes)}, optimizer state "
             f"{mib(t.optimizer_bytes)}, saved for backward {mib(t.saved_bytes)}",
             f"FLOPs forward {human(t.forward_flops)}, backward {human(t.backward_flops)} "
             f"(MACs {human(t.forward_macs)} / {human(t.backward_macs)}), optimizer step {human(t.step_flops)}",
             f"peak {mib(t.peak_bytes)} ({t.peak_bytes:,} bytes) in the {t.peak_phase}, "
             f"at {t.peak_op} of {t.peak_module or '(root)'}"]
    if cost.plain_peak is not None:
        lines.append(f"without checkpointing the peak is {mib(cost.plain_peak)}: checkpointing saves "
                     f"{mib(cost.plain_peak - t.peak_bytes)}")
    if cost.cuda is not None:
        lines.append(f"CUDA caching allocator model: allocated peak {mib(cost.cuda.allocated)}, reserved peak "
                     f"{mib(cost.cuda.reserved)} (not yet checked on a GPU)")
    lines.append(NOTE)
    if cost.uncounted_ops:
        ops = ", ".join(f"{name} x{n}" for name, n in cost.uncounted_ops.items())
        lines.append(f"not counted (no formula, seen in the trace): {ops}")
    return lines


def to_dict(cost) -> dict:
    """JSON-ready dict with exact integers: totals, layers, the CUDA peaks and block table when present."""
    data = {"model": cost.model, "input_shape": list(cost.input_shape), "settings": vars(cost.settings).copy(),
            "totals": cost.totals.as_dict(), "layers": cost.layers.to_dict(orient="records")}
    if cost.cuda is not None:
        data["cuda"] = {"allocated_peak": cost.cuda.allocated, "reserved_peak": cost.cuda.reserved}
    if cost.blocks is not None:
        data["checkpoint_blocks"] = {"plain_peak": cost.plain_peak, "blocks": cost.blocks.to_dict(orient="records")}
    if cost.uncounted_ops:
        data["uncounted_ops"] = dict(cost.uncounted_ops)
    return data


def render_cost(cost, fmt: Format | str) -> str:
    """The training cost in one of the shared formats; csv is the layers table with exact integers."""
    fmt = Format(fmt)
    if fmt is Format.json:
        return to_json(to_dict(cost))
    if fmt is Format.csv:
        return to_csv(cost.layers)
    title = f"{cost.model}, input {dims(cost.input_shape)}: one training step"
    tables = [cost.layers] + ([cost.blocks] if cost.blocks is not None else [])
    if fmt is Format.markdown:
        body = "\n".join(to_markdown(t, _HUMAN) for t in tables)
        return f"**{title}**\n\n{body}\n" + "".join(f"- {line}\n" for line in totals_lines(cost))
    body = "\n\n".join(to_text_table(t, _HUMAN) for t in tables)
    width = max(len(line) for line in body.splitlines())
    return "\n".join([title, body, "-" * width, *totals_lines(cost)]) + "\n"


_COLORS = {"params": "tab:blue", "optimizer": "tab:purple", "input": "tab:gray", "saved": "tab:green",
           "grads": "tab:orange", "other": "tab:red"}


def timeline_plot(cost, formats=("png",)) -> dict[str, bytes]:
    """Live bytes after every operator, stacked by kind, the phases shaded and the peak marked."""
    from netprobe.analysis.memory.cost import KINDS

    tl = cost.timeline
    fig, ax = new_figure(9, 4.5)
    ax.stackplot(tl["index"], *[tl[k] / 2**20 for k in KINDS], labels=KINDS, colors=[_COLORS[k] for k in KINDS],
                 alpha=0.8)
    for phase, shade in (("backward", 0.06), ("step", 0.12)):
        rows = tl.index[tl["phase"] == phase]
        if len(rows):
            ax.axvspan(rows[0], rows[-1], color="black", alpha=shade, lw=0)
    peak = int(tl["live_bytes"].idxmax())
    ax.annotate(f"peak {mib(cost.totals.peak_bytes)}", (peak, tl["live_bytes"][peak] / 2**20),
                xytext=(0.02, 0.92), textcoords="axes fraction", arrowprops={"arrowstyle": "->"})
    ax.set_xlabel("operator (forward | backward, shaded | optimizer step, darker)")
    ax.set_ylabel("live memory (MiB)")
    s = cost.settings
    ax.set_title(f"{cost.model}, input {dims(cost.input_shape)}, {s.optimizer}, {s.dtype}")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return figure_bytes(fig, formats)
