"""`netprobe list`: the registered architectures."""

import click

from netprobe.cli.options import emit, format_option, output_option


@click.command("list")
@click.option("--family", default=None, help="Only this family (e.g. resnet, vgg).")
@click.option("--pattern", default=None, help="Only names matching this glob (e.g. 'resnet*').")
@format_option
@output_option
def list_cmd(family, pattern, fmt, output):
    """List the registered architectures with their default input, classes and parameter count."""
    from netprobe.errors import NetprobeError
    from netprobe.render.tables import render
    from netprobe.zoo import families
    from netprobe.zoo.catalog import catalog

    if family is not None and family not in families():
        raise NetprobeError(f"unknown family {family!r} (families: {', '.join(families())})")
    table = catalog(pattern=pattern, family=family)
    emit(render(table, fmt, humanize=("params",)), output)
