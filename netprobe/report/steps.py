"""The report's analyses: each step runs one library analysis and returns a `Section`."""

from __future__ import annotations

import contextlib

import torch

from netprobe.render.tables import human
from netprobe.report.models import traced
from netprobe.report.registry import section
from netprobe.report.sections import Plot, Section, Table

FORMATS = ("png", "svg")


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
    from dataclasses import replace

    from netprobe.render.summary_plots import activation_memory, layer_costs
    from netprobe.render.summary_view import dims

    with_fields, size = traced(entry)
    counted = [c for c in with_fields.layers.columns if not c.startswith(("rf_", "jump_", "center_"))]
    result = replace(with_fields, layers=with_fields.layers[counted])
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
    from netprobe.analysis.counting import design

    section = Section("design", "Design arithmetic", text=[
        "The case studies' hand arithmetic, counted by the same engine as the summaries."])
    comparisons = []
    if config.bottleneck is not None:
        from netprobe.report.config import bottleneck_args

        comparisons.append(("bottleneck", design.bottleneck(**bottleneck_args(config.bottleneck))))
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


@section("receptive_field", order=10)
def receptive_field_step(entries, config) -> Section:
    """Receptive field, jump and centre per layer of each model, and the growth of r with depth."""
    from netprobe.analysis.fields.receptive_field import fields_table
    from netprobe.render.rf_plots import rf_by_depth

    section = Section("receptive_field", "Receptive fields", text=[
        "For every layer: the receptive field r (input pixels one output unit sees), the jump j (input "
        "pixels between neighbouring output units) and the centre of output unit 0, per spatial axis, "
        "computed from the traced operator graph, so branches, shortcuts and concatenations are followed "
        "exactly; rf_*_min/max differ where the field depends on the position (padding at the border)."])
    tables, inputs = {}, {}
    for entry in entries:
        with_fields, size = traced(entry)
        inputs[entry.label] = size
        table = fields_table(with_fields)
        tables[entry.label] = table
        section.tables.append(Table(f"rf_{entry.slug}", f"Receptive fields of {entry.label}", table))
        last = _widest_spatial(table)
        section.figures[entry.label] = {"layers": len(table), "last_spatial_layer": last["name"],
                                        "rf": [int(last["rf_h"]), int(last["rf_w"])],
                                        "jump": [int(last["jump_h"]), int(last["jump_w"])]}
        section.highlights.append((f"{entry.label}: field of {last['name']}",
                                   f"{int(last['rf_h'])}x{int(last['rf_w'])} px, jump {int(last['jump_h'])}"))
        section.text.extend(f"{entry.label}: {w}" for w in table.attrs.get("warnings", []))
    section.plots.append(Plot("rf_by_depth", "Receptive field against layer index",
                              rf_by_depth(tables, FORMATS, inputs=inputs)))
    return section


def _widest_spatial(table):
    """The layer with spatial output whose field is largest (the last such): where the field is worth quoting."""
    spatial = [i for i, shape in enumerate(table["output_shape"]) if len(shape) == 4 and shape[2] > 1]
    if not spatial:
        return table.iloc[-1]
    return table.iloc[max(spatial, key=lambda i: (table["rf_h"][i], i))]


@section("gradients", order=20, twins=True,
         settings={"batch_size": (int, 1, 4096, 64), "batches": (int, 1, 1000, 4)})
def gradients_step(entries, config) -> Section:
    """Gradient-norm profiles of each residual model and its plain twin, at initialisation on the embedded data."""
    import pandas as pd

    from netprobe.analysis.gradients.study import study
    from netprobe.analysis.twins import VARIANTS
    from netprobe.render.gradient_plots import plot_profile

    size, count = config.settings["gradients"]["batch_size"], config.settings["gradients"]["batches"]
    section = Section("gradients", "Gradients: plain against residual", text=[
        "He et al. (2016) find deep plain networks hard to optimise and shortcuts the fix; Balduzzi et al. "
        "(2017) trace it to gradients that degrade with depth. Below: the L2 norm of d loss / d weight for "
        f"every weighted layer at initialisation, mean cross-entropy on the embedded synthetic data, "
        f"{count} batches of {size} (BatchNorm in train mode), the spread over batches shaded. "
        "first_to_last is the first layer's norm over the last one's: 1 means the gradient reaches the "
        "input intact."])
    summaries = []
    for entry in entries:
        options = {k: v for k, v in entry.options.items() if k != "plain"}
        result = study(entry.name, variants=VARIANTS, options=options, input_size=entry.input_size,
                       data="synthetic", batch_size=size, batches=count, seed=config.seed, device=config.device)
        table = result.table
        section.text.extend(f"{entry.label}: {w}" for w in result.warnings)
        summary = result.summary.copy()
        summary.insert(0, "model", entry.label)
        summaries.append(summary)
        section.tables.append(Table(f"gradients_{entry.slug}", f"Per-layer gradient norms of {entry.label} "
                                    "and its plain twin", table))
        section.plots.append(Plot(f"gradients_{entry.slug}", f"Gradient norm against depth, {entry.label}",
                                  plot_profile(table, f"{entry.label} at initialisation: gradient norms, batch "
                                               f"{size} x {count}, seed {config.seed}", FORMATS)))
        ratios = dict(zip(summary["variant"], summary["first_to_last"]))
        section.text.append(f"{entry.label}, measured: first/last gradient-norm ratio {ratios['residual']:.3g} "
                            f"with shortcuts ({_trend(ratios['residual'])}), {ratios['plain']:.3g} without "
                            f"({_trend(ratios['plain'])}).")
        section.figures[entry.label] = {v: round(float(r), 6) for v, r in ratios.items()}
        section.highlights += [(f"{entry.label} {v}: first/last gradient norm", f"{r:.3g}")
                               for v, r in ratios.items()]
    section.tables.insert(0, Table("gradients_summary", "First/last gradient-norm ratios",
                                   pd.concat(summaries, ignore_index=True)))
    return section


