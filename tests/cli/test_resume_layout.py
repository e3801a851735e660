"""A landscape resumed after its training finished (killed right after train-residual.pt was written) gives
the surface of the uninterrupted run, bit for bit."""

import pytest
from click.testing import CliRunner

from netprobe.cli.main import cli

pytest.importorskip("sklearn")


def test_resume_after_training_gives_the_same_surface(tmp_path):
    out = tmp_path / "LF"
    args = ["landscape", "resnet20", "--kwargs", "width=1", "--data", "digits", "--train-epochs", "1", "--steps", "2",
            "--samples", "16", "--threads", "1", "--no-progress", "-o", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    straight = (out / "surface.csv").read_text()
    for path in out.glob("surface*"):  # what a kill just after the training checkpoint leaves: no points yet
        path.unlink()
    result = CliRunner().invoke(cli, [*args, "--resume"])
    assert result.exit_code == 0 and "0 resumed" in result.output, result.output
    assert (out / "surface.csv").read_text() == straight
