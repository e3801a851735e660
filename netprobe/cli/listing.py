"""`netprobe list`: the registered architectures, from the zoo's catalog (no torch, no pandas, no model built)."""

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
    from netprobe.render.records import render_rows
    from netprobe.zoo.catalog import COLUMNS, catalog, families

    if family is not None and family not in families():
        raise NetprobeError(f"unknown family {family!r} (families: {', '.join(families())})")
    emit(render_rows(catalog(pattern=pattern, family=family), COLUMNS, fmt, humanize=("params",)), output)
