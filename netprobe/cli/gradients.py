"""`netprobe gradients`: gradient-norm profiles, layer responses and shattered gradients, plain vs residual."""

import re

import click

from netprobe.cli.data_options import weights_data_option
from netprobe.cli.options import (check_classifier, check_files, check_twin, model_argument, model_inputs,
                                  output_option, plain_option, resolve_model, seed_option, threads_option)

LINES = 4  # lines through data points for --shattered
POINTS = 32  # points per line


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
@click.option("--compare", is_flag=True, help="Plain and residual twins from the same seed in one table and plot.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, metavar="CKPT",
              help="Measure at this checkpoint instead of at initialisation.")
@weights_data_option
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Samples per batch.")
@click.option("--batches", type=click.IntRange(min=1), default=4, show_default=True,
              help="Batches to average over (the std column is the spread over them).")
@seed_option
@click.option("--depths", callback=_depths_callback, default=None, metavar="D1,D2,...",
              help="Sweep the CIFAR ResNets of these depths (6n+2) and summarise first/last norm ratios.")
@click.option("--responses", is_flag=True, help="Std of each BN layer's output instead (He et al. Fig. 7).")
@click.option("--shattered", is_flag=True,
              help="Correlation of input gradients along lines through the data instead (Balduzzi et al. 2017).")
@output_option
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="PNG", help="Write a PNG plot.")
@threads_option
def gradients_cmd(model, kwargs, input_size, plain, compare, weights, data_spec, batch_size, batches, seed, depths,
                  responses, shattered, output, plot):
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
    from netprobe.errors import NetprobeError

    if plain and compare:
        raise click.UsageError("--plain and --compare exclude each other (--compare measures both)")
    if responses and shattered:
        raise click.UsageError("--responses and --shattered exclude each other")
    if weights is not None and (compare or depths):
        raise click.UsageError("--weights are one model's: drop --compare and --depths")
    spec, options = resolve_model(model, kwargs, input_size)
    if "plain" in options:  # the variants pass plain= to the builder themselves
        raise click.UsageError(f"give the plain twin with --plain (both twins: --compare), not as --kwargs "
                               f"plain={options['plain']!r}")
    if plain or compare:
        check_twin(spec, "--plain and --compare")
    if depths is not None and spec.family != "cifar_resnet":
        raise NetprobeError(f"--depths sweeps the CIFAR ResNets (family cifar_resnet); {model} is {spec.family}")

    if not responses:  # the profile and shattered gradients differentiate a classification loss
        check_classifier(spec, options, "a gradient profile")
    from netprobe.files import check_writable

    for path in (output, plot):
        if path is not None:
            check_writable(path)
    check_files([("-o", output), ("--plot", plot)], [model], [weights] if weights else [])
    _run(spec, options, plain, compare, weights, data_spec, batch_size, batches, seed, depths, responses, shattered,
         output, plot)


def _run(spec, options, plain, compare, weights, data_spec, batch_size, count, seed, depths, responses, shattered,
         output, plot):
    import torch

    from netprobe.analysis.gradients import profile as g
    from netprobe.analysis.gradients.shattered import lag_one, shattered_gradients
    from netprobe.cli.options import match_classes
    from netprobe.analysis.variants import checkpoint_meta, dataset_for
    from netprobe.render import gradient_plots
    from netprobe.files import write_atomic
    from netprobe.render.tables import render, to_csv
    from netprobe.zoo import load

    # a checkpoint is measured on its own data, normalised as it was trained
    meta = checkpoint_meta(spec.name, weights) if weights is not None else {}
    data_spec = data_spec or meta.get("data", "synthetic")
    dataset = dataset_for(meta, data_spec, spec, seed, {})
    batches = g.sample_batches(dataset.train.x, dataset.train.y, batch_size, count, seed)
    options = match_classes(spec, options, dataset, data_spec)
    if weights is not None and depths is None:
        from netprobe.train.checkpoint import trained_options

        options.update(trained_options(weights, spec.name))

    variants = ("residual", "plain") if compare else ("plain",) if plain else ("residual",)
    if depths is not None:
        runs = list(g.cifar_models(depths, variants=variants, seed=seed, **options))
    elif spec.plain:
        runs = [({"variant": v}, m) for v, m in g.twins(lambda **kw: load(spec.name, **kw, **options),
                                                           variants=variants, seed=seed)]
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            runs = [({"variant": "default"}, load(spec.name, **options))]
    if weights is not None:
        from netprobe.train import load_weights

        load_weights(runs[0][1], weights, plain=runs[0][0]['variant'] == 'plain' if spec.plain else None)

    x, y = batches[0]
    where = f"at {weights}" if weights else "at initialisation"
    if responses:
        table = g.stack(runs, lambda m: g.response_std(m, x, train=weights is None))
        summary, draw = None, gradient_plots.plot_responses
        what = f"BN response std, batch {batch_size}"
        if weights is None and any(isinstance(m, g.NORMS) for _, net in runs for m in net.modules()):
            click.echo("note: at initialisation BatchNorm normalises each batch by its own statistics with scale 1 "
                       "and shift 0, so every std is sqrt(var / (var + eps)), about 1.0; give --weights for a "
                       "trained net's responses (He et al. Fig. 7)", err=True)
    elif shattered:
        reference = x if weights is None else None  # at init, BN needs statistics that centre the data
        table = g.stack(runs, lambda m: shattered_gradients(m, x[:LINES], y[:LINES], points=POINTS, seed=seed,
                                                            reference=reference))
        summary, draw = lag_one(table), gradient_plots.plot_shattered
        what = f"shattered gradients, {min(LINES, batch_size)} lines x {POINTS} points"
    else:
        table = g.stack(runs, lambda m: g.gradient_profile(m, batches))
        summary, draw = g.first_to_last(table), gradient_plots.plot_profile
        what = f"gradient norms, batch {batch_size} x {count}"
    name = spec.name if depths is None else "CIFAR ResNets"
    title = f"{name} {where}: {what}, data {data_spec}, seed {seed}"
    png = draw(table, title)["png"] if plot is not None else None  # everything is ready before anything is written
    if output is not None:
        write_atomic(output, to_csv(table))
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(render(table, "table"), nl=False)
    if summary is not None:
        click.echo(render(summary, "table"), nl=False)
    if png is not None:
        write_atomic(plot, png)
        click.echo(f"wrote {plot}", err=True)
