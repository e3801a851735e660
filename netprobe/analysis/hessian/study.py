"""Top eigenvalues, trace and density of the training-loss Hessian of a zoo model and/or its plain twin, for the
whole model and per block, as one table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from netprobe.analysis.hessian.density import Quadrature
from netprobe.analysis.hessian.measure import COLUMNS, Curvature, check, measure, select
from netprobe.analysis.hessian.scopes import scopes
from netprobe.analysis.hessian.state import check_state
from netprobe.analysis.twins import Twins, resolve, subset
from netprobe.errors import NetprobeError
from netprobe.runs import Progress, json_safe

DENSITY_COLUMNS = ["variant", "run", "node", "weight"]
STATE = ".hessian-state.pt"  # the run's `netprobe.runs.Progress` file in its output folder
ADVISED_SAMPLES = 4096  # PyHessian's maintainer: fewer samples give figures that vary with the subset


@dataclass
class HessianStudy:
    """The table (`COLUMNS`), per variant the model's top eigenvectors ({parameter name: tensor} each) and the
    Lanczos quadratures of `density`, words for each variant's weights, and the eigenvalues that did not converge."""

    model: str
    table: pd.DataFrame
    eigenvectors: dict[str, list[dict[str, torch.Tensor]]] = field(default_factory=dict)
    quadratures: dict[str, list[Quadrature]] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    unconverged: list[str] = field(default_factory=list)  # "variant scope eigenvalue_i" stopped by `iters`
    warnings: list[str] = field(default_factory=list)  # what the reader should know about the figures

    def density_table(self) -> pd.DataFrame:
        """The quadrature nodes and weights of every Lanczos run (`DENSITY_COLUMNS`)."""
        rows = [{"variant": v, "run": r, "node": node, "weight": weight}
                for v, runs in self.quadratures.items() for r, q in enumerate(runs)
                for node, weight in zip(q.nodes, q.weights)]
        return pd.DataFrame(rows, columns=DENSITY_COLUMNS)


def study(model, *, variants=("residual",), options: dict | None = None, weights=(), train_epochs: int = 0,
          data: str | None = None, samples: int = 256, batch_size: int = 128, top: int = 1, iters: int = 100,
          tol: float = 1e-3, probes: int = 20, per_block: bool = False, density_steps: int = 0,
          density_runs: int = 1, keep_graph: bool = False, seed: int = 0, progress: bool = False, directory=None,
          resume: bool = False, save_every: float = 10.0, input_size=None,
          curvature: Curvature = Curvature(), device="cpu") -> HessianStudy:
    """Per variant of `model` (a resolved `ModelSpec`, or a MODEL string resolved once): the `top` eigenvalues of
    largest magnitude (power iteration, relative tolerance `tol`, at most `iters` products each) and Hutchinson's
    trace from `probes` probes (0: none) of the Hessian of the mean cross-entropy over a seeded subset of
    `samples` training samples, one row per quantity (`COLUMNS`).

    `per_block`: the same for each block's (and the stem's and head's) diagonal block of the Hessian, the
    traces from the model's probes. `density_steps` > 0: `density_runs` Lanczos runs of that many products
    (stochastic Lanczos quadrature), with rows for the extreme Ritz values (`ritz_max`, `ritz_min`).
    `keep_graph`: reuse each batch's gradient graph across products (faster, more memory; `hvp_operator`).
    `directory`: the iteration state is checkpointed there (`STATE`, at most every `save_every` seconds,
    every finished piece at once) and `resume` continues a killed run from it; `clear_state` once written.
    Weights: one checkpoint per variant, else `train_epochs` epochs of SGD from `seed` (0: initialisation).
    `input_size` (C, H, W): the data's and the model's input instead of the spec's. `curvature`: the matrix,
    parameters, eigenvalue method, trace estimator and product batching (`measure.Curvature`). `device`: where
    the products run (`devices.resolve`); under torchrun the sample batches of every product are shared out.
    """
    from netprobe.ranks import is_main

    spec, options = resolve(model, options, input_size)
    twins = Twins.plan(spec, variants, options=options, weights=weights, data=data, seed=seed,
                       loss="the Hessian is of the cross-entropy loss")
    _check(samples, top, iters, tol, probes, batch_size, train_epochs, density_steps, density_runs, curvature,
           per_block)
    for k in range(len(twins.variants)):
        _check_model(spec, twins.build_options(k), per_block, curvature.params)
    result = HessianStudy(spec.name, pd.DataFrame(columns=COLUMNS))
    settings = dict(model=spec.name, input_size=list(spec.input_size),
                    options=json_safe(twins.recorded_options()), variants=twins.variants,
                    weights=[str(w) for w in twins.weights], train_epochs=train_epochs, data=twins.data,
                    samples=samples, batch_size=batch_size, top=top, iters=iters, tol=tol, probes=probes,
                    per_block=per_block, density_steps=density_steps, density_runs=density_runs, seed=seed,
                    **vars(curvature))
    saved = Progress(None if directory is None else Path(directory) / STATE, settings, resume, save_every,
                     check=check_state)
    rows = []
    for twin in twins.prepare(train_epochs=train_epochs, progress=progress, device=device):
        result.states[twin.variant] = twin.state
        if samples > len(twin.dataset.train):
            raise NetprobeError(f"{samples} samples asked for: {twins.data} has {len(twin.dataset.train)} "
                                "training samples")
        x, y = (t.to(twin.model_device) for t in subset(twin.dataset.train, samples, seed))
        batches = list(zip(torch.split(x, batch_size), torch.split(y, batch_size)))
        rows += measure(twin.model, batches, twin.variant, samples, result, saved, top=top, iters=iters, tol=tol,
                        probes=probes, per_block=per_block, density_steps=density_steps, density_runs=density_runs,
                        keep_graph=keep_graph, seed=seed, progress=progress and is_main(),
                        desc=f"{spec.name} {twin.variant}",
                        how=curvature)
    result.table = pd.DataFrame(rows, columns=COLUMNS)
    result.warnings = _warnings(result.unconverged, tol, iters, samples)
    return result


