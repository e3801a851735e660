"""The report's analyses: each step runs one library analysis and returns a `Section`."""

from __future__ import annotations

import contextlib

import torch

from netprobe.render.tables import human
from netprobe.report.sections import Plot, Section, Table

FORMATS = ("png", "svg")


def _meta_model(entry):
    from netprobe.analysis.loading import load_model

    loaded = load_model(entry.name, {k: v for k, v in entry.options.items() if k not in ("plain", "preact")},
                        plain=bool(entry.options.get("plain")), preact=bool(entry.options.get("preact")))
    return loaded.model, tuple(entry.input_size or loaded.input_size)


def overview(config, summaries) -> Section:
    """Models at a glance: totals of every summarised model and the params-vs-MACs chart."""
    import pandas as pd

    from netprobe.render.summary_plots import models_glance

    rows = [{"model": entry.label, "input": "x".join(map(str, size)), **result.totals.as_dict()}
            for entry, size, result in summaries]
    totals = pd.DataFrame(rows, columns=["model", "input", "params", "trainable_params", "macs", "flops",
                                         "activation_bytes"])
    section = Section("models", "Models at a glance", text=[
        "Parameters and multiply-accumulates (MACs) of every model at its default input, batch 1, counted "
        "from one traced pass on the meta device. MACs count conv/linear/matmul multiply-accumulates "
        "(torchvision's GFLOPS convention); FLOPs are 2 x MACs plus the elementwise work."])
    section.tables.append(Table("models", "Totals per model", totals))
    if len(totals):
        section.plots.append(Plot("models_glance", "Parameters against MACs, one point per model",
                                  models_glance(totals, FORMATS)))
    section.figures = {r["model"]: {k: r[k] for k in ("input", "params", "macs", "flops", "activation_bytes")}
                       for r in rows}
    section.highlights = [(r["model"], f"{r['params']:,} params, {human(r['macs'])} MACs") for r in rows]
    return section


def summary_step(entry):
    """Per-layer summary of one model: the table, its cost bars and activation memory."""
    from netprobe.analysis.summary import summary
    from netprobe.render.summary_plots import activation_memory, layer_costs
    from netprobe.render.summary_view import dims

    model, size = _meta_model(entry)
    result = summary(model, (1, *size), name=entry.label)
    layers = result.layers.copy()
    for col in ("input_shape", "output_shape"):
        layers[col] = layers[col].map(dims)
    t = result.totals
    section = Section(f"summary_{entry.slug}", f"{entry.label}: layers, parameters and MACs", text=[
        f"Input {'x'.join(map(str, size))}: {t.params:,} parameters, {t.macs:,} MACs ({human(t.macs)}), "
        f"{t.flops:,} FLOPs, {t.activation_bytes:,} bytes of output activations at batch 1."])
    section.tables.append(Table(f"summary_{entry.slug}", f"Per-layer summary of {entry.label}", layers))
    section.plots.append(Plot(f"layers_{entry.slug}", f"Parameters and MACs per layer of {entry.label}",
                              layer_costs(result.layers, f"{entry.label}, input {'x'.join(map(str, size))}",
                                          FORMATS)))
    section.plots.append(Plot(f"activations_{entry.slug}", f"Activation memory per layer of {entry.label}",
                              activation_memory(result.layers, f"{entry.label}: output activations per layer",
                                                FORMATS)))
    section.figures = result.totals.as_dict()
    return section, size, result


def design_step(config) -> Section:
    """The Inception bottleneck and the textbook design comparisons."""
    from netprobe.analysis import design

    section = Section("design", "Design arithmetic", text=[
        "The case studies' hand arithmetic, counted by the same engine as the summaries."])
    comparisons = []
    if config.bottleneck is not None:
        b = dict(config.bottleneck)
        h, w, c = (int(d) for d in b.pop("input", "28x28x192").split("x"))
        comparisons.append(("bottleneck", design.bottleneck((c, h, w), **b)))
    for case in config.cases:
        build = design.stacked_convs if case == "3x3-vs-7x7" else design.residual_blocks
        comparisons.append((case.replace("-", "_"), build()))
    from netprobe.render.comparison_view import savings

    for name, comparison in comparisons:
        section.tables.append(Table(name, comparison.title, comparison.totals))
        section.text.extend(f"{comparison.title}: {line}." for line in savings(comparison))
        section.figures[name] = comparison.totals[["variant", "params", "macs"]].to_dict(orient="records")
        first, *rest = comparison.totals.to_dict(orient="records")
        section.highlights += [(f"{name}: {r['variant']}", f"{r['macs']:,} MACs vs {first['macs']:,}") for r in rest]
    return section


STEPS: dict = {}  # analysis name -> step(entries, config) -> Section, for the multi-model analyses


@contextlib.contextmanager
def seeded(seed: int):
    """Set torch's global seed for one step and restore the RNG state after, so steps stay independent."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
