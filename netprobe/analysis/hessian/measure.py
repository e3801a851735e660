"""One variant's measurements for `study`: eigenvalues, trace and density of the chosen curvature matrix, over
the chosen parameters, whole and per scope, each piece checkpointed by `netprobe.runs.Progress`."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import torch

from netprobe.analysis.hessian.density import Quadrature, slq
from netprobe.analysis.hessian.hessian import Eigen, Trace, parameters, top_eigenvalues, trace
from netprobe.analysis.hessian.hutchpp import hutchpp_trace
from netprobe.analysis.hessian.lanczos import lanczos_eigen
from netprobe.analysis.hessian.scopes import flat_indices, scope_parameters, scopes
from netprobe.analysis.hessian.state import check_vectors
from netprobe.errors import NetprobeError

COLUMNS = ["variant", "scope", "quantity", "value", "stderr", "iterations", "samples"]
NAN = float("nan")


@dataclass(frozen=True)
class Curvature:
    """What is measured and how: the matrix (`operators.OPERATORS`), the parameters (a regex their names match in
    full; None: all), the eigenvalue method ('power', or 'lanczos' with `which` of `lanczos.WHICH`), the trace
    estimator ('hutchinson' or 'hutch++') and the probe vectors per batched product."""

    operator: str = "hessian"
    params: str | None = None
    method: str = "power"
    which: str = "magnitude"
    trace: str = "hutchinson"
    batch: int = 1


def select(model, pattern: str | None) -> list[str]:
    """The names of `model`'s parameters matching `pattern` in full (None: all); NetprobeError if none does."""
    names = [n for n, _ in model.named_parameters()]
    try:
        chosen = names if pattern is None else [n for n in names if re.fullmatch(pattern, n)]
    except re.error as exc:
        raise NetprobeError(f"params: {pattern!r} is not a regular expression ({exc})") from None
    if not chosen:
        raise NetprobeError(f"params: no parameter name matches {pattern!r} in full (names look like "
                            f"{', '.join(names[:3])})")
    return chosen


def _row(variant, scope, quantity, value, stderr, iterations, samples) -> dict:
    return dict(zip(COLUMNS, (variant, scope, quantity, value, stderr, iterations, samples)))


class Measure:
    """The pieces of one variant's measurement, sharing its model, batches, checkpoint and progress bar."""

    def __init__(self, model, batches, variant, samples, saved, bar, *, how: Curvature, keep_graph, seed):
        self.model, self.batches, self.variant, self.samples = model, batches, variant, samples
        self.saved, self.bar, self.how, self.keep_graph, self.seed = saved, bar, how, keep_graph, seed
        self.common = dict(operator=how.operator, step=bar.update)

    def row(self, scope, quantity, value, stderr, iterations) -> dict:
        """A table row of this variant."""
        return _row(self.variant, scope, quantity, value, stderr, iterations, self.samples)

    def piece(self, key, run):
        """Run resumable piece `key` from its saved state; a finished one is replayed from it without products."""
        done = self.saved.get(key)
        out = run(state=done if done is not None else self.saved.state(key), save=self.saved.saver(key),
                  keep_graph=self.keep_graph and done is None)
        if done is None:
            self.saved.finish(key)
        else:  # the products the saved piece used, for the progress bar
            self.bar.update(sum(done["iterations"]) if "iterations" in done else len(done["values"]))
        return out

    def whole(self, key, run, load):
        """Run piece `key` in one go (its iteration state is too large to save often), or load its saved result."""
        done = self.saved.get(key)
        if done is None:
            done = vars(run(keep_graph=self.keep_graph))
            self.saved.finish(key, {k: v for k, v in done.items() if k != "groups"})
        return load(**done)

    def eigen(self, scope, top, iters, tol, params=None) -> tuple[Eigen, list[dict]]:
        """The top eigenvalues of the scope's matrix and their rows."""
        key, lanczos = f"{self.variant}/{scope}/eigen", self.how.method == "lanczos"
        wrong = check_vectors(self.saved.get(key) or self.saved.state(key),
                              sum(p.numel() for p in (parameters(self.model) if params is None else params)))
        if wrong:
            raise NetprobeError(f"cannot resume: the saved piece {key!r} holds {wrong}; delete the state to start "
                                "afresh")
        if lanczos:
            found = self.whole(key, lambda **kw: lanczos_eigen(
                self.model, torch.nn.functional.cross_entropy, self.batches, k=top, steps=iters,
                which=self.how.which, tol=tol, seed=self.seed, params=params, **self.common, **kw), Eigen)
        else:
            found = self.piece(key, lambda **kw: top_eigenvalues(
                self.model, torch.nn.functional.cross_entropy, self.batches, k=top, iters=iters, tol=tol,
                seed=self.seed, params=params, **self.common, **kw))
        used = found.iterations[0] if lanczos else sum(found.iterations)
        self.bar.total -= (iters if lanczos else top * iters) - used  # early stops free their budget
        self.bar.refresh()
        rows = [self.row(scope, f"eigenvalue_{i}", value, NAN, its)
                for i, (value, its) in enumerate(zip(found.values, found.iterations), 1)]
        rows += [self.row(scope, f"residual_{i}", r, NAN, its)
                 for i, (r, its) in enumerate(zip(found.residuals, found.iterations), 1)]
        return found, rows

    def trace(self, probes, groups) -> list[dict]:
        """The trace rows: the model's, and each scope's from the same probes (Hutchinson's only)."""
        loss, key = torch.nn.functional.cross_entropy, f"{self.variant}/trace"
        if self.how.trace == "hutch++":
            t = self.whole(key, lambda **kw: hutchpp_trace(self.model, loss, self.batches, probes=probes,
                                                           seed=self.seed, batch=self.how.batch, **self.common,
                                                           **kw), Trace)
        else:
            index = {scope: flat_indices(self.model, members) for scope, members in groups.items()}
            t = self.piece(key, lambda **kw: trace(self.model, loss, self.batches, probes=probes, seed=self.seed,
                                                   groups=index, batch=self.how.batch, **self.common, **kw))
        return [self.row("model", "trace", t.value, t.stderr, t.probes),
                *(self.row(scope, "trace", part.value, part.stderr, part.probes) for scope, part in t.groups.items())]

    def density(self, steps, runs) -> tuple[list[Quadrature], list[dict]]:
        """`runs` Lanczos runs, `how.batch` at a time in lockstep (each resumed whole), and the extreme Ritz rows.
        Under torchrun each rank runs every world-th chunk alone; every rank records them all, in order."""
        from netprobe.ranks import gather_objects, world

        keys = [f"{self.variant}/density/{r}" for r in range(runs)]
        todo = [r for r in range(runs) if self.saved.get(keys[r]) is None]  # a suffix: runs finish in order
        chunks = [todo[first:first + self.how.batch] for first in range(0, len(todo), self.how.batch)]
        rank, size = world()
        for first in range(0, len(chunks), size):
            now = chunks[first:first + size]
            mine = [] if rank >= len(now) else [vars(q) for q in slq(
                self.model, torch.nn.functional.cross_entropy, self.batches, steps=steps, runs=len(now[rank]),
                seed=self.seed + now[rank][0], keep_graph=self.keep_graph, batch=self.how.batch, shared=False,
                **self.common)]
            for chunk, found in zip(now, gather_objects(mine)):
                for r, q in zip(chunk, found):
                    self.saved.finish(keys[r], q)
        quads = [Quadrature(**self.saved.get(key)) for key in keys]
        used = sum(q.steps for q in quads)
        return quads, [self.row("model", "ritz_max", max(max(q.nodes) for q in quads), NAN, used),
                       self.row("model", "ritz_min", min(min(q.nodes) for q in quads), NAN, used)]


