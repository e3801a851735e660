"""A loss-surface study of one zoo model: build the residual model and/or its plain twin, bring each to the
state to slice (given weights, a brief training run with BatchNorm statistics re-estimated, or
initialisation), slice it (`landscape.surface`, or `landscape.interpolate` between two checkpoints) and
measure the roughness of every surface (`roughness.roughness`).

With a work `directory`, finished points are logged there as they complete, training checkpoints every
epoch, and `resume=True` continues a killed run from what is there (refusing a directory that holds a run
with other settings); `clear_work` deletes the point logs once the caller has written its results. Under
torchrun, open `netprobe.ranks.process_group` around the study: rank 0 trains and shares the weights, the grid
points are shared across the ranks, and every rank returns the gathered result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from netprobe.analysis.surfaces import landscape as ls
from netprobe.analysis.surfaces.roughness import roughness
from netprobe.analysis.variants import check_variants, checkpoint_meta, dataset_for, fit_classes
from netprobe.devices import resolve
from netprobe.errors import NetprobeError
from netprobe.ranks import barrier

TRAIN_BATCH = 128  # SGD settings of the brief training before a slice (He et al.'s CIFAR batch and learning rate)
TRAIN_LR = 0.1
# BatchNorm statistics are re-estimated on this many training samples (a seeded subset): 8 batches of 256
# estimate a channel's mean and variance well, at a fraction of a pass over the data.
BN_SAMPLES = 2048
RADIUS = 0.5  # roughness: the loss range within this distance of the sliced weights
SETTINGS = ".landscape-settings.json"
VARIANTS = ("residual", "plain")


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

    def caption(self) -> str:
        """Model, options, weights' state and grid in words, for plot titles."""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        states = " / ".join(sorted({s.state for s in self.slices}))
        grid = f"{self.steps}x{self.steps}" if self.dim == 2 else f"{self.steps} points"
        return (f"{self.model}{f' ({opts})' if opts else ''} {states}\n{grid} over {self.span[0]:g}:{self.span[1]:g}, "
                f"{self.samples} samples of {self.data}, seed {self.seed}")