def _trend(ratio: float) -> str:
    """Words for a first/last gradient-norm ratio: within 10x either way counts as intact."""
    if ratio > 10:
        return f"the gradient grows {ratio:.0f}x toward the input: it explodes rather than vanishes"
    if ratio < 0.1:
        return f"the gradient shrinks {1 / ratio:.0f}x toward the input: it vanishes"
    return "within 10x end to end"


@section("landscape", order=50, twins=True, needs=("depth",),
         settings={"steps": (int, 2, 201, 11), "samples": (int, 1, 50000, 256),
                   "train_epochs": (int, 0, 1000, 3), "depth_checkpoints": (bool, None, None, False)})
def landscape_step(entries, config, work=None) -> Section:
    """Loss surfaces of each residual model and its plain twin, briefly trained on the embedded data first, or
    at the depth study's checkpoints of its depth when [landscape] depth_checkpoints is set and this report
    trained them."""
    import pandas as pd

    from netprobe.report.depth_step import checkpoint_state, depth_checkpoints

    from netprobe.analysis.surfaces.study import RADIUS, study
    from netprobe.render.landscape_plots import plot_contours
    from netprobe.report.config import ModelEntry

    s = config.settings["landscape"]
    steps, samples, epochs, from_depth = s["steps"], s["samples"], s["train_epochs"], s["depth_checkpoints"]
    section = _landscape_intro(s)
    summaries = []
    for entry in entries:
        options = {k: v for k, v in entry.options.items() if k != "plain"}
        twin = ModelEntry(entry.name, options, entry.input_size, entry.analyses)  # labels without plain=
        weights = depth_checkpoints(entry, work) if from_depth else None
        result = study(entry.name, variants=("residual", "plain"), options={} if weights else options,
                       input_size=entry.input_size, weights=weights or (), train_epochs=0 if weights else epochs,
                       steps=steps, samples=samples, seed=config.seed, device=config.device,
                       # words, not the run's temporary checkpoint paths, so reruns give equal bytes
                       weights_state=checkpoint_state(weights[0]) if weights else None)
        summary = result.summary.drop(columns="model")
        summary.insert(0, "model", twin.label)
        summaries.append(summary)
        section.tables.append(Table(f"landscape_{twin.slug}", f"Loss and accuracy over the grid, {twin.label} and "
                                    "its plain twin", result.surface()))
        section.plots.append(Plot(f"landscape_{twin.slug}", f"Loss contours of {twin.label}, residual (left) and "
                                  "plain (right), shared levels",
                                  plot_contours([(s.variant, s.table) for s in result.slices], result.caption(),
                                                FORMATS)))
        rows = {r["variant"]: r for r in result.summary.to_dict(orient="records")}
        if from_depth and not weights:  # the dependency is stated, not silently replaced
            section.text.append(f"{twin.label}: the depth section did not train these twins in this report, so "
                                f"they are sliced {rows['residual']['state']}.")
        section.text.append(_roughness_words(twin.label, rows["residual"], rows["plain"], steps))
        section.text.append(_surface_finding(rows["residual"], rows["plain"], weights))
        section.text.extend(f"{twin.label}: {w}" for w in result.warnings)
        keys = ("loss_at_origin", f"loss_range_r{RADIUS:g}", "mean_abs_d2", "local_minima", "nonfinite_points")
        section.figures[twin.label] = {"state": rows["residual"]["state"], "grid": f"{steps}x{steps}",
                                       **{v: {k: _json_number(r[k]) for k in keys} for v, r in rows.items()}}
        section.highlights += [(f"{twin.label} {v}: loss range within {RADIUS:g}, mean |2nd difference|",
                                f"{r[keys[1]]:.3g}, {r['mean_abs_d2']:.3g}") for v, r in rows.items()]
    section.tables.insert(0, Table("landscape_summary", "Roughness of each loss surface",
                                   pd.concat(summaries, ignore_index=True)))
    return section


