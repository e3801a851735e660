"""What many tests share: zoo models on the meta device, the repository's fixtures, and the CLI run in-process."""

from pathlib import Path

import torch

from netprobe.zoo import load


def meta_model(name, **options):
    """The zoo model `name` built on the meta device (shapes only, no weights)."""
    with torch.device("meta"):
        return load(name, **options)


def param_count(model) -> int:
    """All parameters of `model`, counted independently of netprobe's summary."""
    return sum(p.numel() for p in model.parameters())


def meta_forward(name, shape, **options):
    """The output of the zoo model `name` in eval mode for an empty meta input of `shape`."""
    with torch.device("meta"):
        return load(name, **options).eval()(torch.empty(shape))


ROOT = Path(__file__).resolve().parents[1]  # the repository
FIXTURE_DIR = ROOT / "fixtures" / "cifar10_sample"


def run(*args):
    """Invoke the netprobe CLI in-process with `args` (paths and numbers as text)."""
    from click.testing import CliRunner

    from netprobe.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def report(tmp_path, text: str):
    """`netprobe report` on a config of `text` into tmp_path/rep, asserted to succeed: the output folder."""
    config, out = tmp_path / "r.toml", tmp_path / "rep"
    config.write_text(text)
    result = run("report", "--config", config, "-o", out, "--no-progress")
    assert result.exit_code == 0, result.output
    return out


def one_line_error(result, *parts):
    """Exit status 2, no traceback, and one 'Error:' line holding every part."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and all(p in lines[0] for p in parts), result.output
