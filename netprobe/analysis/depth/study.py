"""The depth study: every (depth, variant) pair trained under one recipe, in J processes or torchrun ranks.

Each pair is a checkpoint `DIR/<variant><depth>.pt`; `DIR/study.json` records the settings so `resume`
refuses a directory of other settings before anything is touched. Pairs are handed out longest first
(deepest first), to separate processes with their own thread budget or, under torchrun, to rank r the
pairs r, r + world, ...; rank 0 then waits for the others' checkpoints and gathers the curves.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from netprobe.analysis.depth.pair import CURVE_COLUMNS, STUDY_ORDER, Recipe, pair_name, train_pair
from netprobe.errors import NetprobeError
from netprobe.lifetime import claim, worker_init

DEPTHS = (20, 32, 44, 56, 110, 1202)  # the zoo's CIFAR ResNets (He et al. Table 6), all 6n + 2
MANIFEST = "study.json"
# Recipes by name: Recipe fields that differ from its defaults. "default" and "quick" are budgets measured on
# the project's 2-vCPU machine with 2 jobs x 1 thread (README, "depth"); "he2016" is He et al.'s own (Sec. 4.2):
# width 16, 64k iterations of batch 128, lr 0.1 /10 at 32k and 48k (the loop's 50% and 75%), weight decay 1e-4,
# momentum 0.9, lr 0.01 for 110 layers until the training error is below 80%, and pad-crop-flip augmentation.
# Both budgets train at lr 0.015, not He et al.'s 0.1: at a few hundred steps the 56-layer ResNet spends lr 0.1
# undoing the drift of its residual stream (README, "depth": the regimes tried, three seeds each).
PRESETS = {
    "default": {"steps": 600, "width": 4, "every": 30, "lr": 0.015},
    "quick": {"steps": 150, "width": 4, "every": 15, "lr": 0.015},
    "he2016": {"steps": 64000, "width": 16, "every": 500, "warmup_lr": 0.01, "augment": True},
}
DEFAULT, QUICK = PRESETS["default"], PRESETS["quick"]
# He et al. 2016, Table 6: CIFAR-10 test error (%) of their ResNets, for the he2016 recipe's result table.
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
FINAL_COLUMNS = ("variant", "depth", "steps", "train_loss", "train_acc", "test_loss", "test_acc")


@dataclass(frozen=True)
class Study:
    """Which pairs to train and the recipe they share."""

    depths: tuple[int, ...] = (20, 56)
    variants: tuple[str, ...] = STUDY_ORDER
    recipe: Recipe = field(default_factory=Recipe)

    def pairs(self) -> list[tuple[str, int]]:
        """(variant, depth) pairs, deepest first (the longest runs start first)."""
        return sorted(((v, d) for v in self.variants for d in self.depths), key=lambda p: (-p[1], p[0]))

    def as_dict(self) -> dict:
        """The settings as plain types, as written to study.json."""
        return {"depths": list(self.depths), "variants": list(self.variants), **self.recipe.as_dict()}


def check_study(study: Study) -> None:
    """Raise a one-line NetprobeError for depths, variants or budgets that cannot be trained."""
    for depth in study.depths:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise NetprobeError(f"depth {depth!r} is not of the form 6n + 2 (20, 32, 44, 56, 110, ...)")
        if depth not in DEPTHS:
            raise NetprobeError(f"depth {depth} is 6n + 2 but not a zoo model (checkpoints must load as "
                                f"resnet<depth>): choose from {', '.join(map(str, DEPTHS))}")
    for variant in study.variants:
        if variant not in STUDY_ORDER:
            raise NetprobeError(f"unknown variant {variant!r} (expected: {', '.join(STUDY_ORDER)})")
    if not study.depths or not study.variants:
        raise NetprobeError("a depth study needs at least one depth and one variant")
    if len(set(study.depths)) != len(study.depths) or len(set(study.variants)) != len(study.variants):
        raise NetprobeError("depths and variants must not repeat")
    r = study.recipe
    for key in ("steps", "width", "every", "batch_size"):
        if getattr(r, key) < 1:
            raise NetprobeError(f"{key} must be at least 1, got {getattr(r, key)}")
    if not r.lr > 0:
        raise NetprobeError(f"learning rate must be positive, got {r.lr}")
    if not 0 <= r.warmup < 0.5:
        raise NetprobeError(f"warm-up must be a fraction of the steps in [0, 0.5), got {r.warmup}")
    if r.snapshots < 0:
        raise NetprobeError(f"snapshots must be at least 0, got {r.snapshots}")
    from netprobe.analysis.depth.pair import INITS

    if r.init not in INITS:
        raise NetprobeError(f"unknown initialisation {r.init!r} (known: {', '.join(INITS)})")


def preset(name: str, **changes) -> Recipe:
    """The recipe called `name` (PRESETS), with `changes` (Recipe fields) applied on top."""
    if name not in PRESETS:
        raise NetprobeError(f"unknown recipe {name!r} (known: {', '.join(PRESETS)})")
    return Recipe(**{**PRESETS[name], **changes})


def prepare(study: Study, out_dir, *, resume: bool, threads: int) -> Path:
    """Create or reopen DIR: a fresh DIR gets study.json; a used one needs `resume` and the same settings."""
    from netprobe.files import check_writable, write_atomic
    from netprobe.runs import check_manifest, make_folder

    out = make_folder(Path(out_dir))
    check_writable(out / MANIFEST)
    # Threads are a setting: reductions split differently across threads, so another count changes the numbers.
    manifest, settings = out / MANIFEST, {**study.as_dict(), "threads": threads}
    if manifest.exists():
        if not resume:
            raise NetprobeError(f"{out} already holds a depth study: pass resume=True to continue it, or choose "
                                "another directory", said={"pass resume=True to": "pass --resume to"})
        check_manifest(manifest, settings, "a depth-study manifest")
    elif any(out.glob("*.pt")):
        raise NetprobeError(f"{out} holds checkpoints but no {MANIFEST}: choose an empty or new directory")
    else:
        write_atomic(manifest, json.dumps(settings, indent=2) + "\n")
    return out


def _train(args):
    recipe, variant, depth, path, resume, progress, position, device = args
    train_pair(recipe, variant, depth, path, resume=resume, progress=progress, position=position, device=device)


def _train_here(tasks, threads: int) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for task in tasks:
            _train(task)
    finally:
        torch.set_num_threads(before)


def _train_in_workers(tasks, jobs: int, threads: int, out: Path) -> None:
    """`tasks` in `jobs` spawned worker processes that die with this one and share its folder lock."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(max(1, min(jobs, len(tasks))), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=worker_init, initargs=(os.getpid(), str(out), threads)) as pool:
            list(pool.map(_train, tasks))
    except BrokenProcessPool:
        raise NetprobeError(f"a training process died (out of memory or killed); {out} keeps every pair up "
                            "to its last logged step: rerun with --resume") from None


