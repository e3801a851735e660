"""Loss-surface slices: the loss and accuracy at w0 + a*d1 + b*d2 over a grid of (a, b) (Li et al. 2018), and
along the line between two checkpoints (Goodfellow et al., "Qualitatively characterizing neural network
optimization problems", ICLR 2015).

The model is never copied per point: its base weights and the directions are kept as tensors and each point
sets the weights in place with fused `torch._foreach_*` ops, evaluates under `torch.inference_mode` in eval
mode (BatchNorm uses its running statistics), and the original weights and train/eval mode are restored in a
`finally`. Every point is computed from w0 afresh, so its value does not depend on which points were
computed before it: a resumed or sharded run gives the same numbers as one uninterrupted run.

Loss is the mean cross-entropy over the evaluation samples (summed per batch in float64), accuracy the
fraction of samples whose arg-max logit is the label. A non-finite loss is recorded as it is (NaN or inf).
Under `torch.distributed` (torchrun) the points are dealt round-robin to the ranks and every rank returns
the gathered table.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from netprobe.analysis.evaluation import FastEval
from netprobe.errors import NetprobeError
from netprobe.runs import world
from netprobe.modes import model_mode

COLUMNS = ["x", "y", "loss", "accuracy"]


def axis(start: float, stop: float, steps: int) -> list[float]:
    """`steps` evenly spaced coordinates from `start` to `stop` inclusive (numpy linspace, float64)."""
    if steps < 2:
        raise NetprobeError(f"need at least 2 steps per axis, got {steps}")
    if not start < stop:
        raise NetprobeError(f"range start must be below its end, got {start}:{stop}")
    return [float(v) for v in np.linspace(start, stop, steps)]


def grid(xs: Iterable[float], ys: Iterable[float] | None = None) -> list[tuple[float, float]]:
    """Grid points in table order: x outer, y inner; y is 0.0 throughout for a 1-D slice."""
    ys = [0.0] if ys is None else list(ys)
    return [(float(a), float(b)) for a in xs for b in ys]


@contextmanager
def _fast_evaluator(model: nn.Module, tensors: list[torch.Tensor], compile: bool):
    """A `FastEval` of `model` in eval and inference mode for the block; weights and mode restored after."""
    with torch.no_grad():
        saved = [t.detach().clone() for t in tensors]
    with model_mode(model, False):
        try:
            evaluator = FastEval(model, compile=compile)  # built outside inference mode: its tensors are ordinary
            with torch.inference_mode():
                yield evaluator
        finally:
            with torch.no_grad():
                torch._foreach_copy_(tensors, saved)


def _batches(evaluator: FastEval, x: torch.Tensor, y: torch.Tensor, batch_size: int, device):
    """(inputs, labels) batches on `device` in the evaluator's layout; compiled, the last is zero-padded to
    `batch_size` inputs so one compiled shape serves them all (eval outputs are per sample)."""
    batches = []
    for xb, yb in zip(x.to(device).split(batch_size), y.to(device).split(batch_size)):
        if evaluator.compiled and len(xb) < batch_size:
            xb = torch.cat([xb, xb.new_zeros((batch_size - len(xb), *xb.shape[1:]))])
        batches.append((evaluator.layout(xb), yb))
    return batches


def _point(model: Callable, batches, loss_fn: Callable) -> tuple[float, float]:
    total = torch.zeros((), dtype=torch.float64, device=batches[0][0].device)
    correct = torch.zeros((), dtype=torch.int64, device=total.device)
    count = 0
    for xb, yb in batches:
        out = model(xb)[:len(yb)]
        total += loss_fn(out, yb, reduction="sum").double()
        correct += (out.argmax(1) == yb).sum()
        count += len(yb)
    # One synchronisation per point, not per batch.
    return float(total.item() / count), float(correct.item() / count)


def evaluate_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, tensors: list[torch.Tensor],
                  origin: list[torch.Tensor], directions: list[list[torch.Tensor]],
                  coords: list[tuple[float, ...]], *, batch_size: int = 256, loss_fn: Callable = F.cross_entropy,
                  progress: bool = False, done: Mapping[int, tuple[float, float]] | None = None,
                  on_point: Callable | None = None, desc: str = "landscape",
                  compile: bool = False) -> pd.DataFrame:
    """Loss and accuracy with `tensors` set to origin + sum_k c_k * directions[k] at each point c of `coords`.

    `done` maps grid indices already computed to (loss, accuracy); only the other points are evaluated
    (dealt round-robin across ranks under torch.distributed), and `on_point(index, coords, loss, accuracy)`
    is called as each finishes. The model runs through `FastEval` (BatchNorm folded, channels-last, convolutions
    fused with their add and ReLU), or with `compile=True` through `torch.compile` instead; the path taken is
    logged and kept in the table's `attrs["evaluation"]`.
    Returns a DataFrame (x, y, loss, accuracy) in `coords` order.
    """
    if batch_size < 1:
        raise NetprobeError(f"batch size must be positive, got {batch_size}")
    if len(x) == 0:
        raise NetprobeError("no evaluation samples")
    done = dict(done or {})
    rank, size = world()
    todo = [i for i in range(len(coords)) if i not in done][rank::size]
    device = tensors[0].device
    # Base and directions in the parameters' own layout, so the fused foreach updates take their fast path.
    origin = [torch.empty_like(t).copy_(o) for o, t in zip(origin, tensors)]
    directions = [[torch.empty_like(t).copy_(d) for d, t in zip(ds, tensors)] for ds in directions]
    results = {}
    from tqdm import tqdm

    with _fast_evaluator(model, tensors, compile and bool(todo)) as evaluator, \
            tqdm(total=len(todo), desc=desc, unit="pt", file=sys.stderr, disable=not progress,
                 dynamic_ncols=True) as bar:
        # The evaluation data stays in memory as ready batches on the model's device.
        batches = _batches(evaluator, x, y, batch_size, device)
        for i in todo:
            torch._foreach_copy_(tensors, origin)
            for c, ds in zip(coords[i], directions):
                if c:
                    torch._foreach_add_(tensors, ds, alpha=c)
            evaluator.refresh()
            results[i] = _point(evaluator, batches, loss_fn)
            if on_point is not None:
                on_point(i, coords[i], *results[i])
            bar.update()
        note = evaluator.note
        fell_back = [f"{desc}: {note}"] if evaluator.notes else []
    if size > 1:
        import torch.distributed as dist

        gathered = [None] * size
        dist.all_gather_object(gathered, results)
        for part in gathered:
            results.update(part)
    results.update(done)
    rows = [(*(tuple(c) + (0.0,))[:2], *results[i]) for i, c in enumerate(coords)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["evaluation"] = note
    table.attrs["warnings"] = fell_back  # the evaluation path fell back (folding, fusion or compilation failed)
    return table


def _parameter_lists(model: nn.Module, directions: list[dict[str, torch.Tensor]]):
    """(parameters, their base values, direction tensors) for the parameters some direction moves."""
    from netprobe.analysis.surfaces.directions import check_directions

    check_directions(model, directions)
    named = [(n, p) for n, p in model.named_parameters() if any(bool(d[n].any()) for d in directions)]
    if not named:
        raise NetprobeError("the directions are zero for every parameter")
    tensors = [p for _, p in named]
    origin = [p.detach().clone() for p in tensors]
    return tensors, origin, [[d[n] for n, _ in named] for d in directions]


def surface(model: nn.Module, x: torch.Tensor, y: torch.Tensor, directions: list[dict[str, torch.Tensor]],
            xs: Iterable[float], ys: Iterable[float] | None = None, **options) -> pd.DataFrame:
    """Loss and accuracy at w0 + a*d1 (+ b*d2) for a in `xs` (and b in `ys`), w0 the model's weights.

    One direction with `ys=None` (a 1-D slice, y = 0), two with `ys`. Options as `evaluate_grid`.
    """
    want = 1 if ys is None else 2
    if len(directions) != want:
        raise NetprobeError(f"a {want}-D slice takes {want} direction(s), got {len(directions)}")
    tensors, origin, dirs = _parameter_lists(model, directions)
    return evaluate_grid(model, x, y, tensors, origin, dirs, grid(xs, ys), **options)


def interpolate(model: nn.Module, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                alphas: Iterable[float], x: torch.Tensor, y: torch.Tensor, **options) -> pd.DataFrame:
    """Loss and accuracy at (1 - alpha) * A + alpha * B for each alpha (x column; y = 0).

    Parameters and floating-point buffers (BatchNorm running statistics) are interpolated; the model's own
    weights are restored after. Options as `evaluate_grid`.
    """
    named = dict(model.named_parameters())
    named.update((n, b) for n, b in model.named_buffers() if b.is_floating_point())
    for label, state in (("A", state_a), ("B", state_b)):
        missing = sorted(set(named) - set(state))
        wrong = sorted(n for n in named if n in state and tuple(state[n].shape) != tuple(named[n].shape))
        if missing or wrong:
            raise NetprobeError(f"checkpoint {label} does not fit the model: missing {missing[:3]}, "
                                f"wrong shape {wrong[:3]}")
    names = list(named)
    origin = [state_a[n].detach().float() for n in names]
    direction = [state_b[n].detach().float() - state_a[n].detach().float() for n in names]
    return evaluate_grid(model, x, y, [named[n] for n in names], origin, [direction], grid(alphas), **options)


def surface_csv(table: pd.DataFrame) -> str:
    """The surface table as CSV in a fixed float format ('%.8g'; NaN as 'nan'), byte-stable across runs."""
    return table.to_csv(index=False, lineterminator="\n", float_format="%.8g", na_rep="nan")