def study(name: str, *, variants=("residual",), options: dict | None = None, input_size=None,
          data: str | None = None, weights=(), between=None, train_epochs: int = 3, dim: int = 2, steps: int = 11,
          span: tuple[float, float] = (-1.0, 1.0), samples: int = 256, batch_size: int | None = None, seed: int = 0,
          device: str | torch.device = "cpu", include_bn: bool = False, radius: float = RADIUS, directory=None,
          resume: bool = False, progress: bool = False, compile: bool = False,
          direction_files=(), kwargs: dict | None = None) -> LandscapeStudy:
    """Loss surfaces of zoo model `name` for each of `variants` ('residual', 'plain'), with their roughness.

    The state sliced: `weights` (one checkpoint per variant), else `train_epochs` epochs of SGD (batch 128,
    lr 0.1, He et al.'s step schedule) from a seeded initialisation shared by the twins, followed by
    re-estimating the BatchNorm statistics at the final weights (on `BN_SAMPLES` training samples); 0 epochs
    slices at initialisation.
    `between=(A, B)` (1-D, one variant) interpolates between two checkpoints instead. Each point is the mean
    cross-entropy and accuracy over `samples` training samples drawn with `seed`, of `data` (default: the first
    checkpoint's data, else synthetic). `compile` as
    `landscape.evaluate_grid`. `direction_files`: one per variant, saved
    directions (`directions_bytes`, e.g. `netprobe hessian`'s eigenvectors) to slice along instead of random ones.
    `kwargs`: the command's --kwargs, which for a model from a file or module are bound into its registered
    builder rather than passed as `options`; recorded with `options` so that `resume` refuses other ones.
    """
    from netprobe.analysis.surfaces.directions import directions_for, random_directions
    from netprobe.data import load_data
    from netprobe.zoo import model_spec

    spec = model_spec(name)
    variants, weights, options = list(variants), list(weights), dict(options or {})
    _check(spec, variants, weights, between, dim, options)
    # The options asked for (the data's class count is recorded as the data), as they read back from the file.
    built = plain_json({**(kwargs or {}), **options})
    given = [directions_for(path, spec.name, dim) for path in direction_files]
    if given and (between or len(given) != len(variants)):
        raise NetprobeError(f"{len(given)} direction file(s) for {len(variants)} variant(s): give one per variant, "
                            "without an interpolation")
    dev = resolve(device)
    size = tuple(input_size or spec.input_size)
    # Checkpoints are sliced on the data normalised as they were trained (their own mean and std).
    cache: dict = {}
    first = [*weights, *(between or ())][:1]
    data = data or (checkpoint_meta(spec.name, first[0]).get("data") if first else None) or "synthetic"
    datasets = [dataset_for(checkpoint_meta(spec.name, w), data, spec, seed, cache, size) for w in weights]
    dataset = datasets[0] if datasets else load_data(data, input_size=size, seed=seed)
    if samples > len(dataset.train):
        raise NetprobeError(f"{samples} samples asked for: the data has {len(dataset.train)} training samples")
    options = fit_classes(spec, options, dataset, data)
    batch_size = batch_size or (512 if dev.type == "cuda" else 64)
    out = None if directory is None else Path(directory)
    if out is not None:
        # Keys given only when set, so runs recorded before them still resume; `changed` compares both key sets.
        _settings(out, resume, dict(
            model=spec.name, input_size=list(size), variants=variants, weights=weights, train_epochs=train_epochs,
            dim=dim, steps=steps, range=list(span), data=data, samples=samples, batch_size=batch_size, seed=seed, device=dev.type,
            include_bn=include_bn, between=list(between or []), **({"options": built} if built else {}),
            **({"directions": [str(p) for p in direction_files]} if direction_files else {})))

    xs = ls.axis(*span, steps)
    ys = ls.axis(*span, steps) if dim == 2 else None
    coords = ls.grid(xs, ys)
    rank = ls.world()[0]
    slices = []
    for k, variant in enumerate(variants):
        if datasets:
            dataset = datasets[k]
        # The same seeded sample indices for every variant, whatever its normalisation.
        order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed))
        x, y = dataset.train.x[order[:samples]], dataset.train.y[order[:samples]]
        bn_x = dataset.train.x[order[:BN_SAMPLES]]
        directions = []
        if between:
            model, states = _between(spec, variant, options, seed, between)
            state = f"between {between[0]} (0) and {between[1]} (1)"
        else:
            model, state = _prepare(spec, variant, options, dataset, bn_x, seed=seed,
                                    weights=weights[k] if weights else None, train_epochs=train_epochs,
                                    checkpoint=None if out is None else out / f"train-{variant}.pt",
                                    resume=resume, progress=progress, device=dev)
            directions = given[k] if given else random_directions(model, dim, seed=seed, include_bn=include_bn)
        model.to(dev)
        if out is None:
            done, log = {}, None
        else:
            done, log = ls.open_log(out, f"surface-{variant}", coords, resume=resume)
        common = dict(batch_size=batch_size, progress=progress and rank == 0, done=done,
                      on_point=None if log is None else log.append, desc=f"{spec.name} {variant}",
                      compile=compile)
        try:
            if between:
                table = ls.interpolate(model, states[0], states[1], xs, x, y, **common)
            else:
                table = ls.surface(model, x, y, directions, xs, ys, **common)
        finally:
            if log is not None:
                log.close()
        slices.append(Slice(variant, state, table, directions, len(coords) - len(done), len(done)))
    summary = pd.DataFrame([{"model": spec.name, "variant": s.variant, "state": s.state,
                             **roughness(s.table, radius)} for s in slices])
    return LandscapeStudy(spec.name, {k: v for k, v in options.items() if k != "plain"}, slices, summary, dim,
                          steps, (float(span[0]), float(span[1])), samples, data, seed, include_bn)


def clear_work(directory, variants) -> None:
    """Delete the point logs of a finished study (call once its results are safely written)."""
    if ls.world()[0] == 0:
        for variant in variants:
            ls.clear_logs(directory, f"surface-{variant}")


