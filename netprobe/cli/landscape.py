"""`netprobe landscape`: loss-surface slices of a model, plain vs residual, resumable and torchrun-sharded."""

import re

import click

from netprobe.cli.data_options import weights_data_option
from netprobe.cli.options import (batch_size_option, compare_option, device_option, model_argument, model_inputs,
                                  output_dir_option, plain_option, progress_option, samples_option, say_warnings,
                                  seed_option, threads_option, train_epochs_option, twin_preamble, weights_option,
                                  write_outputs)


def _range_callback(ctx, param, value):
    match = re.fullmatch(r"\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*:\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*", value)
    if not match:
        raise click.BadParameter(f"expected START:END like -1:1, got {value!r}", param_hint="--range")
    start, stop = float(match.group(1)), float(match.group(2))
    if not start < stop:
        raise click.BadParameter(f"START must be below END, got {value!r}", param_hint="--range")
    if max(abs(start), abs(stop)) > SPAN_LIMIT:  # w + a d overflows float32 long before 1e308
        raise click.BadParameter(f"START and END must lie within +-{SPAN_LIMIT:g}, got {value!r}", param_hint="--range")
    return start, stop


SPAN_LIMIT = 1e3  # multiples of filter-normalised directions; Li et al. slice within +-1


@click.command("landscape")
@model_argument
@model_inputs
@plain_option
@compare_option
@weights_option(help="Slice at these weights (with --compare: give it twice, residual then plain).")
@train_epochs_option(3)
@click.option("--dim", type=click.IntRange(1, 2), default=2, show_default=True, help="1-D curve or 2-D surface.")
@click.option("--steps", type=click.IntRange(2, 201), default=11, show_default=True,
              help="Points per axis (steps x steps for --dim 2).")
@click.option("--range", "span", default="-1:1", show_default=True, callback=_range_callback, metavar="A:B",
              help="Span of each axis in filter-normalised units (for --between: of alpha).")
@weights_data_option
@samples_option(256, "Training samples each point is evaluated on (a fixed seeded subset).")
@batch_size_option(None, "Evaluation batch size [default: 64 on cpu, 512 on cuda].")
@seed_option
@device_option
@click.option("--include-bn", is_flag=True, help="Perturb biases and BatchNorm scales/shifts too.")
@click.option("--between", nargs=2, type=click.Path(dir_okay=False), default=None, metavar="A.pt B.pt",
              help="1-D: interpolate (1 - alpha) A + alpha B between two checkpoints (Goodfellow et al. 2015).")
@click.option("--directions", "direction_files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Slice along saved directions instead of random ones, e.g. `netprobe hessian -o DIR`'s "
                   "eigenvectors-VARIANT.pt (unit vectors: use a small --range; with --compare: twice).")
@click.option("--trajectory", type=click.Path(file_okay=False, exists=True), default=None, metavar="STUDY",
              help="Draw the training path kept by `netprobe depth -o STUDY` on the plane of its two PCA directions "
                   "(Li et al. 2018, Fig. 9), at the study's final weights (with --compare: both twins).")
@click.option("--resume", is_flag=True, help="Keep the points already computed in DIR; compute the rest.")
@progress_option()
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True,
              help="torch.compile the folded model instead of fusing its convolutions into oneDNN primitives "
                   "(slower here, even after compiling: README, loss surfaces).")
@output_dir_option("Directory for surface.csv, summary.csv, the directions and the plots (created if missing).")
@threads_option
def landscape_cmd(model, kwargs, input_size, plain, compare, weights, train_epochs, dim, steps, span, data_spec,
                  samples, batch_size, seed, device, include_bn, between, direction_files, trajectory, resume, progress,
                  directory, compile_):
    """Loss and accuracy of MODEL around its weights: w + a d1 + b d2 over a grid (Li et al. 2018).

    MODEL is a zoo name (see `netprobe list`), path/to/file.py:Name or package.module:Name (a class or a
    factory, called with the --kwargs given; give its --input-size).

    \b
    d1, d2: Gaussian directions (from --seed), each output filter scaled to the
    norm of the same filter of the weights; biases and BatchNorm parameters stay
    fixed unless --include-bn. BatchNorm uses its running statistics. Each point:
    mean cross-entropy and accuracy over --samples training samples.
    Without --weights, the model trains --train-epochs epochs (SGD, batch 128,
    lr 0.1, /10 at 50% and 75%) and its BatchNorm statistics are re-estimated; with
    --train-epochs 0 the slice is at initialisation.
    Writes DIR/surface.csv, summary.csv (roughness per surface), directions*.pt,
    and contour.png + surface3d.png (--dim 2) or curves.png (--dim 1).
    Under torchrun --nproc-per-node N the points are shared across the ranks.
    """
    if between and (dim != 1 or compare or weights):
        raise click.UsageError("--between is a 1-D slice of one model: use it with --dim 1, without --compare "
                               "and --weights")
    if trajectory and (weights or between or direction_files or resume or dim != 2):
        raise click.UsageError("--trajectory slices the study's own final weights in 2-D: use it without "
                               "--weights, --between, --directions, --resume and --dim 1")
    from pathlib import Path

    # U-Net would fail in the loss after building data
    spec, options, variants = twin_preamble(model, kwargs, input_size, plain, compare, weights, what="a loss surface",
                                            grad=False)
    if trajectory:
        return _trajectory(model, variants, Path(trajectory), steps, samples, seed, batch_size or 64, include_bn,
                           Path(directory), progress)
    from netprobe.analysis.surfaces import study as study

    out = Path(directory)  # the study creates it and keeps its point logs and training checkpoints there
    existed = out.exists()
    try:
        _landscape(study, spec, variants, data_spec, weights, between, train_epochs, dim, steps, span, samples,
                   batch_size, seed, device, include_bn, out, resume, progress, compile_, direction_files,
                   options=options)
    except BaseException as exc:
        # A run that created its folder and failed before a point or a training checkpoint leaves no folder
        # (only its settings file would be there, with nothing to resume); any other failure keeps it.
        empty = not existed and out.is_dir() and {p.name for p in out.iterdir()} <= {study.SETTINGS}
        if empty:
            (out / study.SETTINGS).unlink(missing_ok=True)
            out.rmdir()
        if isinstance(exc, KeyboardInterrupt):
            raise click.ClickException(f"interrupted before any point was computed; nothing was kept in {out}"
                                       if empty else f"interrupted; the points computed so far are kept in {out}: "
                                       "rerun with --resume to continue") from None
        raise


