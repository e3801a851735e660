"""`python -m netprobe` runs the CLI."""

from netprobe.cli.main import cli

cli()
