"""`netprobe depth`: plain and residual CIFAR ResNets of several depths trained alike (He et al. 2016, Fig. 6)."""

import click

from netprobe.analysis.depth.study import DEFAULT, PRESETS, QUICK
from netprobe.cli.data_options import data_option
from netprobe.cli.options import device_option, output_dir_callback, seed_option


def _ints(ctx, param, value):
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def _names(ctx, param, value):
    return tuple(v.strip() for v in value.split(",") if v.strip())


@click.command("depth")
@click.option("--depths", default="20,56", show_default=True, callback=_ints, help="CIFAR ResNet depths (6n + 2).")
@click.option("--variants", default="plain,residual", show_default=True, callback=_names,
              help="plain (shortcuts removed) and/or residual.")
@data_option
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help=f"SGD steps per pair [default: {DEFAULT['steps']}; --quick: {QUICK['steps']}].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Budget in passes over the data instead.")
@click.option("--width", type=click.IntRange(min=1), default=None,
              help=f"Stage widths W, 2W, 4W [default: {DEFAULT['width']}; --quick: {QUICK['width']}; He et al.: 16].")
@click.option("--every", type=click.IntRange(min=1), default=None,
              help=f"Log and checkpoint every N steps [default: {DEFAULT['every']}; --quick: {QUICK['every']}].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Samples per SGD step [default: 128, He et al.'s].")
@click.option("--recipe", "recipe_name", type=click.Choice(list(PRESETS)), default=None,
              help="A named recipe: default; quick (as --quick); he2016, He et al.'s own (width 16, 64k steps, "
                   "augmentation, lr 0.01 warm-up at 110 layers) for --data cifar10:PATH.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Initial learning rate [default: 0.1], /10 at 50% and 75% of the steps.")
@click.option("--warmup", type=click.FloatRange(0, 0.5, max_open=True), default=None,
              help="Fraction of the steps over which the learning rate rises linearly to --lr [default: 0].")
@click.option("--init", type=click.Choice(["he", "zero-last-bn"]), default=None,
              help="he: He et al.'s initialisation [default]; zero-last-bn: each residual block's last BatchNorm "
                   "scale at 0 (Goyal et al. 2017; residual blocks only, the plain twin keeps he).")
@click.option("--augment/--no-augment", default=None,
              help="He et al.'s 4-pixel pad, random crop and flip [default: off; he2016: on].")
@click.option("--snapshots", type=click.IntRange(min=0), default=None,
              help="Weights kept along each pair's training for `landscape --trajectory` [default: 10].")
@seed_option
@click.option("--jobs", type=int, default=1, show_default=True, help="Pairs trained at once, in separate processes.")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="Torch threads per job [default: OMP_NUM_THREADS if set, else the physical cores this process may "
                   "use, within a cgroup CPU quota; divided by the jobs (and torchrun ranks)].")