def _check(spec, variants, weights, between, dim, options):
    check_variants(spec, variants, weights, options, "the landscape needs a cross-entropy loss")
    if between and (dim != 1 or len(variants) != 1 or weights or len(between) != 2):
        raise NetprobeError("an interpolation between two checkpoints is a 1-D slice of one variant, without "
                            "other weights")


def _settings(out: Path, resume: bool, settings: dict) -> None:
    """Record the run's settings in `out`; when resuming, refuse a directory holding a run with other settings."""
    from netprobe.files import read_json_table, write_atomic

    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise NetprobeError(f"cannot create {out}: {exc.strerror}") from None
    path = out / SETTINGS
    if resume and path.exists():
        before = read_json_table(path, "a landscape run's settings file (delete it to start afresh)")
        change = changed(before, settings)
        if change:
            raise NetprobeError(f"cannot resume in {out}: {change} (use another directory, or start afresh)")
    barrier()  # every rank has read the old settings before rank 0 replaces them
    if ls.world()[0] == 0:
        write_atomic(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")


def plain_json(value):
    """`value` as it reads back from JSON (tuples as lists; a value JSON cannot hold, such as a set, as its repr)."""
    return json.loads(json.dumps(value, default=repr))


def changed(before: dict, now: dict) -> str | None:
    """Words for the first setting that differs between a recorded run and this one (one missing counts), or None."""
    def said(settings, k):
        return f"{k}={settings[k]!r}" if k in settings else f"no {k}"

    for k in [*now, *(k for k in before if k not in now)]:
        if (k in before) != (k in now) or before.get(k) != now.get(k):
            return f"it holds a run with {said(before, k)}, this one has {said(now, k)}"
    return None


def _build(spec, variant, options, seed):
    from netprobe.zoo import load

    if spec.plain:
        options = {**options, "plain": variant == "plain"}
    # The twins start from the same seed, so they share their initial weights.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load(spec.name, **options), options


def _prepare(spec, variant, options, dataset, bn_x, *, seed, weights, train_epochs, checkpoint, resume,
             progress, device):
    """The model of `variant` at the state to slice, and the words for that state."""
    from netprobe.train import fit, load_weights, recalibrate_bn

    if weights is not None:
        from netprobe.train.checkpoint import trained_options

        model, _ = _build(spec, variant, {**options, **trained_options(weights, spec.name)}, seed)
        load_weights(model, weights)
        return model, f"at {weights}"
    model, options = _build(spec, variant, options, seed)
    if train_epochs == 0:
        return model, "at initialisation"
    # Rank 0 trains (or continues from its checkpoint) and the others take its weights, so all slice one model.
    if ls.world()[0] == 0:
        fit(model, dataset, epochs=train_epochs, batch_size=TRAIN_BATCH, lr=TRAIN_LR, seed=seed,
            checkpoint=checkpoint, resume=resume, progress=progress,
            meta={"model": spec.name, "options": options}, device=device)
        # The running statistics of training lag the final weights; re-estimate them on the final weights.
        recalibrate_bn(model, bn_x.to(device), 256)
    _share_state(model)
    return model, (f"after {train_epochs} epoch{'s' * (train_epochs != 1)} on {dataset.spec} "
                   "(BN statistics re-estimated)")


def _share_state(model):
    """Under torch.distributed, give every rank rank 0's parameters and buffers."""
    import torch.distributed as dist

    if ls.world()[1] > 1:
        state = [model.state_dict() if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(state, src=0)
        model.load_state_dict(state[0])


def _between(spec, variant, options, seed, between):
    from netprobe.train.checkpoint import describe, load_checkpoint, mismatch

    model, _ = _build(spec, variant, options, seed)
    states = []
    for path in between:
        state, meta = load_checkpoint(path)
        problem = mismatch(model, state)
        if problem is not None:
            raise NetprobeError(f"{path} does not fit {spec.name} ({variant}): {problem} "
                                f"(it was trained for {describe(meta)})")
        states.append(state)
    model.load_state_dict(states[0])
    return model, states
