"""The depth-study regimes in benchmarks/README.md's table: final training loss of each (variant, depth, seed).

Each regime is a set of `Recipe` fields on top of the quick budget (width 4, 150 steps of batch 128, lr 0.1 /10
at 50% and 75%, He et al.'s initialisation); every pair trains on one thread, `--jobs` at a time, exactly as
`netprobe depth` trains it. Prints one markdown row per regime and writes every run to --csv.

    python benchmarks/depth_regimes.py --regimes lr0.1,lr0.015 --seeds 0,1,2 --jobs 2
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import multiprocessing
import tempfile

QUICK = {"steps": 150, "width": 4, "every": 15, "lr": 0.1, "snapshots": 0}  # the quick budget at He et al.'s rate
REGIMES = {  # the table in benchmarks/README.md, row by row
    "lr0.1": {},
    "lr0.05": {"lr": 0.05},
    "lr0.03": {"lr": 0.03},
    "lr0.02": {"lr": 0.02},
    "lr0.015": {"lr": 0.015},
    "lr0.01": {"lr": 0.01},
    "warmup0.2": {"warmup": 0.2},
    "lr0.03-warmup0.1": {"lr": 0.03, "warmup": 0.1},
    "width8": {"width": 8},
    "batch32x600": {"batch_size": 32, "steps": 600, "every": 60},
    "zero-last-bn": {"init": "zero-last-bn"},
    "lr0.02x600": {"lr": 0.02, "steps": 600, "every": 50},
}


def _one(task):
    import torch

    from netprobe.analysis.depth.pair import Recipe, train_pair

    regime, variant, depth, seed, folder = task
    torch.set_num_threads(1)
    recipe = Recipe(**{**QUICK, **REGIMES[regime], "seed": seed})
    start = time.perf_counter()
    history = train_pair(recipe, variant, depth, Path(folder) / f"{regime}-{variant}{depth}-{seed}.pt")
    return {"regime": regime, "variant": variant, "depth": depth, "seed": seed,
            "train_loss": history[-1]["train_loss"], "test_acc": history[-1]["test_acc"],
            "seconds": time.perf_counter() - start}


def main() -> None:
    """Train every requested (regime, variant, depth, seed) and print the table."""
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", default="lr0.015")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--variants", default="residual,plain")
    parser.add_argument("--depths", default="20,56")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--csv", default="depth_regimes.csv")
    args = parser.parse_args()
    regimes = args.regimes.split(",")
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        parser.error(f"unknown regimes {unknown}; known: {', '.join(REGIMES)}")
    with tempfile.TemporaryDirectory() as folder:
        tasks = [(r, v, int(d), int(s), folder) for r in regimes for s in args.seeds.split(",")
                 for d in sorted(args.depths.split(","), key=int, reverse=True) for v in args.variants.split(",")]
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = pd.DataFrame(list(pool.map(_one, tasks)))
    rows.to_csv(args.csv, index=False, float_format="%.4f")
    for regime, runs in rows.groupby("regime", sort=False):
        cells = []
        for (variant, depth), group in runs.groupby(["variant", "depth"]):
            cells.append(f"{variant[0]}{depth} " + "/".join(f"{x:.3f}" for x in group.sort_values("seed").train_loss))
        print(f"| {regime} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
