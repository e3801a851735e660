"""A gradient study of one model and/or its plain twin, or of the CIFAR ResNets of several depths: per-layer
gradient norms (`profile.gradient_profile`), BatchNorm response stds (`profile.response_std`) or shattered
gradients (`shattered.shattered_gradients`), at initialisation or at a checkpoint, on the twin pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from netprobe.analysis.gradients import profile as g
from netprobe.analysis.twins import Twins, fit_classes, resolve
from netprobe.errors import NetprobeError

MEASURES = ("profile", "responses", "shattered")
LINES = 4  # lines through data points for the shattered gradients
POINTS = 32  # points per line


@dataclass
class GradientStudy:
    """The per-layer table, its summary (None for responses), what was measured and where, in words, and what
    the reader should know about the figures (`warnings`)."""

    table: pd.DataFrame
    summary: pd.DataFrame | None
    title: str
    measure: str
    warnings: list[str] = field(default_factory=list)


def study(model, *, variants=("residual",), options: dict | None = None, input_size=None, weights=None,
          data: str | None = None, batch_size: int = 32, batches: int = 4, seed: int = 0, depths=None,
          measure: str = "profile", device="cpu") -> GradientStudy:
    """Measure `model` (a resolved `ModelSpec`, or a MODEL string resolved once) for each of `variants`, or the
    CIFAR ResNets of `depths` (6n+2) instead, at initialisation or at checkpoint `weights`.

    `measure`: 'profile' (gradient norms over `batches` batches of `batch_size`), 'responses' (std of every
    BatchNorm output on the first batch) or 'shattered' (input-gradient correlations along `LINES` lines).
    `device`: where the models and the batches are (`devices.resolve`).
    """
    from netprobe.devices import resolve as resolve_device

    device = resolve_device(device)
    if measure not in MEASURES:
        raise NetprobeError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    spec, options = resolve(model, options, input_size)
    if depths is not None and spec.family != "cifar_resnet":
        raise NetprobeError(f"depths sweep the CIFAR ResNets (family cifar_resnet); {spec.name} is {spec.family}")
    if weights is not None and depths is not None:
        raise NetprobeError("weights are one model's: give them without depths")
    twins = Twins.plan(spec, variants, options=options, weights=[weights] if weights else [], data=data,
                       seed=seed, loss=None if measure == "responses" else "a gradient profile needs class scores")
    dataset = twins.dataset(0)
    sampled = g.sample_batches(dataset.train.x, dataset.train.y, batch_size, batches, seed, device=device)
    if depths is not None:
        runs = [(labels, m.to(device)) for labels, m in g.cifar_models(
            depths, variants=twins.variants, seed=seed, **fit_classes(spec, options, dataset, twins.data))]
    else:
        runs = [({"variant": t.variant if spec.plain else "default"}, t.model) for t in twins.prepare(device=device)]
    table, summary, what = _measure(runs, sampled, measure, seed, trained=weights is not None)
    name = spec.name if depths is None else "CIFAR ResNets"
    where = f"at {weights}" if weights else "at initialisation"
    warnings = []
    if measure == "responses" and weights is None and any(isinstance(m, g.NORMS) for _, net in runs
                                                          for m in net.modules()):
        warnings.append("at initialisation BatchNorm normalises each batch by its own statistics with scale 1 and "
                     "shift 0, so every std is sqrt(var / (var + eps)), about 1.0; give trained weights for a "
                     "trained net's responses (He et al. Fig. 7)")
    return GradientStudy(table, summary, f"{name} {where}: {what}, data {twins.data}, seed {seed}", measure,
                         warnings)


def _measure(runs, batches, measure, seed, trained):
    """(table, summary, words) of one measure over every (labels, model) run."""
    from netprobe.analysis.gradients.shattered import lag_one, shattered_gradients

    x, y = batches[0]
    if measure == "responses":
        table = g.stack(runs, lambda m: g.response_std(m, x, train=not trained))
        return table, None, f"BN response std, batch {len(x)}"
    if measure == "shattered":
        reference = None if trained else x  # at init, BN needs statistics that centre the data
        table = g.stack(runs, lambda m: shattered_gradients(m, x[:LINES], y[:LINES], points=POINTS, seed=seed,
                                                            reference=reference))
        return table, lag_one(table), f"shattered gradients, {min(LINES, len(x))} lines x {POINTS} points"
    table = g.stack(runs, lambda m: g.gradient_profile(m, batches))
    return table, g.first_to_last(table), f"gradient norms, batch {len(x)} x {len(batches)}"
