"""`netprobe report`: every analysis on the configured models, as one self-contained folder."""

import click

from netprobe.cli.options import device_option, threads_option


@click.command("report")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML (or YAML with PyYAML) listing models and analyses; default: the case studies' story "
                   "(see netprobe/report/default.toml).")
@click.option("--quick", is_flag=True, help="Coarse grids and few batches (the config's [quick] overrides).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Report folder; replaced atomically when the report is complete.")
@click.option("--svg", is_flag=True, help="Every plot as SVG too (by default PNG only, which keeps the folder small).")
@click.option("--progress/--no-progress", default=True, help="Progress display on stderr.")
@device_option
@threads_option
def report_cmd(config_path, quick, out_dir, svg, progress, device):
    """Write a report folder: CSV per table, PNG per plot (--svg: SVG too), report.json, index.md and index.html."""
    from netprobe.report.build import check_target, run, write
    from netprobe.report.config import load_config

    from dataclasses import replace

    from netprobe.devices import resolve

    config = replace(load_config(config_path, quick=quick), device=resolve(device).type)
    check_target(out_dir)
    sections = run(config, progress=progress, beside=out_dir)
    write(config, sections, out_dir, svg=svg)
    click.echo(f"wrote {out_dir}/index.html", err=True)
