"""`netprobe lesion`: delete blocks of a trained residual net (and its plain twin) and measure what is lost."""

import click

from netprobe.cli.data_options import weights_data_option
from netprobe.cli.options import (batch_size_option, compare_option, device_option, merge_options, model_argument,
                                  model_inputs, output_dir_option, plain_option, progress_option, samples_option, seed_option,
                                  threads_option, train_epochs_option, twin_preamble, weights_option,
                                  write_outputs)


def _blocks_callback(ctx, param, value):
    if value is None or value == "all":
        return None
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"expected all or a positive count, got {value!r}", param_hint="--blocks")
    return int(value)


@click.command("lesion")
@model_argument
@model_inputs
@plain_option
@compare_option
@weights_option()
@train_epochs_option(0)
@click.option("--width", type=click.IntRange(min=1), default=None,
              help="Without --weights: CIFAR ResNet stage widths W, 2W, 4W (checkpoints carry their own).")
@click.option("--no-bn", "no_bn", is_flag=True,
              help="Without --weights: the CIFAR ResNet with every BatchNorm replaced by the identity.")
@weights_data_option
@samples_option(None, "Test samples evaluated, a fixed seeded subset [default: 1000, or all when fewer].")
@batch_size_option(256, "Evaluation batch size.")
@click.option("--random-sets", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Also delete random sets of k = 1, 2, ... blocks at once, N distinct draws per k (Veit et al. "
                   "Fig. 4); every set when fewer than N exist.")
@click.option("--blocks", "max_deleted", default="all", show_default=True, callback=_blocks_callback,
              metavar="all|K", help="With --random-sets: delete up to K blocks at once.")
@seed_option
@device_option
@progress_option()
@output_dir_option("Directory for the CSVs and plots (created if missing).")
@threads_option
def lesion_cmd(model, kwargs, input_size, plain, compare, weights, train_epochs, width, no_bn, data_spec, samples,
               batch_size, random_sets, max_deleted, seed, device, progress, directory):
    """Delete each block of MODEL in turn and measure test accuracy and loss (Veit et al. 2016).

    MODEL is a zoo name (see `netprobe list`), path/to/file.py:Name or package.module:Name (a class or a
    factory, called with the --kwargs given; give its --input-size) built of netprobe's residual blocks.

    \b
    A deleted residual block keeps its shortcut: the identity, or for a
    downsampling block (marked) its option-A or projection shortcut. A deleted
    block of the plain twin becomes the identity, where its shapes allow.
    BatchNorm runs in eval mode on the running statistics as trained.
    Per block also: ratio = ||F(x)|| / ||shortcut(x)|| of the residual branch
    (how close the block is to the identity) and the variance of its output,
    at the weights and at initialisation (BatchNorm on batch statistics there).
    Writes DIR/single.csv (one row per deleted block), blocks.csv (ratios and
    variances), summary.csv (median and worst accuracy after one deletion),
    single.png, ratios.png, and with --random-sets sets.csv, curve.csv and
    sets.png. The summary is printed.
    """
    if weights and (train_epochs or width or no_bn):
        raise click.UsageError("--train-epochs, --width and --no-bn build a model to train: a checkpoint carries "
                               "its own (drop them with --weights)")
    if max_deleted is not None and not random_sets:
        raise click.UsageError("--blocks K sizes the random sets: give --random-sets N too")
    from pathlib import Path

    from netprobe.analysis.lesion.study import study
    from netprobe.analysis.twins import check_scores
    from netprobe.errors import NetprobeError

    spec, options, variants = twin_preamble(model, kwargs, input_size, plain, compare, weights, what="")
    if (width or no_bn) and spec.family != "cifar_resnet":
        raise NetprobeError(f"--width and --no-bn apply to the CIFAR ResNets; {model} is {spec.family}")
    options = merge_options(options, {**({"width": (f"--width {width}", width)} if width else {}),
                                      **({"bn": ("--no-bn", False)} if no_bn else {})})
    check_scores(spec, options, "the lesion study's test accuracy", grad=False)
    out = Path(directory)
    _check_dir(out)
    from netprobe.ranks import is_main, process_group

    with process_group(device) as dev:  # under torchrun the ranks share out the deletions; rank 0 writes
        result = study(spec, variants=variants, options=options, weights=weights, train_epochs=train_epochs,
                       data=data_spec, samples=samples, batch_size=batch_size, seed=seed, random_sets=random_sets,
                       max_deleted=max_deleted, progress=progress, device=dev)
        if is_main():
            _write(out, result)


def _check_dir(out):
    from netprobe.errors import NetprobeError

    if out.exists() and not out.is_dir():
        raise NetprobeError(f"cannot write to {out}: it is a file")
    from netprobe.files import check_writable

    # its parent (or itself, a previous output) must exist and be writable before any work is done
    check_writable(out / "summary.csv" if out.is_dir() else out)


def _write(out, result):
    """Render every output first, then write them atomically; the summary goes to stdout."""
    from netprobe.render import lesion_plots as plots
    from netprobe.render.tables import render, to_csv

    title = result.caption()
    summary = result.summary()
    files = {"single.csv": to_csv(result.single()), "blocks.csv": to_csv(result.blocks()),
             "summary.csv": to_csv(summary),
             "single.png": plots.plot_single(result.single(), summary, title)["png"],
             "ratios.png": plots.plot_blocks(result.blocks(), title)["png"]}
    if not result.sets().empty:
        files.update({"sets.csv": to_csv(result.sets()), "curve.csv": to_csv(result.curve()),
                      "sets.png": plots.plot_curve(result.curve(), summary, title)["png"]})
    out.mkdir(exist_ok=True)
    write_outputs(out, files)
    click.echo(render(summary, "table"), nl=False)
