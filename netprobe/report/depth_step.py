"""The report's degradation section: a depth study at `netprobe depth --quick`'s budget (He et al. 2016, Fig. 6)."""

from __future__ import annotations

from pathlib import Path

from netprobe.errors import NetprobeError
from netprobe.report.registry import section
from netprobe.report.sections import Plot, Section, Table

FORMATS = ("png", "svg")
SHALLOW = 20  # the reference depth every listed model is compared with (He et al.'s shallowest)
CHECKPOINTS = "depth"  # the folder of the report run's work folder that keeps the study's checkpoints


def study_depths(entries) -> tuple[int, ...]:
    """Depth 20 and the depth of every CIFAR ResNet entry (resnetN) that lists the analysis."""
    from netprobe.analysis.depth import DEPTHS

    depths = {SHALLOW}
    for entry in entries:
        depth = entry.name.removeprefix("resnet")
        if not depth.isdigit() or int(depth) not in DEPTHS or ":" in entry.name:
            raise NetprobeError(f"the depth analysis trains CIFAR ResNets ({', '.join(f'resnet{d}' for d in DEPTHS)})"
                                f"; {entry.label} is not one")
        depths.add(int(depth))
    return tuple(sorted(depths))


def depth_checkpoints(entry, work) -> tuple[str, str] | None:
    """(residual, plain) checkpoints of `entry` that the report's depth study left in `work`, else None."""
    from netprobe.analysis.depth.pair import pair_name

    depth = entry.name.removeprefix("resnet")
    if work is None or not depth.isdigit() or {k: v for k, v in entry.options.items() if k != "plain"}:
        return None  # the depth study trains the zoo's CIFAR ResNets with its own width: other options differ
    paths = [Path(work) / CHECKPOINTS / f"{pair_name(v, int(depth))}.pt" for v in ("residual", "plain")]
    return (str(paths[0]), str(paths[1])) if all(p.is_file() for p in paths) else None


def checkpoint_state(path) -> str:
    """Words for the depth study's checkpoints: their budget and width (the same for both twins)."""
    from netprobe.train.checkpoint import load_checkpoint

    meta = load_checkpoint(path)[1]
    return f"at the depth study's checkpoints above ({meta['step']} SGD steps, width {meta['options']['width']})"


def checkpoint_accuracy(path) -> tuple[float, float] | None:
    """(the test accuracy the depth study logged last for a checkpoint, chance: 1 / its classes), or None for a
    checkpoint without its training history."""
    from netprobe.train.checkpoint import load_checkpoint

    meta = load_checkpoint(path)[1]
    history, classes = meta.get("history"), meta.get("options", {}).get("num_classes")
    if not history or "test_acc" not in history[-1] or not classes:
        return None
    return float(history[-1]["test_acc"]), 1 / classes


def _twins(final) -> list[str]:
    """Residual against plain at each depth, in one sentence with the numbers."""
    both = final.pivot(index="depth", columns="variant", values="train_loss")
    if not {"plain", "residual"} <= set(both.columns):
        return []
    pairs = "; ".join(f"{depth}: {row.residual:.4f} against {row.plain:.4f}" for depth, row in both.iterrows())
    below = all(row.residual < row.plain for _, row in both.iterrows())
    return [f"Final training loss with shortcuts against without, per depth: {pairs}. "
            + ("At every depth the shortcuts train the same net to a lower loss." if below else
               "At this budget the shortcuts do not lower the loss at every depth.")]


def _study(entries, config):
    from netprobe.analysis.depth import Study
    from netprobe.analysis.depth.study import preset

    return Study(depths=study_depths(entries), recipe=preset("quick", seed=config.seed, snapshots=0))


