"""`netprobe summary`: per-layer shapes, parameters, MACs and FLOPs, from one pass on the meta device."""

import math

import click

from netprobe.cli.options import (check_files, count_callback, emit, format_option, input_size_option, inputs_option,
                                  kwargs_option, model_argument, output_option, plain_option, preact_option)

@click.command("summary")
@model_argument
@input_size_option
@inputs_option
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Fold modules deeper than this into their ancestor (the root is depth 0).")
@plain_option
@preact_option
@kwargs_option
@click.option("--rf", is_flag=True, help="Add receptive-field columns (see `netprobe receptive-field --help`).")
@click.option("--training", is_flag=True,
              help="Add backward FLOPs, saved-for-backward, gradient and Adam-state bytes (see `netprobe memory`).")
@format_option
@click.option("--torchinfo", "as_torchinfo", is_flag=True,
              help="Print the table in torchinfo's layout (Layer (type:depth-idx), Output Shape, Param #, Mult-Adds), "
                   "from netprobe's counts.")
@output_option
@click.option("--max-params", callback=count_callback, metavar="N", help="Exit 1 if params exceed N (K/M/G ok).")
@click.option("--max-macs", callback=count_callback, metavar="N", help="Exit 1 if MACs exceed N (e.g. 4G).")
@click.option("--max-activation-bytes", callback=count_callback, metavar="N",
              help="Exit 1 if activation bytes exceed N (e.g. 200M).")
@click.option("--sizes", "show_sizes", is_flag=True,
              help="Add parameter and buffer bytes by dtype, frozen vs trainable per layer and the saved "
                   "state_dict size (with --format csv: that table alone; json: a \"sizes\" block).")
@click.option("--strict", is_flag=True, help="Exit 1 if a total is partial (operators seen but not counted).")
@click.pass_context
def summary_cmd(ctx, model, input_size, inputs, batch, depth, plain, preact, kwargs, rf, training, fmt, as_torchinfo,
                output, max_params, max_macs, max_activation_bytes, show_sizes, strict):
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

    if output is not None:
        check_writable(output)
        check_files([("-o", output)], [model])
    if inputs and input_size:
        raise click.UsageError("give --input-size or --input, not both")
    loaded = load_model(model, parse_kwargs(kwargs), plain=plain, preact=preact)
    size = input_size or loaded.input_size
    if size is None and not inputs:
        raise NetprobeError(f"{model} is not a zoo model: give its input with --input-size CxHxW")
    if training and inputs:
        raise click.UsageError("--training traces one image input: give --input-size, not --input")
    result = _analyse(summary_with_fields if rf else summary, loaded, size, inputs, batch, depth)
    if training:
        from netprobe.analysis.memory.columns import with_training

        result = with_training(result, loaded.model, (batch, *size))
    for line in result.layers.attrs.get("rf_warnings", []):
        click.echo(f"warning: {line}", err=True)
    if as_torchinfo:
        from netprobe.render.torchinfo_view import torchinfo_table

        emit(torchinfo_table(result, loaded.model), output)
    elif show_sizes:
        emit(_with_sizes(result, loaded.model, fmt), output)
    else:
        emit(render_summary(result, fmt), output)

    budgets = {"params": max_params, "macs": max_macs, "activation_bytes": max_activation_bytes}
    exceeded = _failed_gates(result, budgets, strict)
    for line in exceeded:
        click.echo(line, err=True)
    if exceeded:
        ctx.exit(1)


def _analyse(analyse, loaded, size, inputs, batch: int, depth):
    """`analyse` (summary, or with fields) of the loaded model at `size`, or at the --input shapes bound by name."""
    from netprobe.errors import NetprobeError

    for shape in [size] if not inputs else [dims for _, dims, _ in inputs]:
        if batch * math.prod(shape) >= 2**60:  # torch counts elements and bytes in int64
            raise NetprobeError(f"--batch {batch} x input {'x'.join(map(str, shape))} is more than 2**60 values")
    if not inputs:
        return analyse(loaded.model, (batch, *size), depth=depth, name=loaded.name)
    from netprobe.analysis.counting.inputs import bind, dtype_named

    args, kw = bind(loaded.model, [(name, (batch, *dims), dtype_named(dt)) for name, dims, dt in inputs])
    return analyse(loaded.model, args=args, kwargs=kw, depth=depth, name=loaded.name)


def _failed_gates(result, budgets: dict, strict: bool) -> list[str]:
    """One line per budget exceeded, and one for partial counts under --strict."""
    from netprobe.render.tables import human

    totals = result.totals.as_dict()
    failed = [f"{key} {human(totals[key])} > budget {human(limit).replace('.00', '')}"
              for key, limit in budgets.items() if limit is not None and totals[key] > limit]
    partial = [key for key, state in result.status().items() if state["status"] == "partial"]
    if strict and partial:
        ops = ", ".join(f"{op} x{n}" for op, n in result.uncounted_ops.items())
        failed.append(f"partial counts ({', '.join(partial)}): not counted {ops}")
    return failed


def _with_sizes(result, model, fmt) -> str:
    """The summary followed by the size table (csv: the size table alone; json: one document)."""
    from netprobe.analysis.counting.sizes import sizes
    from netprobe.render.sizes_view import render_sizes
    from netprobe.render.summary_view import render_summary
    from netprobe.render.tables import Format, to_json

    found = sizes(model)
    if Format(fmt) is Format.json:
        return to_json({**result.to_dict(), "sizes": found.to_dict()})
    if Format(fmt) is Format.csv:
        return render_sizes(found, fmt)
    return render_summary(result, fmt) + "\n" + render_sizes(found, fmt)