def _landscape(study, spec, variants, data_spec, weights, between, train_epochs, dim, steps, span, samples,
               batch_size, seed, device, include_bn, out, resume, progress, compile_, direction_files=(),
               options=None):
    """Run the study and write its outputs; OSError becomes one line that keeps the points for --resume."""
    from netprobe.errors import NetprobeError
    from netprobe.ranks import is_main, process_group

    try:
        with process_group(device) as dev:
            result = study.study(spec, variants=variants, data=data_spec, weights=weights, between=between,
                                 train_epochs=train_epochs, dim=dim, steps=steps, span=span, samples=samples,
                                 batch_size=batch_size, seed=seed, device=dev, include_bn=include_bn,
                                 directory=out, resume=resume, progress=progress, compile=compile_,
                                 direction_files=direction_files, options=options)
            if is_main():
                _write(out, result, between)
                study.clear_work(out, variants)
    except OSError as exc:
        raise NetprobeError(f"cannot write in {out}: {exc.strerror or exc}; the points computed so far are kept "
                            "there, rerun with --resume") from None


def _write(out, result, between):
    """Render every output first, then write them atomically; the roughness summary goes to stdout."""
    from netprobe.analysis.surfaces.directions import directions_bytes
    from netprobe.analysis.surfaces.landscape import surface_csv
    from netprobe.render import landscape_plots as plots
    from netprobe.render.tables import render

    for s in result.slices:
        click.echo(f"{result.model} {s.variant} {s.state}: {s.computed} points computed, {s.resumed} resumed",
                   err=True)
    say_warnings(result.warnings)
    several = len(result.slices) > 1
    files = {"surface.csv": surface_csv(result.surface()), "summary.csv": surface_csv(result.summary)}
    for s in result.slices:
        if s.directions:
            files["directions.pt" if not several else f"directions-{s.variant}.pt"] = directions_bytes(
                s.directions, {"model": result.model, "variant": s.variant, "seed": result.seed,
                               "include_bn": result.include_bn, "state": s.state})
    labelled = [(s.variant if several else "", s.table) for s in result.slices]
    title = result.caption()
    if result.dim == 2:
        files["contour.png"] = plots.plot_contours(labelled, title)["png"]
        files["surface3d.png"] = plots.plot_surfaces_3d(labelled, title)["png"]
    else:
        xlabel = "alpha: (1 - alpha) A + alpha B" if between else None
        files["curves.png"] = plots.plot_curves(labelled, title, **({"xlabel": xlabel} if xlabel else {}))["png"]
    write_outputs(out, files)
    click.echo(render(result.summary, "table"), nl=False)


def _trajectory(model, variants, study_dir, steps, samples, seed, batch_size, include_bn, out, progress):
    """Slice each variant's PCA plane of its training path; write path.csv, surface.csv and paths.png."""
    import pandas as pd

    from netprobe.analysis.surfaces.landscape import surface_csv
    from netprobe.analysis.surfaces.trajectory import trajectory_study
    from netprobe.render import landscape_plots as plots
    from netprobe.runs import make_folder

    make_folder(out)
    result = trajectory_study(model, study_dir, variants=variants, steps=steps, samples=samples, seed=seed,
                              batch_size=batch_size, include_bn=include_bn, progress=progress)
    several = len(result) > 1
    paths = pd.concat([t.plane.path.assign(variant=t.variant, explained_x=t.plane.explained[0],
                                           explained_y=t.plane.explained[1]) for t in result], ignore_index=True)
    tables = pd.concat([t.table.assign(variant=t.variant) for t in result], ignore_index=True)
    title = (f"{model}: training paths from {study_dir} on their PCA planes\n{steps}x{steps} points, {samples} "
             f"samples, seed {seed}")
    files = {"path.csv": surface_csv(paths[["variant", "step", "x", "y", "explained_x", "explained_y"]]),
             "surface.csv": surface_csv(tables[["variant", "x", "y", "loss", "accuracy"]]),
             "paths.png": plots.plot_paths([(t.variant if several else "", t.table) for t in result],
                                           [t.plane.path for t in result], [t.plane.explained for t in result],
                                           title)["png"]}
    write_outputs(out, files)
