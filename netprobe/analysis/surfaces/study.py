"""A loss-surface study of one zoo model: build the residual model and/or its plain twin, bring each to the
state to slice (given weights, a brief training run with BatchNorm statistics re-estimated, or
initialisation), slice it (`landscape.surface`, or `landscape.interpolate` between two checkpoints) and
measure the roughness of every surface (`roughness.roughness`). The twins come from `netprobe.analysis.twins`.

With a work `directory`, finished points are logged there as they complete, training checkpoints every
epoch, and `resume=True` continues a killed run from what is there (refusing a directory that holds a run
with other settings); `clear_work` deletes the point logs once the caller has written its results. Under
torchrun, open `process_group` around the study: rank 0 trains and shares the weights, the grid points are
shared across the ranks (`netprobe.ranks.process_group`), and every rank returns the gathered result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from netprobe.analysis.surfaces import landscape as ls
from netprobe.analysis.surfaces.roughness import roughness
from netprobe.analysis.twins import Twins, build, checkpoint_meta, fit_classes, resolve, subset
from netprobe.errors import NetprobeError
from netprobe.devices import resolve as resolve_device
from netprobe.ranks import is_main
from netprobe.runs import check_manifest, clear_logs, json_safe, open_log, write_manifest

# BatchNorm statistics are re-estimated on this many training samples (a seeded subset): 8 batches of 256
# estimate a channel's mean and variance well, at a fraction of a pass over the data.
BN_SAMPLES = 2048
RADIUS = 0.5  # roughness: the loss range within this distance of the sliced weights
SETTINGS = ".landscape-settings.json"


@dataclass
class Slice:
    """One sliced surface: the variant, words for the weights' state, the table (x, y, loss, accuracy), the
    directions (empty for an interpolation), and how many points were computed now and resumed from a log."""

    variant: str
    state: str
    table: pd.DataFrame
    directions: list = field(default_factory=list)
    computed: int = 0
    resumed: int = 0


@dataclass
class LandscapeStudy:
    """The slices of one model (one per variant), their roughness summary and the settings that made them."""

    model: str
    options: dict
    slices: list[Slice]
    summary: pd.DataFrame  # one row per slice: model, variant, state, then the roughness measures
    dim: int
    steps: int
    span: tuple[float, float]
    samples: int
    data: str
    seed: int
    include_bn: bool

    def surface(self) -> pd.DataFrame:
        """All slices in one table; with several, a leading `variant` column tells them apart."""
        if len(self.slices) == 1:
            return self.slices[0].table
        return pd.concat([s.table.assign(variant=s.variant)[["variant", *s.table.columns]] for s in self.slices],
                         ignore_index=True)

    @property
    def warnings(self) -> list[str]:
        """What the reader should know about the slices (an evaluation path that fell back)."""
        return [w for s in self.slices for w in s.table.attrs.get("warnings", [])]

    def caption(self) -> str:
        """Model, options, weights' state and grid in words, for plot titles."""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        states = " / ".join(sorted({s.state for s in self.slices}))
        grid = f"{self.steps}x{self.steps}" if self.dim == 2 else f"{self.steps} points"
        return (f"{self.model}{f' ({opts})' if opts else ''} {states}\n{grid} over {self.span[0]:g}:{self.span[1]:g}, "
                f"{self.samples} samples of {self.data}, seed {self.seed}")