def rank_share(pairs: list, rank: int, world: int) -> list:
    """The pairs rank `rank` of `world` trains: every world-th one, starting at its own rank."""
    return pairs[rank::world]


def run_study(study: Study, out_dir, *, jobs: int = 1, threads: int | None = None, resume: bool = False,
              progress: bool = True, rank: int = 0, world: int = 1, poll: float = 5.0, processes: bool = False,
              device: str = "cpu"):
    """Train this rank's pairs (J at a time) into DIR; on rank 0 gather (curves, final) DataFrames, else None.

    One job trains in this process unless `processes` (then in a worker, leaving this process's RNG and
    thread settings alone, as a study running beside other work must). `device`: where each pair trains.
    More ranks than pairs is refused (`ranks.share`)."""
    check_study(study)
    if jobs < 1:
        raise NetprobeError(f"jobs must be at least 1, got {jobs}", said={"jobs must be": "--jobs must be"})
    if not 0 <= rank < world:
        raise NetprobeError(f"rank {rank} is outside a world of {world}")
    from netprobe.ranks import check_world  # imports torch: not at module level (--help)

    check_world(world, len(study.pairs()), "pairs")
    if rank > 0:  # rank 0 writes the manifest; the others reopen it, so a fresh run is not refused as a reuse
        while not (Path(out_dir) / MANIFEST).exists():
            time.sleep(poll)
    if not threads:
        from netprobe.cpus import cores

        threads = max(1, cores() // (jobs * world))
    out = prepare(study, out_dir, resume=resume or rank > 0, threads=threads)
    mine = rank_share(study.pairs(), rank, world)
    tasks = [(study.recipe, v, d, out / f"{pair_name(v, d)}.pt", resume, progress, i % jobs, device)
             for i, (v, d) in enumerate(mine)]
    with claim(out, alone=world == 1, what="training"):  # torchrun's ranks share the folder
        if (jobs == 1 or len(tasks) <= 1) and not processes:
            _train_here(tasks, threads)
        else:
            _train_in_workers(tasks, jobs, threads, out)
    if rank != 0:
        return None
    _wait(study, out, poll)
    return collect(study, out)


def _finished(study: Study, path: Path) -> bool:
    from netprobe.train.checkpoint import load_checkpoint

    return path.exists() and load_checkpoint(path)[1].get("step") == study.recipe.steps


def _wait(study: Study, out: Path, poll: float) -> None:
    """Block until every pair's checkpoint holds the full budget (other torchrun ranks may still train)."""
    while True:
        missing = [pair_name(v, d) for v, d in study.pairs() if not _finished(study, out / f"{pair_name(v, d)}.pt")]
        if not missing:
            return
        time.sleep(poll)


def collect(study: Study, out_dir) -> tuple:
    """(curves, final) DataFrames from the pairs' checkpoints: one row per logged step, the last row per pair."""
    import pandas as pd

    from netprobe.train.checkpoint import load_checkpoint

    frames = []
    for variant in study.variants:
        for depth in sorted(study.depths):
            _, meta = load_checkpoint(Path(out_dir) / f"{pair_name(variant, depth)}.pt")
            rows = pd.DataFrame(meta["history"], columns=list(CURVE_COLUMNS))
            rows.insert(0, "depth", depth)
            rows.insert(0, "variant", variant)
            frames.append(rows)
    curves = pd.concat(frames, ignore_index=True)
    final = curves.groupby(["variant", "depth"], sort=False).tail(1).rename(columns={"step": "steps"})
    return curves, final[list(FINAL_COLUMNS)].reset_index(drop=True)


def describe(final) -> list[str]:
    """In words: final training loss, deepest against shallowest per variant, plain against residual per depth."""
    lines = []
    for variant, rows in final.groupby("variant", sort=False):
        rows = rows.sort_values("depth")
        low, high = rows.iloc[0], rows.iloc[-1]
        if len(rows) == 1:
            lines.append(f"{variant}: {low.depth} layers end at training loss {low.train_loss:.4f}")
            continue
        relation = "above" if high.train_loss > low.train_loss else "at or below"
        lines.append(f"{variant}: {high.depth} layers end at training loss {high.train_loss:.4f}, {relation} "
                     f"{low.depth} layers' {low.train_loss:.4f} (test accuracy {high.test_acc:.3f} vs "
                     f"{low.test_acc:.3f})")
    both = final.pivot(index="depth", columns="variant", values="train_loss")
    if {"plain", "residual"} <= set(both.columns):
        lines += [f"at {depth} layers: final training loss {row.plain:.4f} plain, {row.residual:.4f} residual"
                  for depth, row in both.iterrows()]
    return lines
