"""`netprobe receptive-field` (alias `rf`): exact per-layer receptive fields, checked by gradients."""

import click

from netprobe.cli.options import (check_files, device_option, emit, format_option, input_size_option, kwargs_option,
                                  output_option, plain_option, say_warnings, seed_option, threads_option)


@click.command("receptive-field")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@input_size_option
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Fold modules deeper than this into their ancestor (the root is depth 0).")
@plain_option
@kwargs_option
@format_option
@output_option
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Write a PNG: r against depth, one line per model (with --effective: the heatmaps).")
@click.option("--verify", is_flag=True,
              help="Check each layer's window against the input-gradient support of its central unit "
                   "(layers at --depth, default 1) of a positive float64 copy: max pooling as average "
                   "pooling; norms, ReLU6, Hardtanh, Hardswish, Tanh, GELU, SiLU and clamp as identity; "
                   "Sigmoid and Hardsigmoid gates as x / (1 + |x|); exit 1 on any mismatch.")
@click.option("--effective", is_flag=True, help="The effective receptive field (Luo et al. 2016) instead.")
@click.option("--compare", is_flag=True, help="With --effective: the plain and residual twins side by side.")
@click.option("--samples", type=click.IntRange(min=1), default=16, show_default=True,
              help="Random inputs averaged by --effective.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, metavar="CKPT",
              help="With --effective: measure at this checkpoint instead of at initialisation.")
@seed_option
@device_option
@click.pass_context
@threads_option
def receptive_field_cmd(ctx, models, input_size, depth, plain, kwargs, fmt, output, plot, verify, effective,
                        compare, samples, weights, seed, device):
    """Receptive field r, jump j and centre of every layer of MODEL, per spatial axis, without running it.

    MODEL is a zoo name, path/to/file.py:Name or package.module:Name; several models
    give one table (and one plot line) each.

    \b
    rf_h, rf_w     field size in input pixels (the largest over output positions)
    jump_h, jump_w input pixels between neighbouring output units
    center_h/_w    centre of output unit 0 in input pixels (can be negative:
                   effective padding = (rf - 1) / 2 - center)
    rf_h_min/_max  smallest and largest field over output positions (they
                   differ after upsampling, transposed convs, misaligned merges)
    Convention of Araujo et al. (Distill 2019): padding counts as part of the
    field. Computed from the traced operator graph on the meta device; merges
    take the union of their operands' windows. Global pooling and linear layers
    see the whole input.
    """
    from netprobe.files import check_writable
    from netprobe.zoo.loading import parse_kwargs

    options = parse_kwargs(kwargs)
    for path in (output, plot):
        if path is not None:
            check_writable(path)
    check_files([("-o", output), ("--plot", plot)], models, [weights] if weights else [])
    if (compare or weights or samples != 16) and not effective:
        raise click.UsageError("--compare, --weights and --samples go with --effective")
    if verify and effective:
        raise click.UsageError("--verify and --effective exclude each other")
    if effective:
        _effective(models, input_size, plain, options, compare, samples, weights, seed, fmt, output, plot, device)
        return
    loaded = [_load(spec, plain, options, input_size) for spec in models]
    if verify:
        if not _verify(loaded, depth, fmt, output):
            ctx.exit(1)
        return
    _fields(loaded, depth, fmt, output, plot)


def _load(spec, plain, options, input_size):
    from netprobe.zoo.loading import load_model
    from netprobe.errors import NetprobeError

    loaded = load_model(spec, options, plain=plain)
    size = input_size or loaded.input_size
    if size is None:
        raise NetprobeError(f"{spec} is not a zoo model: give its input with --input-size CxHxW")
    return loaded, (1, *size)


def _fields(loaded, depth, fmt, output, plot):
    import pandas as pd

    from netprobe.analysis.fields.receptive_field import receptive_field
    from netprobe.files import write_atomic
    from netprobe.render.rf_plots import rf_by_depth
    from netprobe.render.tables import Format, render
    from netprobe.render.summary_view import dims

    tables = {}
    for model, size in loaded:
        table = receptive_field(model.model, size, depth=depth, name=model.name)
        say_warnings(f"{model.name}: {line}" for line in table.attrs["warnings"])
        tables[model.name] = table
    if Format(fmt) in (Format.csv, Format.json):
        frames = [t.assign(output_shape=t["output_shape"].map(dims)) for t in tables.values()]
        if len(frames) > 1:
            frames = [f.assign(model=name)[["model", *f.columns]] for name, f in zip(tables, frames)]
        emit(render(pd.concat(frames, ignore_index=True), fmt), output)
    else:
        parts = []
        for (model, size), table in zip(loaded, tables.values()):
            shown = _readable(table)
            title = f"{model.name}, input {dims(size)}"
            parts.append((f"**{title}**\n\n" if Format(fmt) is Format.markdown else f"{title}\n")
                         + render(shown, fmt))
        emit("\n".join(parts), output)
    if plot is not None:  # every layer, whatever --depth folds in the table
        full = {name: receptive_field(model.model, size, name=name) if depth is not None else tables[name]
                for (model, size), name in zip(loaded, tables)}
        write_atomic(plot, rf_by_depth(full, inputs={model.name: size for model, size in loaded})["png"])
        click.echo(f"wrote {plot}", err=True)