def train(entries, config, work=None) -> tuple:
    """Train the study's pairs, one worker process per core (one thread each): (curves, final) DataFrames.

    With `work` (the report run's work folder) the checkpoints stay in work/CHECKPOINTS for later steps."""
    import contextlib
    import tempfile

    from netprobe.analysis.depth import run_study
    from netprobe.cpus import cores

    study = _study(entries, config)
    jobs = min(len(study.pairs()), cores())
    folder = (contextlib.nullcontext(Path(work) / CHECKPOINTS) if work is not None
              else tempfile.TemporaryDirectory(prefix="netprobe-depth-"))
    with folder as out:
        return run_study(study, out, jobs=jobs, threads=1, progress=False, processes=True, device=config.device)


class Training:
    """`train` running in a background thread (its pairs in worker processes), begun before the other steps."""

    def __init__(self, entries, config, work=None):
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="netprobe-depth")
        self._future = pool.submit(train, entries, config, work)
        pool.shutdown(wait=False)  # the thread ends with the study

    def result(self) -> tuple:
        """Wait for the study: its (curves, final) tables, or the error that stopped it."""
        return self._future.result()

    def cancel(self) -> None:
        """Stop a study still training (the report failed elsewhere): its worker processes are terminated."""
        import multiprocessing
        from concurrent.futures import wait

        while not self._future.done():  # the pool may still be starting its workers: terminate until it ends
            for child in multiprocessing.active_children():
                child.terminate()
            wait([self._future], timeout=0.2)


@section("depth", order=30, early=Training)
def depth_step(entries, config, work=None, trained=None) -> Section:
    """Train plain and residual twins of depth 20 and each entry's depth alike; curves, final losses, words.

    `trained`: the (curves, final) tables of a study already trained by `train` (else it trains here)."""
    from netprobe.render.depth_plots import plot_curves, plot_final
    from netprobe.report.verdicts import degradation_findings

    recipe = _study(entries, config).recipe
    curves, final = trained if trained is not None else train(entries, config, work)
    title = (f"CIFAR ResNets, width {recipe.width}, {recipe.steps} SGD steps on {recipe.data}, seed {recipe.seed}")
    section = Section("degradation", "Degradation: deeper plain nets train worse", text=[
        "He et al. (2016, Fig. 1 and 6): a deeper plain network ends at a higher training error than a "
        "shallower one, while with shortcuts it does not. Below: each depth as a plain net and as a ResNet, "
        f"trained from seed {recipe.seed} with the same budget ({recipe.steps} SGD steps of batch "
        f"{recipe.batch_size}, lr {recipe.lr:g} divided by 10 at 50% and 75%, momentum {recipe.momentum:g}, "
        f"weight decay {recipe.weight_decay:g}) at width {recipe.width} (stages {recipe.width}-"
        f"{2 * recipe.width}-{4 * recipe.width}; He et al. use 16) on the embedded synthetic data, as "
        "`netprobe depth --quick` does. Training loss is the mean over the batches since the previous point. "
        "He et al. train at lr 0.1 for 64k steps; at a few hundred steps that rate leaves the 56-layer ResNet "
        "undoing the growth of its residual stream while the 20-layer one fits the data, so this budget trains "
        "at a lower rate (README, \"depth\": the regimes tried, three seeds each).",
        *degradation_findings(final), *_twins(final)])
    section.tables.append(Table("degradation_final", "Final training and test loss per depth and variant", final))
    section.tables.append(Table("degradation_curves", "Loss and accuracy every "
                                f"{recipe.every} steps", curves))
    section.plots.append(Plot("degradation_curves", "Training (solid) and test (dashed) loss, plain left, "
                              "residual right, shared axes", plot_curves(curves, title, FORMATS)))
    section.plots.append(Plot("degradation_final", "Final training loss against depth",
                              plot_final(final, title, FORMATS)))
    rows = final.to_dict(orient="records")
    section.figures = {f"{r['variant']}{r['depth']}": {"train_loss": float(f"{r['train_loss']:.6g}"),
                                                       "test_acc": float(f"{r['test_acc']:.6g}")} for r in rows}
    section.highlights = [(f"{r['variant']}-{r['depth']} final training loss", f"{r['train_loss']:.3g}")
                          for r in rows]
    return section
