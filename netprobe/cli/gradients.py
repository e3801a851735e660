"""`netprobe gradients`: gradient-norm profiles, layer responses and shattered gradients, plain vs residual."""

import re

import click

from netprobe.cli.data_options import weights_data_option
from netprobe.cli.options import (batch_size_option, check_files, compare_option, device_option, model_argument,
                                  model_inputs, output_option, plain_option, say_warnings, seed_option, threads_option,
                                  twin_preamble, weights_option)


def _depths_callback(ctx, param, value):
    if value is None:
        return None
    if not re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", value):
        raise click.BadParameter(f"expected depths like 20,56,110, got {value!r}", param_hint="--depths")
    from netprobe.analysis.depth import DEPTHS

    depths = [int(v) for v in value.split(",")]
    if any(d > max(DEPTHS) for d in depths):  # each depth builds a real network: bound it before any is built
        raise click.BadParameter(f"depths go up to {max(DEPTHS)} (resnet{max(DEPTHS)}), got {value!r}",
                                 param_hint="--depths")
    return depths


@click.command("gradients")
@model_argument
@model_inputs
@plain_option
@compare_option
@weights_option(many=False, help="Measure at this checkpoint instead of at initialisation.")
@weights_data_option
@batch_size_option(32, "Samples per batch.")
@click.option("--batches", type=click.IntRange(min=1), default=4, show_default=True,
              help="Batches to average over (the std column is the spread over them).")
@seed_option
@device_option
@click.option("--depths", callback=_depths_callback, default=None, metavar="D1,D2,...",
              help="Sweep the CIFAR ResNets of these depths (6n+2) and summarise first/last norm ratios.")
@click.option("--responses", is_flag=True, help="Std of each BN layer's output instead (He et al. Fig. 7).")
@click.option("--shattered", is_flag=True,
              help="Correlation of input gradients along lines through the data instead (Balduzzi et al. 2017).")
@output_option
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="PNG", help="Write a PNG plot.")
@threads_option
def gradients_cmd(model, kwargs, input_size, plain, compare, weights, data_spec, batch_size, batches, seed, device,
                  depths, responses, shattered, output, plot):
    """Per-layer gradient norms of MODEL, at initialisation or at --weights, plain vs residual.

    MODEL is a zoo name (see `netprobe list`), path/to/file.py:Name or package.module:Name (a class or a
    factory, called with the --kwargs given; give its --input-size).

    \b
    Default: for every conv/linear weight in forward order, the L2 norm of the
    gradient of the mean cross-entropy (BatchNorm in train mode), averaged over
    --batches batches (grad_norm_std: their spread), and its ratio to the
    weight's norm. The summary gives each variant's first/last layer norm ratio.
    --responses: std of every BatchNorm output (eval mode with --weights; at
    initialisation batch statistics, which pin it near 1).
    --shattered: Pearson correlation of the input gradients of the label's logit
    at points k steps apart on lines x0 + t v (lag k), one batched pass.
    -o writes the per-layer table as CSV; the summary goes to stdout.
    """
    if responses and shattered:
        raise click.UsageError("--responses and --shattered exclude each other")
    if weights is not None and (compare or depths):
        raise click.UsageError("--weights are one model's: drop --compare and --depths")
    # the profile and shattered gradients differentiate a classification loss
    spec, options, variants = twin_preamble(model, kwargs, input_size, plain, compare, weights,
                                            what="" if responses else "a gradient profile")
    if depths is not None and spec.family != "cifar_resnet":
        raise click.UsageError(f"--depths sweeps the CIFAR ResNets (family cifar_resnet); {model} is {spec.family}")
    if "plain" in options:  # the variants pass plain= to the builder themselves
        raise click.UsageError(f"give the plain twin with --plain (both twins: --compare), not as --kwargs "
                               f"plain={options['plain']!r}")
    from netprobe.files import check_writable

    for path in (output, plot):
        if path is not None:
            check_writable(path)
    check_files([("-o", output), ("--plot", plot)], [model], [weights] if weights else [])
    from netprobe.analysis.gradients.study import study

    result = study(spec, variants=variants, options=options, weights=weights, data=data_spec, batch_size=batch_size,
                   batches=batches, seed=seed, depths=depths,
                   measure="responses" if responses else "shattered" if shattered else "profile", device=device)
    _write(result, output, plot)


def _write(result, output, plot):
    """Render the table, the summary and the plot, then write them (the table to stdout without -o)."""
    from netprobe.files import write_atomic
    from netprobe.render import gradient_plots
    from netprobe.render.tables import render, to_csv

    say_warnings(result.warnings, {"give trained weights": "give --weights"})
    draw = {"profile": gradient_plots.plot_profile, "responses": gradient_plots.plot_responses,
            "shattered": gradient_plots.plot_shattered}[result.measure]
    png = draw(result.table, result.title)["png"] if plot is not None else None  # all ready before any is written
    if output is not None:
        write_atomic(output, to_csv(result.table))
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(render(result.table, "table"), nl=False)
    if result.summary is not None:
        click.echo(render(result.summary, "table"), nl=False)
    if png is not None:
        write_atomic(plot, png)
        click.echo(f"wrote {plot}", err=True)
