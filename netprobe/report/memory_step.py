"""The report's "what training costs" section: one training step of each model, traced on the meta device."""

from __future__ import annotations

from collections import OrderedDict

from netprobe.report.registry import section
from netprobe.report.sections import Plot, Section, Table

FORMATS = ("png", "svg")
BATCH = 32  # a batch a student would use on one GPU
LESSON_BATCH = 64  # the batch of the VGG-16 question model-summary users ask


def _row(label: str, cost) -> dict:
    t = cost.totals
    return {"model": label, "batch": cost.input_shape[0], "params": t.params, "param_bytes": t.param_bytes,
            "grad_bytes": t.grad_bytes, "adam_state_bytes": t.optimizer_bytes, "saved_bytes": t.saved_bytes,
            "peak_bytes": t.peak_bytes, "peak_phase": t.peak_phase, "forward_flops": t.forward_flops,
            "backward_flops": t.backward_flops}


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _vgg_lesson(model, size) -> tuple[str, dict]:
    """VGG-16's weights against its activations at batch 64 with Adam, in words and figures."""
    from netprobe.analysis.memory.cost import Settings, training_cost

    t = training_cost(model, (LESSON_BATCH, *size), Settings(optimizer="adam"), name="vgg16").totals
    weights = t.param_bytes + t.grad_bytes + t.optimizer_bytes
    words = (f"VGG-16 at batch {LESSON_BATCH} with Adam: its {t.params / 1e6:.0f}M parameters take "
             f"{_gib(t.param_bytes)}, {_gib(weights)} with their gradients and Adam's two moments; the activations "
             f"autograd saves for backward take {_gib(t.saved_bytes)}, and the step peaks at {_gib(t.peak_bytes)} "
             f"in the {t.peak_phase}. A summary tool that counts weights only, or a forward under no_grad, "
             f"misses the larger part.")
    return words, {"batch": LESSON_BATCH, **t.as_dict()}


def _bottleneck_lesson(args: dict) -> tuple[str, dict]:
    """The Inception bottleneck's direct kxk conv against the 1x1 reduction: MACs and saved activations."""
    import torch
    from torch import nn

    from netprobe.analysis.memory.cost import Settings, training_cost

    c, h, w = args.get("input_size", (192, 28, 28))
    kernel, out, reduce = args.get("kernel", 5), args.get("out", 32), args.get("reduce", 16)
    pad = kernel // 2
    with torch.device("meta"):
        designs = {"direct": nn.Sequential(nn.Conv2d(c, out, kernel, padding=pad), nn.ReLU(inplace=True)),
                   "reduced": nn.Sequential(OrderedDict([
                       ("reduce", nn.Conv2d(c, reduce, 1)), ("relu1", nn.ReLU(inplace=True)),
                       ("conv", nn.Conv2d(reduce, out, kernel, padding=pad)), ("relu2", nn.ReLU(inplace=True))]))}
    costs = {k: training_cost(m, (BATCH, c, h, w), Settings(optimizer="sgd"), name=k).totals
             for k, m in designs.items()}
    d, r = costs["direct"], costs["reduced"]
    words = (f"The 1x1 bottleneck ({h}x{w}x{c} to {out} channels by a {kernel}x{kernel} conv, through {reduce} "
             f"channels), batch {BATCH}: forward MACs {d.forward_macs / 1e9:.2f}G direct against "
             f"{r.forward_macs / 1e9:.2f}G reduced, backward MACs {d.backward_macs / 1e9:.2f}G against "
             f"{r.backward_macs / 1e9:.2f}G; saved for backward {d.saved_bytes / 2**20:.1f} MiB against "
             f"{r.saved_bytes / 2**20:.1f} MiB (the reduced design also keeps its {reduce}-channel "
             f"intermediate; the block input is saved either way).")
    return words, {k: v.as_dict() for k, v in costs.items()}


@section("memory", order=60)
def memory_step(entries, config) -> Section:
    """Per model: one Adam training step at batch 32 (weights, gradients, state, saved activations, peak) and
    its memory timeline; then the VGG-16 and bottleneck lessons in numbers."""
    import pandas as pd

    from netprobe.analysis.memory.cost import Settings, training_cost
    from netprobe.render.memory_view import timeline_plot
    from netprobe.report.models import meta_model

    section = Section("memory", "What training costs", text=[
        "One training step (forward, cross-entropy loss, backward, Adam step) of each model, traced operator by "
        "operator on the meta device: backward FLOPs from the aten backward operators autograd runs, the bytes "
        "autograd saves for backward (unique storages, equal byte for byte to what saved_tensors_hooks sees on a "
        "real CPU step), and live memory after every operator. The CPU peak matches torch.profiler's memory "
        "events to within the convolution backward's workspace (1-2% in the tests); the CUDA comparison is "
        "still to be made."])
    rows = []
    for entry in entries:
        model, size = meta_model(entry)
        cost = training_cost(model, (BATCH, *size), Settings(optimizer="adam"), name=entry.label)
        rows.append(_row(entry.label, cost))
        section.figures[entry.label] = {"batch": BATCH, **cost.totals.as_dict()}
        section.highlights.append((f"{entry.label}: training peak at batch {BATCH}", _gib(cost.totals.peak_bytes)))
        section.plots.append(Plot(f"memory_{entry.slug}", f"Live memory over one Adam step of {entry.label}, "
                                  f"batch {BATCH}", timeline_plot(cost, FORMATS)))
        if entry.name == "vgg16" and not entry.options:
            words, figures = _vgg_lesson(model, size)
            section.text.append(words)
            section.figures["vgg16_lesson"] = figures
    if config.bottleneck is not None:
        from netprobe.report.config import bottleneck_args

        words, figures = _bottleneck_lesson(bottleneck_args(config.bottleneck))
        section.text.append(words)
        section.figures["bottleneck_lesson"] = figures
    section.tables.insert(0, Table("memory", f"One training step at batch {BATCH}, Adam, float32",
                                   pd.DataFrame(rows)))
    return section