def study(model, *, variants=("residual",), options: dict | None = None, input_size=None, data: str | None = None,
          weights=(), between=None, train_epochs: int = 3, dim: int = 2, steps: int = 11,
          span: tuple[float, float] = (-1.0, 1.0), samples: int = 256, batch_size: int | None = None, seed: int = 0,
          device: str | torch.device = "cpu", include_bn: bool = False, radius: float = RADIUS, directory=None,
          resume: bool = False, progress: bool = False, compile: bool = False,
          direction_files=(), weights_state: str | None = None) -> LandscapeStudy:
    """Loss surfaces of `model` (a resolved `ModelSpec`, or a MODEL string resolved once) for each of `variants`
    ('residual', 'plain'), with their roughness.

    The state sliced: `weights` (one checkpoint per variant), else `train_epochs` epochs of SGD (batch 128,
    lr 0.1, He et al.'s step schedule) from a seeded initialisation shared by the twins, followed by
    re-estimating the BatchNorm statistics at the final weights (on `BN_SAMPLES` training samples); 0 epochs
    slices at initialisation.
    `between=(A, B)` (1-D, one variant) interpolates between two checkpoints instead. Each point is the mean
    cross-entropy and accuracy over `samples` training samples drawn with `seed`, of `data` (default: the first
    checkpoint's data, else synthetic). `compile` as `landscape.evaluate_grid`. `direction_files`: one per
    variant, saved directions (`directions_bytes`, e.g. `netprobe hessian`'s eigenvectors) to slice along instead
    of random ones. With a work `directory`, points are logged there and `resume` continues a killed run.
    `weights_state`: words for the checkpoints' state in the results (default: "at PATH").
    """
    from netprobe.analysis.surfaces.directions import directions_for

    spec, options = resolve(model, options, input_size)
    if between and data is None:
        data = checkpoint_meta(spec, between[0]).get("data")
    twins = Twins.plan(spec, variants, options=options, weights=weights, data=data, seed=seed,
                       loss="the landscape needs a cross-entropy loss", weights_state=weights_state)
    if between and (dim != 1 or len(twins.variants) != 1 or twins.weights or len(between) != 2):
        raise NetprobeError("an interpolation between two checkpoints is a 1-D slice of one variant, without "
                            "other weights")
    given = [directions_for(path, spec.name, dim) for path in direction_files]
    if given and (between or len(given) != len(twins.variants)):
        raise NetprobeError(f"{len(given)} direction file(s) for {len(twins.variants)} variant(s): give one per "
                            "variant, without an interpolation")
    dev = resolve_device(device)
    if samples > len(twins.dataset(0).train):
        raise NetprobeError(f"{samples} samples asked for: the data has {len(twins.dataset(0).train)} training "
                            "samples")
    batch_size = batch_size or (512 if dev.type == "cuda" else 64)
    grid = Grid(dim, steps, (float(span[0]), float(span[1])))
    out = None if directory is None else Path(directory)
    if out is not None:
        _settings(out, resume, _manifest(twins, between, train_epochs, grid, samples, batch_size, dev, include_bn,
                                         direction_files))
    run = dict(samples=samples, batch_size=batch_size, include_bn=include_bn, out=out, resume=resume,
               progress=progress, compile=compile, device=dev)
    if between:
        slices = [_interpolation(twins, between, grid, run)]
    else:
        fit = dict(recalibrate=BN_SAMPLES, resume=resume)
        slices = []
        for k, twin in enumerate(twins.prepare(train_epochs=train_epochs, progress=progress, fit_options=fit,
                                               checkpoints=out, device=dev)):
            slices.append(_slice(twins, twin, given[k] if given else None, grid, run))
    summary = pd.DataFrame([{"model": spec.name, "variant": s.variant, "state": s.state,
                             **roughness(s.table, radius)} for s in slices])
    return LandscapeStudy(spec.name, {k: v for k, v in twins.options.items() if k != "plain"}, slices, summary,
                          dim, steps, grid.span, samples, twins.data, seed, include_bn)


@dataclass(frozen=True)
class Grid:
    """The slice's grid: 1-D or 2-D, points per axis, the span of each axis."""

    dim: int
    steps: int
    span: tuple[float, float]

    def axes(self):
        """(xs, ys, coordinates in table order); ys is None for a 1-D slice."""
        xs = ls.axis(*self.span, self.steps)
        ys = ls.axis(*self.span, self.steps) if self.dim == 2 else None
        return xs, ys, ls.grid(xs, ys)


