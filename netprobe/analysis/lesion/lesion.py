"""Lesion measurements on one model: single deletions, random sets of deletions, and per-block statistics.

Accuracy and loss are the mean over a fixed set of test samples, BatchNorm in eval mode on the running
statistics the model was trained with, under `torch.inference_mode`. Deletions swap modules in place and
restore them (`blocks.deleted`); the model is never copied.
"""

from __future__ import annotations

import itertools
import math
import random
import sys

import pandas as pd
import torch
from torch import nn

from netprobe.analysis.lesion.blocks import Block, deleted
from netprobe.errors import NetprobeError
from netprobe.modes import model_mode

SINGLE_COLUMNS = ("block", "stage", "position", "downsampling", "accuracy", "loss", "accuracy_drop",
                  "loss_increase")
SET_COLUMNS = ("deleted", "draw", "blocks", "accuracy", "loss")


def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` in eval mode on (x, y), BatchNorm folded, under inference_mode."""
    from netprobe.analysis.evaluation import evaluate_fast
    from netprobe.data import Split

    loss, accuracy = evaluate_fast(model, Split(x, y), batch_size)
    return accuracy, loss


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="eval", file=sys.stderr, disable=not progress, leave=False)


def single_deletions(model: nn.Module, blocks: list[Block], x, y, *, intact: tuple[float, float] | None = None,
                     batch_size: int = 256, progress: bool = False, desc: str = "lesion") -> pd.DataFrame:
    """One row per block of `blocks`: accuracy and loss with that block alone deleted, and the change from
    the intact model (`intact` = its (accuracy, loss), measured here when not given)."""
    acc0, loss0 = intact if intact is not None else score(model, x, y, batch_size)
    scores = _shared(model, [[block] for block in blocks], x, y, batch_size, progress, desc)
    rows = [(block.name, block.stage, block.position, block.downsampling, acc, loss, acc0 - acc, loss - loss0)
            for block, (acc, loss) in zip(blocks, scores)]
    return pd.DataFrame(rows, columns=SINGLE_COLUMNS)


def _shared(model, deletions: list[list[Block]], x, y, batch_size, progress, desc) -> list[tuple[float, float]]:
    """(accuracy, loss) with each set of `deletions` deleted in turn; under torchrun each rank scores its share
    (`ranks.share`) and every rank gets all the scores, in order (the same figures as one process)."""
    from netprobe.ranks import in_order, is_main, share

    mine = share(deletions, "deletions")
    scores = []
    with _bar(len(mine), desc, progress and is_main()) as bar:
        for chosen in mine:
            with deleted(model, chosen):
                scores.append(score(model, x, y, batch_size))
            bar.update(1)
    return in_order(scores, len(deletions))


def draw_sets(names: list[str], max_deleted: int, draws: int, seed: int) -> list[tuple[int, int, tuple[str, ...]]]:
    """(k, draw, names) for k = 1..max_deleted: `draws` distinct sets of k names each, seeded; every set when
    there are no more than `draws` of them (so k = all gives one)."""
    if not 1 <= max_deleted <= len(names):
        raise NetprobeError(f"cannot delete up to {max_deleted} blocks at once: {len(names)} can be deleted")
    if draws < 1:
        raise NetprobeError(f"the number of random sets per size must be at least 1, got {draws}")
    rng = random.Random(seed)
    out = []
    for k in range(1, max_deleted + 1):
        if math.comb(len(names), k) <= draws:
            sets = list(itertools.combinations(names, k))
        else:
            seen: dict = {}
            while len(seen) < draws:  # rejection is cheap: at most half of the sets are ever drawn here
                seen.setdefault(tuple(sorted(rng.sample(names, k), key=names.index)), None)
            sets = list(seen)
        out += [(k, i, s) for i, s in enumerate(sets)]
    return out


def set_deletions(model: nn.Module, blocks: list[Block], x, y, *, max_deleted: int, draws: int, seed: int = 0,
                  batch_size: int = 256, progress: bool = False, desc: str = "random sets") -> pd.DataFrame:
    """Accuracy and loss after deleting random sets of k = 1..max_deleted of `blocks` at once, `draws` per k."""
    by_name = {b.name: b for b in blocks}
    sets = draw_sets(list(by_name), max_deleted, draws, seed)
    scores = _shared(model, [[by_name[n] for n in names] for _, _, names in sets], x, y, batch_size, progress, desc)
    rows = [(k, i, ";".join(names), acc, loss) for (k, i, names), (acc, loss) in zip(sets, scores)]
    return pd.DataFrame(rows, columns=SET_COLUMNS)


def set_curve(sets: pd.DataFrame) -> pd.DataFrame:
    """Per number deleted: mean, std (0 for one draw), min and max accuracy over the draws, and the draws."""
    grouped = sets.groupby("deleted", sort=True)["accuracy"]
    curve = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    curve["std"] = curve["std"].fillna(0.0)
    return curve.rename(columns={"mean": "accuracy_mean", "std": "accuracy_std", "min": "accuracy_min",
                                 "max": "accuracy_max", "count": "draws"})


def block_statistics(model: nn.Module, blocks: list[Block], x: torch.Tensor, *, train: bool = False,
                     batch_size: int = 256) -> pd.DataFrame:
    """Per block: ratio = ||F(x)|| / ||kept path(x)|| (residual blocks; NaN for plain ones) and the variance of
    the block's input and output, each over all of `x` (norms over every element of every sample).

    `train=True` runs BatchNorm on batch statistics (the state of a net at initialisation, where the running
    statistics are still 0 and 1); the model's mode and BatchNorm buffers are restored afterwards.
    """
    from netprobe.analysis.lesion.blocks import kept_path

    keys = ("f2", "kept2", "sx", "sx2", "nx", "sy", "sy2", "ny")
    sums = {b.name: dict.fromkeys(keys, 0.0) for b in blocks}
    handles = []
    for b in blocks:
        module = model.get_submodule(b.name)

        def on_block(m, args, output, acc=sums[b.name], residual=b.residual):
            xin, out = args[0].double(), output.double()
            if residual:
                acc["kept2"] += float(kept_path(m, args[0]).double().pow(2).sum())
            acc["sx"] += float(xin.sum()); acc["sx2"] += float(xin.pow(2).sum()); acc["nx"] += xin.numel()
            acc["sy"] += float(out.sum()); acc["sy2"] += float(out.pow(2).sum()); acc["ny"] += out.numel()

        def on_branch(m, args, output, acc=sums[b.name]):
            acc["f2"] += float(output.double().pow(2).sum())

        handles.append(module.register_forward_hook(on_block))
        if b.residual:
            handles.append(module.get_submodule(b.branch_end).register_forward_hook(on_branch))
    buffers = {k: v.clone() for k, v in model.state_dict().items()} if train else None
    try:
        with model_mode(model, train), torch.no_grad():
            for start in range(0, len(x), batch_size):
                model(x[start:start + batch_size])
    finally:
        for h in handles:
            h.remove()
        if buffers is not None:
            model.load_state_dict(buffers)
    rows = []
    for b in blocks:
        a = sums[b.name]
        rows.append({"block": b.name, "stage": b.stage, "position": b.position, "downsampling": b.downsampling,
                     "ratio": math.sqrt(a["f2"] / a["kept2"]) if b.residual and a["kept2"] > 0 else math.nan,
                     "input_var": a["sx2"] / a["nx"] - (a["sx"] / a["nx"]) ** 2,
                     "output_var": a["sy2"] / a["ny"] - (a["sy"] / a["ny"]) ** 2})
    return pd.DataFrame(rows)
