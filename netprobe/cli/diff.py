"""`netprobe diff A B`: what changed between two models or two saved summaries, per layer and per total."""

import click

from netprobe.cli.options import emit, format_option, input_size_option, kwargs_option, output_option


@click.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@input_size_option
@kwargs_option
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Fold modules deeper than this into their ancestor before comparing (models only).")
@format_option
@output_option
def diff_cmd(a, b, input_size, kwargs, depth, fmt, output):
    """Added, removed and changed layers and the delta of every total from A to B.

    A and B are models (zoo names, path/to/file.py:Name or package.module:Name, built with the --kwargs
    given) or JSON files saved by `netprobe summary MODEL --format json -o FILE`. Layers are matched by
    name; a layer is changed when its type, output shape or a count differs. `--format markdown` is ready
    for a pull-request comment.

    \b
    netprobe diff resnet20 resnet32
    netprobe diff before.json after.json --format markdown
    """
    from netprobe.analysis.counting.diff import diff
    from netprobe.files import check_writable
    from netprobe.render.diff_view import render_diff

    if output is not None:
        check_writable(output)
    emit(render_diff(diff(*(_summary(x, input_size, kwargs, depth) for x in (a, b))), fmt), output)


def _summary(spec, input_size, kwargs, depth):
    """The summary dict of a saved JSON file, or of a model counted now."""
    from netprobe.analysis.counting.diff import load_summary
    from netprobe.analysis.counting.summary import summary
    from netprobe.errors import NetprobeError
    from netprobe.zoo.loading import load_model, parse_kwargs

    if spec.endswith(".json"):
        return load_summary(spec)
    loaded = load_model(spec, parse_kwargs(kwargs))
    size = input_size or loaded.input_size
    if size is None:
        raise NetprobeError(f"{spec} is not a zoo model: give its input with --input-size CxHxW")
    return summary(loaded.model, (1, *size), depth=depth, name=loaded.name).to_dict()