def _readable(table):
    """The table for reading: shapes as 1x64x112x112, min/max columns only where a field depends on position."""
    from netprobe.render.summary_view import dims

    shown = table.assign(output_shape=table["output_shape"].map(dims), name=table["name"].replace("", "(root)"))
    for col in [c for c in shown.columns if c.startswith("rf_") and c.count("_") == 1]:
        low, high = f"{col}_min", f"{col}_max"
        if (shown[low] == shown[col]).all() and (shown[high] == shown[col]).all():
            shown = shown.drop(columns=[low, high])
    return shown


def _verify(loaded, depth, fmt, output) -> bool:
    import pandas as pd

    from netprobe.analysis.fields.check import verify
    from netprobe.render.tables import render

    frames, ok = [], True
    for model, size in loaded:
        table = verify(model.model, size, depth=1 if depth is None else depth)
        say_warnings(f"{model.name}: {line}" for line in table.attrs["warnings"])
        matched = int(table["match"].sum())
        click.echo(f"{model.name}: {matched}/{len(table)} layer windows equal the input-gradient support"
                   f" of their central unit", err=True)
        ok = ok and matched == len(table)
        frames.append(table.assign(model=model.name)[["model", *table.columns]])
    emit(render(pd.concat(frames, ignore_index=True), fmt), output)
    return ok


def _effective(models, input_size, plain, options, compare, samples, weights, seed, fmt, output, plot, device):
    import pandas as pd

    from netprobe.zoo.loading import load_model
    from netprobe.analysis.fields.check import effective
    from netprobe.analysis.fields.solve import AXIS_NAMES
    from netprobe.errors import NetprobeError
    from netprobe.files import write_atomic
    from netprobe.render.rf_plots import erf_heatmaps
    from netprobe.render.tables import render
    from netprobe.analysis.twins import build
    from netprobe.zoo import model_spec

    if compare and plain:
        raise click.UsageError("--plain and --compare exclude each other (--compare measures both)")
    if weights is not None and (compare or len(models) > 1):
        raise click.UsageError("--weights are one model's: give one MODEL and drop --compare")
    runs = []
    for spec in models:
        if ":" in spec:
            loaded = load_model(spec, options, real=True)  # a user model, with the weights its own code gives it
            runs.append((loaded.name, loaded.model, input_size))
            continue
        registered = model_spec(spec)
        if (compare or plain) and not registered.plain:
            raise NetprobeError(f"{spec} ({registered.family}) has no shortcuts to remove: drop --plain/--compare")
        trained = {}
        if weights is not None:
            from netprobe.train.checkpoint import trained_options

            trained = trained_options(weights, spec)
        for variant in ([False, True] if compare else [plain]):  # twins start from the same draw
            model = build(registered, {**options, **trained, **({"plain": True} if variant else {})}, seed)
            runs.append((f"{spec}{' plain' if variant else ''}", model, input_size or registered.input_size[:]))
    if weights is not None:
        from netprobe.train import load_weights

        twins = ":" not in models[0] and model_spec(models[0]).plain
        load_weights(runs[0][1], weights, plain=plain if twins else None)
    fields = []
    for name, model, size in runs:
        if size is None:
            raise NetprobeError(f"{name} is not a zoo model: give its input with --input-size CxHxW")
        fields.append(effective(model, (1, *size), samples=samples, seed=seed, name=name, device=device))
    axes = AXIS_NAMES[fields[0].heat.ndim]
    emit(render(pd.DataFrame([f.as_row(axes) for f in fields]), fmt), output)
    if plot is not None:
        write_atomic(plot, erf_heatmaps(fields)["png"])
        click.echo(f"wrote {plot}", err=True)