@click.option("--quick", is_flag=True, help="The report's budget: fewer steps, width 4.")
@click.option("--resume", is_flag=True,
              help="Continue the study in DIR (same settings), pair by pair and within pairs.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
@device_option
@click.option("-o", "--output", type=click.Path(file_okay=False),
              callback=output_dir_callback, required=True, metavar="DIR",
              help="Study directory: one checkpoint per pair, curves.csv, final.csv, plots.")
def depth_cmd(depths, variants, data_spec, steps, epochs, width, every, batch_size, recipe_name, lr, warmup, init,
              augment, snapshots, seed, jobs, threads, quick, resume, progress, device, output):
    """Train every (depth, variant) pair from one seed under one recipe; compare training loss.

    \b
    He et al. 2016 (Fig. 1, 6): deeper plain nets end at a higher training
    loss (the degradation problem); with shortcuts the deeper net does not.
    Every pair gets the same budget, seed, data and SGD recipe (momentum 0.9,
    weight decay 1e-4, batch 128, the learning rate divided by 10 at 50% and
    75% of the steps; default and quick: width 4 at lr 0.015, chosen so the
    ordering shows in minutes: README, depth). DIR/<variant><depth>.pt is an
    ordinary train checkpoint (loads
    with --weights); DIR gets curves.csv (variant, depth, step, epoch,
    train_loss, train_acc, test_loss, test_acc; train_* are means over the
    batches since the previous row, in train mode), final.csv (the last row
    per pair), curves.png/svg and final_loss.png/svg. Under torchrun the
    ranks share out the pairs and rank 0 writes the tables. Same seed and
    thread settings give byte-identical CSVs.
    """
    import os

    from netprobe.analysis.depth import Study, run_study
    from netprobe.analysis.depth.pair import epoch_steps
    from netprobe.analysis.depth.study import preset

    if jobs < 1:
        raise click.BadParameter(f"must be at least 1, got {jobs}", param_hint="--jobs")
    if steps is not None and epochs is not None:
        raise click.UsageError("give the budget as --steps or as --epochs, not both")
    if quick and recipe_name not in (None, "quick"):
        raise click.UsageError(f"--quick is --recipe quick: give one of --quick and --recipe {recipe_name}")
    name = "quick" if quick else recipe_name or "default"
    if name == "he2016" and not data_spec.startswith("cifar10:"):
        raise click.BadParameter("the he2016 recipe is He et al.'s CIFAR-10 training: give --data cifar10:PATH",
                                 param_hint="--data")
    if epochs is not None:
        steps = epochs * epoch_steps(data_spec, seed, batch_size or 128)
    given = {"steps": steps, "width": width, "every": every, "batch_size": batch_size, "lr": lr, "warmup": warmup,
             "init": init, "augment": augment, "snapshots": snapshots}
    recipe = preset(name, data=data_spec, seed=seed, **{k: v for k, v in given.items() if v is not None})
    study = Study(depths=depths, variants=variants, recipe=recipe)
    from netprobe.cpus import default_threads

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    threads = threads or max(1, default_threads() // (jobs * world))
    from netprobe.ranks import process_group

    try:
        # The group's watchdog ends every rank with one line when one of them dies (rank 0 would wait forever).
        with process_group(device) as dev:
            result = run_study(study, output, jobs=jobs, threads=threads, resume=resume, progress=progress,
                               rank=rank, world=world, device=dev)
            if result is not None:
                _write(study, output, *result, paper=name == "he2016")
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted; {output} keeps every pair up to its last logged step: rerun with "
                                   "--resume to continue") from None
    if result is None:
        click.echo(f"rank {rank}: trained its share of the pairs into {output}; rank 0 wrote the tables")


def _write(study, output, curves, final, paper=False):
    """Write the tables and plots to DIR and print the final table and the summary in words."""
    from pathlib import Path

    from netprobe.analysis.depth import describe
    from netprobe.files import write_atomic
    from netprobe.render.depth_plots import plot_curves, plot_final
    from netprobe.render.tables import to_csv, to_text_table

    out = Path(output)
    r = study.recipe
    if paper:  # He et al.'s Table 6 beside the measured test error: their ResNets only (no plain figures)
        from netprobe.analysis.depth.study import PAPER_TEST_ERROR

        final = final.assign(test_error_pct=100 * (1 - final.test_acc),
                             he2016_test_error_pct=[PAPER_TEST_ERROR.get(d) if v == "residual" else None
                                                    for v, d in zip(final.variant, final.depth)])
    title = f"CIFAR ResNets, width {r.width}, {r.steps} SGD steps on {r.data}, seed {r.seed}"
    write_atomic(out / "curves.csv", to_csv(curves))
    write_atomic(out / "final.csv", to_csv(final))
    for stem, images in (("curves", plot_curves(curves, title, ("png", "svg"))),
                         ("final_loss", plot_final(final, title, ("png", "svg")))):
        for fmt, data in images.items():
            write_atomic(out / f"{stem}.{fmt}", data)
    click.echo(to_text_table(final))
    for line in describe(final):
        click.echo(line)
    click.echo(f"wrote {out}/curves.csv, final.csv, curves.png/svg, final_loss.png/svg and one checkpoint per pair")