def _manifest(twins, between, train_epochs, grid, samples, batch_size, dev, include_bn, direction_files) -> dict:
    """The settings a resume must match. Keys given only when set, so runs recorded before them still resume."""
    built = json_safe(twins.recorded_options())
    return dict(model=twins.spec.name, input_size=list(twins.spec.input_size), variants=twins.variants,
                weights=twins.weights, train_epochs=train_epochs, dim=grid.dim, steps=grid.steps,
                range=list(grid.span), data=twins.data, samples=samples, batch_size=batch_size, seed=twins.seed,
                device=dev.type, include_bn=include_bn, between=list(between or []),
                **({"options": built} if built else {}),
                **({"directions": [str(p) for p in direction_files]} if direction_files else {}))


def _slice(twins, twin, given, grid, run) -> Slice:
    """Slice one prepared twin along its given directions, else random filter-normalised ones."""
    from netprobe.analysis.surfaces.directions import random_directions

    x, y = subset(twin.dataset.train, run["samples"], twins.seed)
    directions = given or random_directions(twin.model, grid.dim, seed=twins.seed, include_bn=run["include_bn"])
    twin.model.to(run["device"])
    xs, ys, coords = grid.axes()
    table, done = _evaluate(twins, twin.variant, coords, run,
                            lambda common: ls.surface(twin.model, x, y, directions, xs, ys, **common))
    return Slice(twin.variant, twin.state, table, directions, len(coords) - len(done), len(done))


def _interpolation(twins, between, grid, run) -> Slice:
    """The 1-D slice (1 - alpha) A + alpha B between two checkpoints of the one variant."""
    from netprobe.train.checkpoint import describe, load_checkpoint, mismatch

    variant = twins.variants[0]
    options = fit_classes(twins.spec, twins.build_options(0), twins.dataset(0), twins.data)
    model = build(twins.spec, options, twins.seed)
    states = []
    for path in between:
        state, meta = load_checkpoint(path)
        problem = mismatch(model, state)
        if problem is not None:
            raise NetprobeError(f"{path} does not fit {twins.spec.name} ({variant}): {problem} "
                                f"(it was trained for {describe(meta)})")
        states.append(state)
    model.load_state_dict(states[0])
    model.to(run["device"])
    x, y = subset(twins.dataset(0).train, run["samples"], twins.seed)
    xs, _, coords = grid.axes()
    table, done = _evaluate(twins, variant, coords, run,
                            lambda common: ls.interpolate(model, states[0], states[1], xs, x, y, **common))
    return Slice(variant, f"between {between[0]} (0) and {between[1]} (1)", table, [], len(coords) - len(done),
                 len(done))


def _evaluate(twins, variant, coords, run, slice_with):
    """Run `slice_with(options)` with the point log of `variant` open (resumed points skipped); (table, done)."""
    if run["out"] is None:
        done, log = {}, None
    else:
        done, log = open_log(run["out"], f"surface-{variant}", coords, resume=run["resume"])
    common = dict(batch_size=run["batch_size"], progress=run["progress"] and is_main(), done=done,
                  on_point=None if log is None else log.append, desc=f"{twins.spec.name} {variant}",
                  compile=run["compile"])
    try:
        return slice_with(common), done
    finally:
        if log is not None:
            log.close()


def clear_work(directory, variants) -> None:
    """Delete the point logs of a finished study (call once its results are safely written)."""
    if is_main():
        for variant in variants:
            clear_logs(directory, f"surface-{variant}")


def _settings(out: Path, resume: bool, settings: dict) -> None:
    """Record the run's settings in `out`; when resuming, refuse a directory holding a run with other settings."""
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise NetprobeError(f"cannot create {out}: {exc.strerror}") from None
    path = out / SETTINGS
    if resume and path.exists():
        check_manifest(path, settings, "a landscape run's settings file")
    write_manifest(path, settings)
