"""`netprobe summary`: per-layer shapes, parameters, MACs and FLOPs, from one pass on the meta device."""

import math

import click

from netprobe.cli.options import (check_files, count_callback, emit, format_option, input_size_option, kwargs_option,
                                  model_argument, output_option, plain_option, preact_option)

@click.command("summary")
@model_argument
@input_size_option
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Fold modules deeper than this into their ancestor (the root is depth 0).")
@plain_option
@preact_option
@kwargs_option
@click.option("--rf", is_flag=True, help="Add receptive-field columns (see `netprobe receptive-field --help`).")
@format_option
@click.option("--torchinfo", "as_torchinfo", is_flag=True,
              help="Print the table in torchinfo's layout (Layer (type:depth-idx), Output Shape, Param #, Mult-Adds), "
                   "from netprobe's counts.")
@output_option
@click.option("--max-params", callback=count_callback, metavar="N", help="Exit 1 if params exceed N (K/M/G ok).")
@click.option("--max-macs", callback=count_callback, metavar="N", help="Exit 1 if MACs exceed N (e.g. 4G).")
@click.option("--max-activation-bytes", callback=count_callback, metavar="N",
              help="Exit 1 if activation bytes exceed N (e.g. 200M).")
@click.pass_context
def summary_cmd(ctx, model, input_size, batch, depth, plain, preact, kwargs, rf, fmt, as_torchinfo, output, max_params,
                max_macs, max_activation_bytes):
    """Per-layer shapes, parameters, MACs, FLOPs and activation bytes of MODEL, without running it.

    MODEL is a zoo name (see `netprobe list`), path/to/file.py:Name or package.module:Name (a class or a
    factory, called with the --kwargs given). The forward pass runs once on the meta device, so the cost does
    not depend on batch size or resolution.

    \b
    MACs: multiply-accumulates of conv, linear and matmul (the convention behind
          torchvision's published GFLOPS, which are GMACs).
    FLOPs: 2 x MACs + the elementwise work of normalisation, activations, pooling
           and additions, in its own column.
    Operators seen but not counted are listed under the table.
    """
    from netprobe.zoo.loading import load_model, parse_kwargs
    from netprobe.analysis.counting.summary import summary
    from netprobe.analysis.fields.receptive_field import summary_with_fields
    from netprobe.errors import NetprobeError
    from netprobe.files import check_writable
    from netprobe.render.summary_view import render_summary
    from netprobe.render.tables import human

    if output is not None:
        check_writable(output)
        check_files([("-o", output)], [model])
    loaded = load_model(model, parse_kwargs(kwargs), plain=plain, preact=preact)
    size = input_size or loaded.input_size
    if size is None:
        raise NetprobeError(f"{model} is not a zoo model: give its input with --input-size CxHxW")
    if batch * math.prod(size) >= 2**60:  # torch counts elements and bytes in int64
        raise NetprobeError(f"--batch {batch} x input {'x'.join(map(str, size))} is more than 2**60 values")
    analyse = summary_with_fields if rf else summary
    result = analyse(loaded.model, (batch, *size), depth=depth, name=loaded.name)
    for line in result.layers.attrs.get("rf_warnings", []):
        click.echo(f"warning: {line}", err=True)
    if as_torchinfo:
        from netprobe.render.torchinfo_view import torchinfo_table

        emit(torchinfo_table(result, loaded.model), output)
    else:
        emit(render_summary(result, fmt), output)

    totals = result.totals.as_dict()
    budgets = {"params": max_params, "macs": max_macs, "activation_bytes": max_activation_bytes}
    exceeded = [f"{key} {human(totals[key])} > budget {human(limit).replace('.00', '')}"
                for key, limit in budgets.items() if limit is not None and totals[key] > limit]
    for line in exceeded:
        click.echo(line, err=True)
    if exceeded:
        ctx.exit(1)