def measure(model, batches, variant, samples, result, saved, *, top, iters, tol, probes, per_block,
            density_steps, density_runs, keep_graph, seed, progress, desc, how: Curvature) -> list[dict]:
    """The rows of one variant (model first, then the scopes in forward order); its eigenvectors, quadratures
    and unconverged eigenvalues go into `result`."""
    from tqdm.auto import tqdm

    chosen = set(select(model, how.params))
    for name, p in model.named_parameters():
        p.requires_grad_(name in chosen)  # the matrix is over these; the others are held fixed
    groups = scopes(model, batches[0][0]) if per_block else {}
    budget = iters if how.method == "lanczos" else top * iters
    with tqdm(total=budget * (1 + len(groups)) + probes + density_steps * density_runs, desc=desc, unit="hvp",
              file=sys.stderr, disable=not progress, leave=False) as bar:
        run = Measure(model, batches, variant, samples, saved, bar, how=how, keep_graph=keep_graph, seed=seed)
        rows = []
        for scope, members in {"model": None, **groups}.items():
            found, more = run.eigen(scope, top, iters, tol, None if members is None else
                                    scope_parameters(model, members))
            rows += more
            result.unconverged.extend(f"{variant} {scope} eigenvalue_{i}" for i, done in
                                      enumerate(found.converged, 1) if not done)
            if members is None:
                result.eigenvectors[variant] = _directions(model, found.vectors)
        rows += run.trace(probes, groups) if probes else []
        if density_steps:
            result.quadratures[variant], more = run.density(density_steps, density_runs)
            rows += more
    order = ["model", *groups]
    return sorted(rows, key=lambda r: order.index(r["scope"]))


def _directions(model, vectors) -> list[dict[str, torch.Tensor]]:
    """Each flat vector over `parameters(model)` as {name: tensor} over all of the model's parameters, zero on
    those left out (the format of `netprobe landscape --directions`)."""
    chosen = {id(p) for p in parameters(model)}
    sizes = [p.numel() for p in parameters(model)]
    named = list(model.named_parameters())  # one set of name strings: the saved file stores each once
    out = []
    for v in vectors:
        pieces = iter(torch.split(v, sizes))
        out.append({n: next(pieces).detach().reshape(p.shape).to("cpu", torch.float32) if id(p) in chosen
                    else torch.zeros(p.shape) for n, p in named})
    return out


def check(how: Curvature, per_block: bool, probes: int) -> None:
    """Refuse settings that do not go together."""
    from netprobe.analysis.hessian.lanczos import WHICH
    from netprobe.analysis.hessian.operators import OPERATORS

    for label, value, allowed in (("operator", how.operator, OPERATORS), ("method", how.method, ("power", "lanczos")),
                                  ("which", how.which, WHICH), ("trace", how.trace, ("hutchinson", "hutch++"))):
        if value not in allowed:
            raise NetprobeError(f"{label} must be one of {', '.join(allowed)}, got {value!r}")
    if how.which != "magnitude" and how.method != "lanczos":
        raise NetprobeError(f"which={how.which!r} needs method='lanczos' (power iteration finds the largest magnitude)")
    if how.trace == "hutch++" and per_block and probes:
        raise NetprobeError("per-block traces come from Hutchinson's probes: Hutch++ gives the model's trace only")
    if how.trace == "hutch++" and 0 < probes < 3:
        raise NetprobeError(f"Hutch++ needs at least 3 products, got probes={probes}")
    if how.batch < 1:
        raise NetprobeError(f"batch must be >= 1, got {how.batch}")
