"""`netprobe graph`: the architecture drawn from the summary's meta-device trace (SVG, PNG, Mermaid or dot)."""

import click

from netprobe.cli.options import input_size_option, kwargs_option, model_argument, output_option, plain_option

FORMATS = ("svg", "png", "dot", "mermaid")
_SUFFIXES = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid"}


def _show_callback(ctx, param, value):
    from netprobe.errors import NetprobeError
    from netprobe.render.graph_labels import check_show

    try:
        return check_show([f.strip() for f in value.split(",") if f.strip()])
    except NetprobeError as exc:
        raise click.BadParameter(str(exc), param_hint="--show") from None


@click.command("graph")
@model_argument
@input_size_option
@kwargs_option
@plain_option
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Fold modules deeper than this into their ancestor, as summary --depth does [default: full "
                   "depth, with the working functional operators (+, cat) as nodes].")
@click.option("--compare", is_flag=True, help="Draw the model and its plain twin (shortcuts removed) side by side.")
@click.option("--show", default="shape", show_default=True, callback=_show_callback, metavar="FIELDS",
              help="What the drawing carries, comma-separated: shape (edge labels), params, macs, rf (receptive "
                   "field and jump); '' for names only.")
@click.option("--collapse-repeats", is_flag=True, help='Draw n identical consecutive blocks once, marked "x n".')
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format [default: from the -o suffix, else svg].")
@output_option
def graph_cmd(model, input_size, kwargs, plain, depth, compare, show, collapse_repeats, fmt, output):
    """Draw MODEL: its modules (or, at full depth, its layers and the + and cat between them) as boxes and the
    tensors between them as edges labelled with their shapes, from one pass on the meta device.

    MODEL is a zoo name (see `netprobe list`), path/to/file.py:Name or package.module:Name. SVG and PNG are
    drawn here, with no Graphviz needed; dot and Mermaid are text for other renderers (GitHub draws Mermaid
    in markdown). Skips (residual shortcuts, U-Net bridges) are orange (thick in Mermaid).
    """
    from pathlib import Path

    from netprobe.files import check_writable

    if output is not None:
        check_writable(output)
    fmt = fmt or _SUFFIXES.get(Path(output).suffix.lower() if output else "", "svg")
    if compare and plain:
        raise click.UsageError("--compare draws the plain twin itself: drop --plain")
    graphs = [_graph(model, kwargs, input_size, depth, show, collapse_repeats, plain=p)
              for p in ((False, True) if compare else (plain,))]
    _write(_render(graphs, fmt, show), output)


def _graph(model, kwargs, input_size, depth, show, collapse, *, plain):
    """The model's graph (collapsed if asked), built like `summary` builds it."""
    from netprobe.analysis.graph import collapse_repeats, graph
    from netprobe.errors import NetprobeError
    from netprobe.zoo.loading import load_model, parse_kwargs

    if plain and ":" not in model:
        from netprobe.cli.options import check_twin
        from netprobe.zoo import model_spec

        check_twin(model_spec(model), "--plain/--compare")
    loaded = load_model(model, parse_kwargs(kwargs), plain=plain)
    size = input_size or loaded.input_size
    if size is None:
        raise NetprobeError(f"{model} is not a zoo model: give its input with --input-size CxHxW")
    name = f"{loaded.name} (plain)" if plain else loaded.name
    result = graph(loaded.model, (1, *size), depth=depth, fields="rf" in show, name=name)
    return collapse_repeats(result) if collapse else result


def _render(graphs, fmt: str, show) -> str | bytes:
    if fmt == "mermaid":
        from netprobe.render.graph_text import to_mermaid

        return to_mermaid(graphs, show)
    if fmt == "dot":
        from netprobe.render.graph_text import to_dot

        return to_dot(graphs, show)
    from netprobe.render.graph_draw import panel, to_png, to_svg

    panels = [panel(g, show) for g in graphs]
    return to_svg(panels) if fmt == "svg" else to_png(panels)


def _write(data: str | bytes, output) -> None:
    """Text to stdout or a file; PNG bytes to a file, or to stdout when it is not a terminal."""
    import sys

    from netprobe.cli.options import emit
    from netprobe.files import write_atomic

    if isinstance(data, str):
        emit(data, output)
    elif output is not None:
        write_atomic(output, data)
        click.echo(f"wrote {output}", err=True)
    elif sys.stdout.isatty():
        raise click.UsageError("PNG is binary: give -o FILE.png (or pipe stdout to a file)")
    else:
        sys.stdout.buffer.write(data)