def _warnings(unconverged, tol, iters, samples) -> list[str]:
    """What the reader should know: eigenvalues stopped by `iters`, a subset small enough to vary."""
    said = [f"{', '.join(unconverged)} did not reach the relative tolerance {tol:g} in {iters} products (raise "
            "iters)"] if unconverged else []
    if samples < ADVISED_SAMPLES:
        said.append(f"{samples} samples; below {ADVISED_SAMPLES} the figures may vary with the subset (samples, seed)")
    return said


def clear_state(directory) -> None:
    """Delete the checkpoint a study kept in `directory` (call once its results are written)."""
    (Path(directory) / STATE).unlink(missing_ok=True)


def _check_model(spec, options, per_block, pattern):
    """Refuse a model without one score per class (U-Net), without blocks for `per_block`, or without a parameter
    matching `pattern`, on the meta device."""
    from netprobe.zoo.loading import built

    model = built(spec, {k: v for k, v in options.items() if k != "plain"})  # a file's model: its --kwargs bound
    x = torch.empty(2, *spec.input_size, device="meta")
    with torch.no_grad():
        out = tuple(model(x).shape)
    if out != (2, spec.num_classes):
        raise NetprobeError(f"{spec.name} is not a classifier (its output is {out}): the Hessian is of the "
                            "cross-entropy loss")
    select(model, pattern)
    if per_block:
        scopes(model, x)


def _check(samples, top, iters, tol, probes, batch_size, train_epochs, density_steps, density_runs, curvature,
           per_block):
    check(curvature, per_block, probes)
    for label, value, least in (("samples", samples, 1), ("top", top, 1), ("iters", iters, 1),
                                ("probes", probes, 0), ("batch_size", batch_size, 1),
                                ("train_epochs", train_epochs, 0), ("density_steps", density_steps, 0),
                                ("density_runs", density_runs, 1)):
        if value < least:
            raise NetprobeError(f"{label} must be >= {least}, got {value}")
    if not 0 < tol < 1:
        raise NetprobeError(f"tol must be between 0 and 1, got {tol}")