def _landscape_intro(s: dict) -> Section:
    """The landscape section with its opening paragraph: what is sliced, how, and the roughness measures."""
    from netprobe.analysis.surfaces.study import RADIUS
    from netprobe.analysis.twins import TRAIN_BATCH, TRAIN_LR

    steps, samples, epochs = s["steps"], s["samples"], s["train_epochs"]
    trained = (f"after {epochs} epoch{'s' * (epochs != 1)} of SGD on the embedded synthetic data (batch {TRAIN_BATCH}, "
               f"lr {TRAIN_LR:g}), with the BatchNorm statistics re-estimated at the final weights"
               if epochs else "at initialisation (no training)")
    if s["depth_checkpoints"]:
        trained = f"at the depth study's checkpoints of the same depth when this report trained them, else {trained}"
    return Section("landscape", "Loss surfaces: plain against residual", text=[
        "Li et al. (2018) show the loss surface of a ResNet turning chaotic when its shortcuts are removed. "
        f"Below: each residual model and its plain twin (same seed, same initial weights), {trained}. The loss "
        f"(mean cross-entropy over {samples} training samples, BatchNorm in eval mode) is evaluated at "
        f"w + a d1 + b d2 on a {steps}x{steps} grid of a, b in [-1, 1], where d1, d2 are random Gaussian "
        "directions with every filter scaled to the norm of the same filter of w (filter-normalised units). "
        f"Roughness: loss_range_r{RADIUS:g} is max - min of the loss within distance {RADIUS:g} of w; mean_abs_d2 "
        "is the mean |f(i-1) - 2 f(i) + f(i+1)| along every grid line (0 for a plane); local_minima counts "
        "interior grid points below all 8 neighbours. The contour plots share their levels."])


def _json_number(value):
    """A float rounded to 6 significant digits for report.json (ints stay ints)."""
    return value if isinstance(value, int) else float(f"{value:.6g}")


def _roughness_words(label: str, residual: dict, plain: dict, steps: int) -> str:
    """The plain-vs-residual roughness of one model in a sentence, with the measured numbers."""
    import math

    from netprobe.analysis.surfaces.study import RADIUS

    key = f"loss_range_r{RADIUS:g}"

    def ratio(a, b):
        return f" ({b / a:.3g}x)" if a > 0 and math.isfinite(b) else ""

    words = (f"{label}, measured {residual['state']}: loss at the weights {residual['loss_at_origin']:.3g} with "
             f"shortcuts, {plain['loss_at_origin']:.3g} without; within {RADIUS:g} of the weights the loss varies "
             f"by {residual[key]:.3g} with shortcuts and {plain[key]:.3g} without{ratio(residual[key], plain[key])}; "
             f"mean |second difference| {residual['mean_abs_d2']:.3g} with and {plain['mean_abs_d2']:.3g} without"
             f"{ratio(residual['mean_abs_d2'], plain['mean_abs_d2'])}; local minima on the {steps}x{steps} grid: "
             f"{residual['local_minima']} with, {plain['local_minima']} without.")
    return words


def _surface_finding(residual: dict, plain: dict, weights) -> str:
    """What the two surfaces show beside Li et al.'s finding; why the two roughness figures may disagree; no
    conclusion when a twin (at the depth study's checkpoints) has not learned."""
    from netprobe.analysis.surfaces.study import RADIUS
    from netprobe.report.depth_step import checkpoint_accuracy
    from netprobe.report.verdicts import not_learned

    key = f"loss_range_r{RADIUS:g}"
    known = [checkpoint_accuracy(w) for w in weights or ()]
    if known and None not in known:
        (residual_acc, chance), (plain_acc, _) = known
        accuracy = {"residual": residual_acc, "plain": plain_acc}
        stated = (f"Test accuracy at these weights: {accuracy['residual']:.3f} with shortcuts, "
                  f"{accuracy['plain']:.3f} without. ")
        refused = not_learned(list(accuracy.items()), chance, "the surfaces' shapes")
        if refused:
            return stated + refused
    else:
        stated = ""
    rougher = plain["mean_abs_d2"] > residual["mean_abs_d2"]
    words = stated + ("As Li et al. find, the plain twin's surface is the rougher one (mean |second difference| "
                      f"{plain['mean_abs_d2']:.3g} against {residual['mean_abs_d2']:.3g})." if rougher else
                      "Unlike Li et al.'s trained nets, the plain twin's surface is the smoother one here (mean "
                      f"|second difference| {plain['mean_abs_d2']:.3g} against {residual['mean_abs_d2']:.3g}).")
    if (plain[key] > residual[key]) != rougher:
        lower = "residual" if residual["loss_at_origin"] < plain["loss_at_origin"] else "plain"
        words += (f" The loss range within {RADIUS:g} says the opposite because it measures how far the loss climbs "
                  f"near the weights, not how irregular the surface is: the {lower} twin sits lower (loss "
                  f"{min(residual['loss_at_origin'], plain['loss_at_origin']):.3g} against "
                  f"{max(residual['loss_at_origin'], plain['loss_at_origin']):.3g}), in a deeper basin, so the same "
                  "step climbs further; the second difference compares the surfaces' irregularity over the whole grid.")
    return words


@contextlib.contextmanager
def seeded(seed: int):
    """Set torch's global seed for one step and restore the RNG state after, so steps stay independent."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
